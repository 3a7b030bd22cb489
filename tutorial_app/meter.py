"""The node's view of the work its providers do: nonces tried, rate, expected time.

Each provider reports the nonces it tried in a progress file in its work dir
(`tutorial_app.progressfile`); the meter sums the reports of every subtask in
flight and the final counts of the finished ones, and keeps a few seconds of
samples to give an honest current rate for all providers together.
"""
from __future__ import annotations

import statistics
import time
from collections import deque
from pathlib import Path

from tutorial_app.progressfile import SearchProgress, progress_path, read_progress

RATE_WINDOW_SECONDS = 3.0
# A provider's own rate counts once it has searched this long (start-up noise).
_MIN_RATE_SECONDS = 0.3


def expected_hashes(difficulty: int) -> float:
    """Nonces a search at ``difficulty`` tries on average: 2^difficulty."""
    return 2.0 ** difficulty


class WorkMeter:
    """Nonces tried by all providers of a run, and the rate at which they are tried."""

    def __init__(self, window: float = RATE_WINDOW_SECONDS) -> None:
        self.window = window
        self._watched: dict[str, Path] = {}
        self._latest: dict[str, SearchProgress] = {}
        self._finished_hashes = 0
        self._samples: deque[tuple[float, int]] = deque()
        self._provider_rates: deque[float] = deque(maxlen=16)

    def watch(self, subtask_id: str, work_dir: Path) -> None:
        """Start reading the progress of ``subtask_id``'s provider."""
        self._watched[subtask_id] = progress_path(work_dir, subtask_id)

    def finish(self, subtask_id: str) -> int:
        """Stop watching ``subtask_id``; the nonces its provider last reported."""
        path = self._watched.pop(subtask_id, None)
        last = self._latest.pop(subtask_id, None)
        final = read_progress(path) if path is not None else None
        progress = final if final is not None else last
        hashes = progress.hashes if progress is not None else 0
        if progress is not None:
            self._note_rate(progress)
        self._finished_hashes += hashes
        return hashes

    def _note_rate(self, progress: SearchProgress) -> None:
        if progress.seconds >= _MIN_RATE_SECONDS:
            self._provider_rates.append(progress.hashes / progress.seconds)

    @property
    def hashes(self) -> int:
        """Nonces tried so far, as last sampled."""
        return self._finished_hashes + sum(p.hashes for p in self._latest.values())

    def sample(self) -> float:
        """Read every provider's report; the combined rate over the last `window` s."""
        for subtask_id, path in self._watched.items():
            progress = read_progress(path)
            if progress is not None:
                self._latest[subtask_id] = progress
        now = time.monotonic()
        total = self.hashes
        self._samples.append((now, total))
        while len(self._samples) > 2 and now - self._samples[1][0] >= self.window:
            self._samples.popleft()
        first_t, first_total = self._samples[0]
        return (total - first_total) / (now - first_t) if now > first_t else 0.0

    def provider_rate(self) -> float | None:
        """One provider's typical rate (nonces per second), once one was seen searching."""
        rates = list(self._provider_rates)
        rates += [p.hashes / p.seconds for p in self._latest.values() if p.seconds >= _MIN_RATE_SECONDS]
        return statistics.median(rates) if rates else None
