"""Run blocking work off the event loop, with a process-wide shutdown flag.

Long computations started through `Executor.run` poll
`Executor.is_shutting_down()` and stop when it turns true; the server sets it
when it is told to shut down. The state is class-level because one app
process serves one runtime.
"""
from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
import time
from typing import Any, Callable, Optional, TypeVar

_T = TypeVar("_T")

# How often wait_for_shutdown looks at the running count: polling keeps it
# independent of the thread pool, which the running calls may fill.
_POLL_SECONDS = 0.01


class _NotStarted(Exception):
    """Raised in the worker thread when shutdown came before func could start."""


class Executor:
    """Process-wide helper for blocking calls; all methods are class methods."""

    _lock = threading.Lock()
    _shutdown_requested = False
    _running = 0

    @classmethod
    def initialize(cls) -> None:
        """Clear the shutdown flag (a fresh server start in this process)."""
        with cls._lock:
            cls._shutdown_requested = False

    @classmethod
    async def run(cls, func: Callable[..., _T], *args: Any, **kwargs: Any) -> Optional[_T]:
        """Run func(*args, **kwargs) in a worker thread and await its result.

        Once shutdown was requested func is not started and None is returned.
        """
        if cls.is_shutting_down():
            return None
        loop = asyncio.get_running_loop()
        call = functools.partial(contextvars.copy_context().run, func, *args, **kwargs)
        try:
            return await loop.run_in_executor(None, cls._tracked, call)
        except _NotStarted:
            return None

    @classmethod
    def _tracked(cls, call: Callable[[], _T]) -> _T:
        # Checked again here: shutdown may come while the call waits for a thread.
        with cls._lock:
            if cls._shutdown_requested:
                raise _NotStarted()
            cls._running += 1
        try:
            return call()
        finally:
            with cls._lock:
                cls._running -= 1

    @classmethod
    def request_shutdown(cls) -> None:
        """Ask running computations to stop and refuse new ones; idempotent, thread-safe."""
        with cls._lock:
            cls._shutdown_requested = True

    @classmethod
    def is_shutting_down(cls) -> bool:
        """True once a shutdown was requested."""
        with cls._lock:
            return cls._shutdown_requested

    @classmethod
    def running_count(cls) -> int:
        """How many calls started by `run` are running now."""
        with cls._lock:
            return cls._running

    @classmethod
    async def wait_for_shutdown(cls, timeout: float = 5.0) -> bool:
        """Wait until no call started by `run` is still running; False on timeout."""
        deadline = time.monotonic() + timeout
        while cls.running_count():
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(_POLL_SECONDS)
        return True
