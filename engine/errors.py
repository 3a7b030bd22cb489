"""The engine's exceptions."""
from __future__ import annotations


class EngineError(Exception):
    """Base class of the engine's errors."""


class SearchCancelled(EngineError):
    """A search stopped because it was cancelled; carries the work done so far."""

    def __init__(self, message: str = "search cancelled", *, hashes: int = 0, seconds: float = 0.0) -> None:
        super().__init__(message)
        self.hashes = hashes
        self.seconds = seconds


class WorkerCrashed(EngineError):
    """A worker process died while the pool was in use; the pool is stopped and restarts at the next search."""


class WorkerStalled(WorkerCrashed):
    """A worker stopped making progress (stopped, frozen or stuck); it was killed like a dead one."""


class PoolStartFailed(EngineError):
    """The pool could not start all its workers; none is left running."""


class InvalidWorkerCount(EngineError, ValueError):
    """A worker count (an argument or $TUTORIAL_APP_WORKERS) is not a usable number of processes."""
