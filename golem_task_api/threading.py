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
from typing import Any, Callable, Optional, TypeVar

_T = TypeVar("_T")


class Executor:
    """Process-wide helper for blocking calls; all methods are class methods."""

    _shutdown_requested = threading.Event()
    _idle = threading.Condition()
    _running = 0

    @classmethod
    def initialize(cls) -> None:
        """Clear the shutdown flag (a fresh server start in this process)."""
        cls._shutdown_requested.clear()

    @classmethod
    async def run(cls, func: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """Run func(*args, **kwargs) in a worker thread and await its result."""
        loop = asyncio.get_running_loop()
        call = functools.partial(contextvars.copy_context().run, func, *args, **kwargs)
        return await loop.run_in_executor(None, cls._tracked, call)

    @classmethod
    def _tracked(cls, call: Callable[[], _T]) -> _T:
        with cls._idle:
            cls._running += 1
        try:
            return call()
        finally:
            with cls._idle:
                cls._running -= 1
                cls._idle.notify_all()

    @classmethod
    def request_shutdown(cls) -> None:
        """Ask running computations to stop; idempotent."""
        cls._shutdown_requested.set()

    @classmethod
    def is_shutting_down(cls) -> bool:
        """True once a shutdown was requested."""
        return cls._shutdown_requested.is_set()

    @classmethod
    def wait_for_shutdown(cls, timeout: Optional[float] = None) -> bool:
        """Block until no call started by `run` is still running; False on timeout."""
        with cls._idle:
            return cls._idle.wait_for(lambda: cls._running == 0, timeout)
