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
    """A worker process died while the pool was in use."""
