"""Test helpers: services that run an app server locally, and a node simulator.

Example (test an app's handlers end to end without Docker)::

    import golem_task_api as api
    from golem_task_api.testutils import InlineTaskApiService, TaskLifecycleUtil

    async def run(work_dir):
        async with TaskLifecycleUtil(work_dir) as util:
            outputs = await util.simulate_task(
                requestor_service_factory=lambda d: InlineTaskApiService(
                    d, requestor_handler=MyRequestorHandler()),
                provider_service_factory=lambda d: InlineTaskApiService(
                    d, provider_handler=MyProviderHandler()),
                max_subtasks_count=2,
                task_params={"difficulty": 4},
                resources=[input_file],
            )
            assert sorted(p.name for p in outputs.iterdir()) == [...]

To drive a real app process instead, use
``SubprocessTaskApiService(d, [sys.executable, "-m", "my_app.entrypoint", "--work-dir", str(d)])``.
"""
from __future__ import annotations

import asyncio
import os
import pickle
import shutil
import signal
import socket
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Callable, Mapping, Optional, Sequence

import psutil

from golem_task_api.client import ProviderAppClient, RequestorAppClient, TaskApiService
from golem_task_api.dirutils import ProviderTaskDir, RequestorDir, RequestorTaskDir
from golem_task_api.enums import VerifyResult
from golem_task_api.handlers import AppLifecycleHandler, ProviderAppHandler, RequestorAppHandler
from golem_task_api import structs

ServiceFactory = Callable[[Path], TaskApiService]

# How long stop() waits after SIGTERM before it kills the process.
STOP_GRACE_SECONDS = 5.0


