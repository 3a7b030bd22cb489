"""A one-line progress bar for long operations, honest on pipes too."""
from __future__ import annotations

import sys
import time
from typing import TextIO

_BAR_WIDTH = 30


def format_rate(hashes_per_second: float) -> str:
    """Human-readable hash rate: ``12.3 MH/s``."""
    for unit, scale in (("GH/s", 1e9), ("MH/s", 1e6), ("kH/s", 1e3)):
        if hashes_per_second >= scale:
            return f"{hashes_per_second / scale:.1f} {unit}"
    return f"{hashes_per_second:.0f} H/s"


def format_elapsed(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


class ProgressBar:
    """Subtasks verified out of a total, elapsed time and a hash rate.

    On a terminal the line redraws in place; elsewhere (CI logs, pipes) a new
    line is written only when the count changes, so logs stay readable.
    """

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._started = time.monotonic()
        self._last_line = ""
        self._last_done = -1

    def update(self, done: int, hashes_per_second: float, note: str = "") -> None:
        """Redraw with ``done`` of ``total`` finished."""
        filled = _BAR_WIDTH * done // self.total if self.total else _BAR_WIDTH
        bar = "#" * filled + "-" * (_BAR_WIDTH - filled)
        elapsed = format_elapsed(time.monotonic() - self._started)
        line = f"[{bar}] {done}/{self.total} verified  {elapsed}  {format_rate(hashes_per_second)}"
        if note:
            line += f"  {note}"
        if self._tty:
            pad = " " * max(0, len(self._last_line) - len(line))
            self.stream.write("\r" + line + pad)
            self.stream.flush()
        elif done != self._last_done or note:
            self.stream.write(line + "\n")
            self.stream.flush()
        self._last_line = line
        self._last_done = done

    def close(self) -> None:
        """End the line so what follows starts on its own."""
        if self._tty and self._last_line:
            self.stream.write("\n")
            self.stream.flush()
