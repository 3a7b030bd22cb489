"""The interfaces an app implements: request handlers and lifecycle hooks.

Plain base classes, as in the published library: a subclass that leaves a
method out can still be instantiated; only calling that method fails.
"""
from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any, Optional

from golem_task_api import structs
from golem_task_api.dirutils import ProviderTaskDir, RequestorTaskDir
from golem_task_api.enums import VerifyResult
from golem_task_api.threading import Executor


class RequestorAppHandler:
    """The requestor side of an app; one instance serves every task of a node."""

    async def create_task(
        self, task_work_dir: RequestorTaskDir, max_subtasks_count: int,
        task_params: dict[str, Any],
    ) -> structs.Task:
        """Prepare a new task whose dirs the node already created."""
        raise NotImplementedError

    async def next_subtask(
        self, task_work_dir: RequestorTaskDir, subtask_id: str, opaque_node_id: str
    ) -> Optional[structs.Subtask]:
        """Hand out a subtask to a node, or None to give it nothing."""
        raise NotImplementedError

    async def verify(
        self, task_work_dir: RequestorTaskDir, subtask_id: str
    ) -> tuple[VerifyResult, Optional[str]]:
        """Check the result in subtask_outputs/{subtask_id}/; merge it on success."""
        raise NotImplementedError

    async def discard_subtasks(
        self, task_work_dir: RequestorTaskDir, subtask_ids: list[str]
    ) -> list[str]:
        """Drop the results of subtask_ids (and dependents); return the ids dropped."""
        raise NotImplementedError

    async def has_pending_subtasks(self, task_work_dir: RequestorTaskDir) -> bool:
        """True iff next_subtask would now hand out a subtask."""
        raise NotImplementedError

    async def run_benchmark(self, work_dir: Path) -> float:
        """A quick performance score of this machine."""
        raise NotImplementedError

    async def abort_task(self, task_work_dir: RequestorTaskDir) -> None:
        """Stop the task's verifications and clean up."""
        raise NotImplementedError

    async def abort_subtask(self, task_work_dir: RequestorTaskDir, subtask_id: str) -> None:
        """The subtask will not come back; make its part computable again."""
        raise NotImplementedError


class ProviderAppHandler:
    """The provider side of an app; one process serves one request."""

    async def compute(
        self, task_work_dir: ProviderTaskDir, subtask_id: str, subtask_params: dict[str, Any]
    ) -> Path:
        """Compute a subtask; return the result file's path (relative to task_work_dir)."""
        raise NotImplementedError

    async def run_benchmark(self, work_dir: Path) -> float:
        """A quick performance score of this machine."""
        raise NotImplementedError


class AppLifecycleHandler:
    """Hooks awaited around server start and stop, plus the shutdown request.

    `request_shutdown()` may be called from any thread: it wakes the
    server's event loop at once.
    """

    def __init__(self) -> None:
        self._shutdown_future: Optional[asyncio.Future[None]] = None
        self._shutdown_requested = False

    def _state_lock(self) -> threading.Lock:
        # Created lazily: subclasses may skip calling __init__, and unpickled
        # or forked copies need their own lock.
        lock = self.__dict__.get("_lock")
        if lock is None:
            lock = self.__dict__.setdefault("_lock", threading.Lock())
        return lock

    @property
    def shutdown_future(self) -> "asyncio.Future[None]":
        """Resolved once a shutdown was requested; created on the running loop."""
        with self._state_lock():
            future = self.__dict__.get("_shutdown_future")
            if future is None:
                future = asyncio.get_running_loop().create_future()
                if self.__dict__.get("_shutdown_requested", False):
                    future.set_result(None)
                self._shutdown_future = future
            return future

    def request_shutdown(self) -> None:
        """Start stopping the server and running computations; idempotent, thread-safe."""
        Executor.request_shutdown()
        with self._state_lock():
            self._shutdown_requested = True
            future = self.__dict__.get("_shutdown_future")
        if future is None or future.done():
            return
        loop = future.get_loop()
        try:
            on_loop_thread = asyncio.get_running_loop() is loop
        except RuntimeError:
            on_loop_thread = False
        if on_loop_thread:
            _resolve(future)
        else:
            try:
                # A plain set_result from another thread would not wake a loop
                # idle in select(); the server would stop only on its next I/O.
                loop.call_soon_threadsafe(_resolve, future)
            except RuntimeError:
                pass  # the loop is closed: nothing is waiting any more

    async def on_before_startup(self) -> None:
        """Awaited before the server starts listening."""

    async def on_after_startup(self) -> None:
        """Awaited once the server listens."""

    async def on_before_shutdown(self) -> None:
        """Awaited when shutdown starts, before the server closes."""

    async def on_after_shutdown(self) -> None:
        """Awaited after the server closed."""

    def __getstate__(self) -> dict[str, Any]:
        # A future is bound to its loop and a lock cannot be pickled: a copy starts fresh.
        state = self.__dict__.copy()
        state["_shutdown_future"] = None
        state["_shutdown_requested"] = False
        state.pop("_lock", None)
        return state


def _resolve(future: "asyncio.Future[None]") -> None:
    if not future.done():
        future.set_result(None)