def find_free_port() -> int:
    """A TCP port that was free a moment ago (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SubprocessTaskApiService(TaskApiService):
    """Runs `[*argv_prefix, *command]` as a subprocess (a real app entrypoint).

    stop() sends SIGTERM and kills the process if it has not ended after
    STOP_GRACE_SECONDS.
    """

    def __init__(
        self,
        work_dir: Path,
        argv_prefix: Sequence[str],
        env: Optional[Mapping[str, str]] = None,
        log_path: Optional[Path] = None,
    ) -> None:
        self.work_dir = Path(work_dir)
        self.argv_prefix = list(argv_prefix)
        # Added to (not replacing) this process's environment.
        self.env = dict(env or {})
        # The server's stdout and stderr go there instead of ours when given.
        self.log_path = log_path
        self._process: Optional[asyncio.subprocess.Process] = None

    async def start(self, command: list[str], port: int) -> tuple[str, int]:
        if self._process is not None:
            raise RuntimeError("service already started")
        stdin_data = self._stdin_data(command)
        log = open(self.log_path, "ab") if self.log_path is not None else None
        try:
            self._process = await asyncio.create_subprocess_exec(
                *self.argv_prefix,
                *command,
                stdin=asyncio.subprocess.PIPE if stdin_data is not None else None,
                env={**os.environ, **self.env} if self.env else None,
                stdout=log,
                stderr=log,
            )
        finally:
            if log is not None:
                log.close()  # the child holds its own copy
        if stdin_data is not None:
            assert self._process.stdin is not None
            self._process.stdin.write(stdin_data)
            await self._process.stdin.drain()
            self._process.stdin.close()
        return "127.0.0.1", port

    def _stdin_data(self, command: list[str]) -> Optional[bytes]:
        return None

    @property
    def returncode(self) -> Optional[int]:
        """The process's exit code once it ended."""
        return None if self._process is None else self._process.returncode

    @property
    def pid(self) -> Optional[int]:
        """The process id once started."""
        return None if self._process is None else self._process.pid

    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    async def stop(self) -> None:
        process = self._process
        if process is None or process.returncode is not None:
            return
        # Taken before the server ends: afterwards its helpers are orphans we cannot find.
        descendants = _descendants(process.pid)
        try:
            try:
                process.send_signal(signal.SIGTERM)
                await asyncio.wait_for(process.wait(), STOP_GRACE_SECONDS)
            except ProcessLookupError:
                pass
            except asyncio.TimeoutError:
                process.kill()
            await process.wait()
        except BaseException:
            # Cancelled (or failed) mid-stop: end it anyway rather than leave it
            # running, and reap it so its transport closes with it.
            _kill(process)
            await asyncio.shield(process.wait())
            raise
        finally:
            _kill_survivors(descendants)

    async def wait_until_shutdown_complete(self) -> None:
        if self._process is not None:
            await self._process.wait()


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def _kill(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        try:
            process.kill()
        except ProcessLookupError:
            pass


def _kill_survivors(processes: list[psutil.Process]) -> None:
    for child in processes:
        try:
            child.kill()  # psutil checks the pid was not reused
        except psutil.Error:
            pass


class InlineTaskApiService(SubprocessTaskApiService):
    """Runs `entrypoint` with the given handler objects in a fresh child interpreter.

    Handlers are pickled into the child, so they must be picklable and their
    classes importable (the child gets the parent's sys.path). A plain
    subprocess rather than multiprocessing: spawning through multiprocessing
    leaves its resource-tracker process running for the parent's lifetime.
    """

    def __init__(
        self,
        work_dir: Path,
        requestor_handler: Optional[RequestorAppHandler] = None,
        provider_handler: Optional[ProviderAppHandler] = None,
        provider_lifecycle_handler: Optional[AppLifecycleHandler] = None,
    ) -> None:
        super().__init__(work_dir, [sys.executable, "-m", "golem_task_api._inline_child"])
        self._handlers = (requestor_handler, provider_handler, provider_lifecycle_handler)

    @property
    def exitcode(self) -> Optional[int]:
        """The child's exit code once it ended."""
        return self.returncode

    def _stdin_data(self, command: list[str]) -> Optional[bytes]:
        args = pickle.dumps((self.work_dir, *self._handlers))
        return pickle.dumps((list(sys.path), args))


class NoSubtaskError(RuntimeError):
    """The requestor app gave the simulated node no subtask."""


class SubtaskFailedError(RuntimeError):
    """A simulated task had a subtask whose verification did not succeed."""


@dataclass
class SubtaskOutcome:
    """What happened to one subtask in the simulated node."""

    subtask_id: str
    subtask: structs.Subtask
    output_path: Path
    result: VerifyResult
    reason: Optional[str]


class TaskLifecycleUtil:
    """Plays the Golem node: dirs, resources, provider per subtask, verification.

    Use it as an async context manager so every server it started is shut
    down. The requestor's work dir is `work_dir/requestor`; each computation
    gets a fresh provider dir under `work_dir/providers/`.
    """

    def __init__(self, work_dir: Path) -> None:
        self.work_dir = Path(work_dir)
        self.requestor_dir = RequestorDir(self.work_dir / "requestor")
        self.providers_dir = self.work_dir / "providers"
        self.requestor_client: Optional[RequestorAppClient] = None
        self.task_id: Optional[str] = None
        self.task: Optional[structs.Task] = None
        self._providers: list[ProviderAppClient] = []

    async def __aenter__(self) -> "TaskLifecycleUtil":
        return self

    async def __aexit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self.shutdown()

    @property
    def requestor(self) -> RequestorAppClient:
        """The requestor client; init_requestor must have been awaited."""
        if self.requestor_client is None:
            raise RuntimeError("init_requestor() has not been called")
        return self.requestor_client

    @property
    def task_dir(self) -> RequestorTaskDir:
        """The current task's requestor dir."""
        if self.task_id is None:
            raise RuntimeError("start_task() has not been called")
        return self.requestor_dir.task_dir(self.task_id)

    async def init_requestor(
        self, service_factory: ServiceFactory, port: Optional[int] = None
    ) -> RequestorAppClient:
        """Start the requestor server (on a free port unless given) and connect."""
        self.requestor_dir.mkdir(parents=True, exist_ok=True)
        service = service_factory(Path(self.requestor_dir))
        self.requestor_client = await RequestorAppClient.create(
            service, port if port is not None else find_free_port()
        )
        return self.requestor_client

    async def start_task(
        self,
        max_subtasks_count: int,
        task_params: dict[str, Any],
        resources: Sequence[Path] = (),
        task_id: Optional[str] = None,
    ) -> str:
        """Prepare the task dirs, copy resources into task_inputs/, call CreateTask."""
        task_id = task_id or uuid.uuid4().hex
        task_dir = self.requestor_dir.task_dir(task_id)
        task_dir.prepare()
        for resource in resources:
            shutil.copy2(resource, task_dir.task_inputs_dir / Path(resource).name)
        self.task = await self.requestor.create_task(task_id, max_subtasks_count, task_params)
        self.task_id = task_id
        return task_id

    async def get_next_subtask(
        self, opaque_node_id: str = "node", subtask_id: Optional[str] = None
    ) -> tuple[str, Optional[structs.Subtask]]:
        """Ask for a subtask under a fresh id; the subtask is None when the app gives none."""
        assert self.task_id is not None, "start_task() has not been called"
        subtask_id = subtask_id or uuid.uuid4().hex
        subtask = await self.requestor.next_subtask(self.task_id, subtask_id, opaque_node_id)
        return subtask_id, subtask

    async def compute_subtask(
        self,
        subtask_id: str,
        subtask: structs.Subtask,
        provider_service_factory: ServiceFactory,
        port: Optional[int] = None,
    ) -> Path:
        """Run a fresh provider on the subtask; ship its result to subtask_outputs/{id}/."""
        task_dir = self.task_dir
        provider_dir = ProviderTaskDir(self.providers_dir / subtask_id)
        provider_dir.prepare()
        for name in subtask.resources:
            shutil.copy2(task_dir.subtask_inputs_dir / name, provider_dir.subtask_inputs_dir / name)
        client = await self._start_provider(provider_service_factory, provider_dir, port)
        try:
            relative = await client.compute(self.task_id or "", subtask_id, subtask.params)
        finally:
            await client.shutdown()
        outputs_dir = task_dir.subtask_outputs_dir(subtask_id)
        outputs_dir.mkdir(parents=True, exist_ok=True)
        shipped = outputs_dir / relative.name
        shutil.copy2(Path(provider_dir) / relative, shipped)
        return shipped

    async def verify(self, subtask_id: str) -> tuple[VerifyResult, Optional[str]]:
        """Verify a shipped result."""
        assert self.task_id is not None, "start_task() has not been called"
        return await self.requestor.verify(self.task_id, subtask_id)

    async def compute_next_subtask(
        self, provider_service_factory: ServiceFactory, opaque_node_id: str = "node"
    ) -> SubtaskOutcome:
        """Get, compute and verify one subtask; NoSubtaskError when the app gives none."""
        subtask_id, subtask = await self.get_next_subtask(opaque_node_id)
        if subtask is None:
            raise NoSubtaskError(f"no subtask for node {opaque_node_id!r}")
        output = await self.compute_subtask(subtask_id, subtask, provider_service_factory)
        result, reason = await self.verify(subtask_id)
        return SubtaskOutcome(subtask_id, subtask, output, result, reason)

    async def compute_remaining_subtasks(
        self, provider_service_factory: ServiceFactory, opaque_node_id: str = "node"
    ) -> list[SubtaskOutcome]:
        """Compute subtasks one by one while the app has pending ones."""
        assert self.task_id is not None, "start_task() has not been called"
        outcomes = []
        while await self.requestor.has_pending_subtasks(self.task_id):
            outcomes.append(
                await self.compute_next_subtask(provider_service_factory, opaque_node_id)
            )
        return outcomes

    async def simulate_task(
        self,
        requestor_service_factory: ServiceFactory,
        provider_service_factory: ServiceFactory,
        max_subtasks_count: int,
        task_params: dict[str, Any],
        resources: Sequence[Path] = (),
        opaque_node_id: str = "node",
    ) -> Path:
        """Run a whole task; return its task_outputs/ dir. SubtaskFailedError unless all verify."""
        if self.requestor_client is None:
            await self.init_requestor(requestor_service_factory)
        await self.start_task(max_subtasks_count, task_params, resources)
        outcomes = await self.compute_remaining_subtasks(provider_service_factory, opaque_node_id)
        failed = [o for o in outcomes if o.result is not VerifyResult.SUCCESS]
        if failed:
            raise SubtaskFailedError(
                ", ".join(f"{o.subtask_id}: {o.result.name} {o.reason or ''}" for o in failed)
            )
        return self.task_dir.task_outputs_dir

    async def run_provider_benchmark(
        self, provider_service_factory: ServiceFactory, port: Optional[int] = None
    ) -> float:
        """Start a fresh provider and run its benchmark."""
        provider_dir = ProviderTaskDir(self.providers_dir / f"benchmark-{uuid.uuid4().hex}")
        provider_dir.prepare()
        client = await self._start_provider(provider_service_factory, provider_dir, port)
        try:
            return await client.run_benchmark()
        finally:
            await client.shutdown()

    async def _start_provider(
        self, factory: ServiceFactory, provider_dir: Path, port: Optional[int]
    ) -> ProviderAppClient:
        client = await ProviderAppClient.create(
            factory(Path(provider_dir)), port if port is not None else find_free_port()
        )
        self._providers.append(client)
        return client

    async def shutdown_requestor(self, timeout: float = 10.0) -> None:
        """Shut the requestor server down (idempotent)."""
        if self.requestor_client is not None:
            await self.requestor_client.shutdown(timeout)

    async def shutdown(self) -> None:
        """Stop every server this util started; the first failure is raised after all were tried."""
        first_error: Optional[BaseException] = None
        for stop in [client.shutdown for client in self._providers] + [self.shutdown_requestor]:
            try:
                await stop()
            except Exception as exc:  # keep stopping the others
                first_error = first_error or exc
        if first_error is not None:
            raise first_error
