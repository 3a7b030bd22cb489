"""A one-line progress bar for a run, honest on pipes too."""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from typing import TextIO

_BAR_WIDTH = 20
LINE_WIDTH = 79
"""Longest line drawn: fits an 80-column terminal without wrapping."""


@dataclass(frozen=True)
class RunProgress:
    """What the node knows of a run right now."""

    verified: int
    total: int
    rate: float
    """Nonces tried per second, all providers together, over the last few seconds."""
    eta_seconds: float | None
    """Expected time to finish at that rate; None while no rate is known."""
    note: str = ""


def format_rate(hashes_per_second: float) -> str:
    """Human-readable hash rate: ``12.3 MH/s``."""
    for unit, scale in (("GH/s", 1e9), ("MH/s", 1e6), ("kH/s", 1e3)):
        if hashes_per_second >= scale:
            return f"{hashes_per_second / scale:.1f} {unit}"
    return f"{hashes_per_second:.0f} H/s"


def format_elapsed(seconds: float) -> str:
    """``MM:SS``, or ``H:MM:SS`` from an hour on."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def format_duration(seconds: float) -> str:
    """A duration for a person: clock time up to a day, then days or years."""
    if not math.isfinite(seconds):
        return "forever"
    if seconds < 86400:
        return format_elapsed(seconds)
    days = seconds / 86400
    if days < 365:
        return f"{days:.0f} days"
    years = days / 365
    return f"{years:.0f} years" if years < 1e6 else f"{years:.1e} years"


class ProgressBar:
    """Subtasks verified out of a total, elapsed time, combined rate and ETA.

    On a terminal the line redraws in place; elsewhere (CI logs, pipes) a new
    line is written only when the count changes or there is a note, so logs
    stay readable.
    """

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._started = time.monotonic()
        self._last_line = ""
        self._last_done = -1

    def update(self, progress: RunProgress) -> None:
        """Redraw with the run's current state."""
        done = progress.verified
        filled = _BAR_WIDTH * done // self.total if self.total else _BAR_WIDTH
        bar = "#" * filled + "-" * (_BAR_WIDTH - filled)
        elapsed = format_elapsed(time.monotonic() - self._started)
        line = f"[{bar}] {done}/{self.total} verified  {elapsed}  {format_rate(progress.rate)}"
        if progress.eta_seconds is not None and done < self.total:
            line += f"  ETA {format_duration(progress.eta_seconds)}"
        if progress.note:
            line += f"  {progress.note}"
        line = line[:LINE_WIDTH]
        if self._tty:
            pad = " " * max(0, len(self._last_line) - len(line))
            self.stream.write("\r" + line + pad)
            self.stream.flush()
        elif done != self._last_done or progress.note:
            self.stream.write(line + "\n")
            self.stream.flush()
        self._last_line = line
        self._last_done = done

    def message(self, text: str) -> None:
        """Print a line of its own (a log line) without breaking the bar."""
        if self._tty and self._last_line:
            self.stream.write("\r" + " " * len(self._last_line) + "\r" + text + "\n" + self._last_line)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        """End the line so what follows starts on its own."""
        if self._tty and self._last_line:
            self.stream.write("\n")
            self.stream.flush()
