"""Live progress of a provider's search, shared through its work dir.

The Task API has no progress call, but the node and the provider share the
provider's work dir. While it computes, the provider replaces
``{subtask_id}.progress`` there a few times a second with the nonces tried
so far; the node reads it whenever it redraws. The file is replaced
atomically (written beside it, then renamed), so a reader sees a whole
record or the previous one, never half of one.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from tutorial_app.files import read_file_bounded, write_atomically

SUFFIX = ".progress"
INTERVAL_SECONDS = 0.2
"""How often a provider replaces its progress file while searching."""
_MAX_BYTES = 4096


@dataclass(frozen=True)
class SearchProgress:
    """Nonces a provider tried for one subtask, and for how long it searched."""

    hashes: int
    seconds: float
    done: bool


def progress_path(work_dir: Path, subtask_id: str) -> Path:
    """Where the provider for ``subtask_id`` reports its progress."""
    return work_dir / f"{subtask_id}{SUFFIX}"


def write_progress(path: Path, progress: SearchProgress) -> None:
    """Replace ``path`` with ``progress`` in one rename."""
    data = json.dumps({"hashes": progress.hashes, "seconds": round(progress.seconds, 3),
                       "done": progress.done}).encode()
    # Not fsynced: a report lost in a crash is replaced by the next one.
    write_atomically(path, data, durable=False)


def read_progress(path: Path) -> SearchProgress | None:
    """The last progress a provider reported; None if none (yet) or unreadable.

    The file comes from a provider, which the node does not trust: anything
    that is not a small, well-formed record counts as no report.
    """
    try:
        # Bounded, regular files only, no symlink followed, and a FIFO does
        # not block the node's event loop waiting for a writer.
        record = json.loads(read_file_bounded(path, _MAX_BYTES))
    except (OSError, ValueError):  # FileReadError is a ValueError
        return None
    if not isinstance(record, dict):
        return None
    hashes, seconds = record.get("hashes"), record.get("seconds")
    if type(hashes) is not int or hashes < 0 or not isinstance(seconds, (int, float)) or seconds < 0:
        return None
    return SearchProgress(hashes, float(seconds), record.get("done") is True)


class ProgressReporter:
    """Called by the engine with its progress; writes the file at most every INTERVAL_SECONDS."""

    def __init__(self, path: Path, interval: float = INTERVAL_SECONDS) -> None:
        self.path = path
        self.interval = interval
        self._last = 0.0

    def update(self, hashes: int, seconds: float) -> None:
        """Report a running search (throttled)."""
        now = time.monotonic()
        if now - self._last < self.interval:
            return
        self._last = now
        self._write(SearchProgress(hashes, seconds, False))

    def finish(self, hashes: int, seconds: float) -> None:
        """Report the search's final count (always written)."""
        self._write(SearchProgress(hashes, seconds, True))

    def _write(self, progress: SearchProgress) -> None:
        try:
            write_progress(self.path, progress)
        except OSError:
            pass  # progress is a courtesy: a full disk must not fail the subtask
