"""Forward app servers' log lines to the node's terminal, each prefixed by its server.

The servers write their logs to files (so a failure can quote the last lines
even when nothing is forwarded); with ``-v`` the node follows those files
and prints every new complete line as ``[provider 3] ...``.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

POLL_SECONDS = 0.2


class LogForwarder:
    """Follows log files; `drain` prints what is new, `run` does so until cancelled."""

    def __init__(self, emit: Callable[[str], None]) -> None:
        self.emit = emit
        self._files: dict[Path, tuple[str, int, bytes]] = {}

    def follow(self, label: str, path: Path | None) -> None:
        """Print ``path``'s lines as ``[label] line`` from now on."""
        if path is not None and path not in self._files:
            self._files[path] = (label, 0, b"")

    def drain(self) -> None:
        """Print every complete line written since the last call."""
        for path, (label, offset, partial) in list(self._files.items()):
            try:
                with open(path, "rb") as f:
                    f.seek(offset)
                    data = f.read(1 << 20)
            except OSError:
                continue
            if not data:
                continue
            *lines, rest = (partial + data).split(b"\n")
            self._files[path] = (label, offset + len(data), rest)
            for line in lines:
                self.emit(f"[{label}] {line.decode('utf-8', 'replace').rstrip()}")

    async def run(self) -> None:
        """Drain every `POLL_SECONDS` until cancelled."""
        while True:
            self.drain()
            await asyncio.sleep(POLL_SECONDS)
