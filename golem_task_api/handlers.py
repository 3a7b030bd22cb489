"""The interfaces an app implements: request handlers and lifecycle hooks."""
from __future__ import annotations

import abc
import asyncio
from pathlib import Path
from typing import Any, Optional

from golem_task_api import structs
from golem_task_api.enums import VerifyResult
from golem_task_api.threading import Executor


class RequestorAppHandler(abc.ABC):
    """The requestor side of an app; one instance serves every task of a node."""

    @abc.abstractmethod
    async def create_task(
        self, task_work_dir: Path, max_subtasks_count: int, task_params: dict[str, Any]
    ) -> structs.Task:
        """Prepare a new task whose dirs the node already created."""

    @abc.abstractmethod
    async def next_subtask(
        self, task_work_dir: Path, subtask_id: str, opaque_node_id: str
    ) -> Optional[structs.Subtask]:
        """Hand out a subtask to a node, or None to give it nothing."""

    @abc.abstractmethod
    async def verify(
        self, task_work_dir: Path, subtask_id: str
    ) -> tuple[VerifyResult, Optional[str]]:
        """Check the result in subtask_outputs/{subtask_id}/; merge it on success."""

    @abc.abstractmethod
    async def discard_subtasks(self, task_work_dir: Path, subtask_ids: list[str]) -> list[str]:
        """Drop the results of subtask_ids (and dependents); return the ids dropped."""

    @abc.abstractmethod
    async def has_pending_subtasks(self, task_work_dir: Path) -> bool:
        """True iff next_subtask would now hand out a subtask."""

    @abc.abstractmethod
    async def run_benchmark(self, work_dir: Path) -> float:
        """A quick performance score of this machine."""

    @abc.abstractmethod
    async def abort_task(self, task_work_dir: Path) -> None:
        """Stop the task's verifications and clean up."""

    @abc.abstractmethod
    async def abort_subtask(self, task_work_dir: Path, subtask_id: str) -> None:
        """The subtask will not come back; make its part computable again."""


class ProviderAppHandler(abc.ABC):
    """The provider side of an app; one process serves one request."""

    @abc.abstractmethod
    async def compute(
        self, task_work_dir: Path, subtask_id: str, subtask_params: dict[str, Any]
    ) -> Path:
        """Compute a subtask; return the result file's path (relative to task_work_dir)."""

    @abc.abstractmethod
    async def run_benchmark(self, work_dir: Path) -> float:
        """A quick performance score of this machine."""


class AppLifecycleHandler(abc.ABC):  # noqa: B024 - every hook is optional
    """Hooks awaited around server start and stop, plus the shutdown request."""

    def __init__(self) -> None:
        self._shutdown_future: Optional[asyncio.Future[None]] = None

    @property
    def shutdown_future(self) -> "asyncio.Future[None]":
        """Resolved once a shutdown was requested; created on the running loop."""
        # getattr: subclasses may skip calling __init__.
        future = getattr(self, "_shutdown_future", None)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._shutdown_future = future
        return future

    def request_shutdown(self) -> None:
        """Start stopping the server and running computations; idempotent."""
        Executor.request_shutdown()
        future = self.shutdown_future
        if not future.done():
            future.set_result(None)

    async def on_before_startup(self) -> None:
        """Awaited before the server starts listening."""

    async def on_after_startup(self) -> None:
        """Awaited once the server listens."""

    async def on_before_shutdown(self) -> None:
        """Awaited when shutdown starts, before the server closes."""

    async def on_after_shutdown(self) -> None:
        """Awaited after the server closed."""

    def __getstate__(self) -> dict[str, Any]:
        # A future is bound to its loop; a pickled handler starts fresh.
        state = self.__dict__.copy()
        state["_shutdown_future"] = None
        return state
