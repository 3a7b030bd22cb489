"""`TaskLifecycleUtil`: plays the Golem node against an app, for tests.

The published API (what app test suites call)::

    util = TaskLifecycleUtil(tmp_path)
    async with util.init_requestor_with_handler(MyRequestorHandler()):
        await util.create_task(task_id, 2, [input_file], {"difficulty": 4})
        util.init_provider_with_handler(MyProviderHandler(), task_id)
        subtask_ids = await util.compute_remaining_subtasks(task_id, "node")

Our earlier style is kept too: `await util.init_requestor(factory)`,
`start_task`, `get_next_subtask`, `compute_subtask`, `verify`, and
`compute_next_subtask` / `compute_remaining_subtasks` / `simulate_task` /
`run_provider_benchmark` given provider service factories, returning
`SubtaskOutcome` records. A method serves the published form when its first
argument is a task id (or absent) and ours when it is a service factory.
"""
from __future__ import annotations

import collections.abc
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Callable, Coroutine, Generator, Optional, Sequence, Union

from golem_task_api import structs
from golem_task_api.client import ProviderAppClient, RequestorAppClient, TaskApiService
from golem_task_api.dirutils import ProviderDir, ProviderTaskDir, RequestorDir, RequestorTaskDir
from golem_task_api.enums import VerifyResult
from golem_task_api.handlers import AppLifecycleHandler, ProviderAppHandler, RequestorAppHandler
from golem_task_api.services import find_free_port
from golem_task_api.testutils.inlinetaskapiservice import InlineTaskApiService

ServiceFactory = Callable[[Path], TaskApiService]

# The node id compute helpers use when the caller names none.
DEFAULT_NODE_ID = "node"


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


class _RequestorSession(collections.abc.Coroutine):  # type: ignore[type-arg]
    """What init_requestor returns: `async with` it (published) or await it (ours).

    A coroutine in its own right, so that loop helpers that insist on one
    (e.g. `asyncio.run_coroutine_threadsafe`) take the awaited form too; the
    connecting coroutine is only made when that form is used.
    """

    def __init__(
        self, util: "TaskLifecycleUtil", factory: ServiceFactory, port: Optional[int]
    ) -> None:
        self._util = util
        self._factory = factory
        self._port = port
        self._connecting: Optional[Coroutine[Any, Any, RequestorAppClient]] = None

    def _awaited(self) -> Coroutine[Any, Any, RequestorAppClient]:
        if self._connecting is None:
            port = self._port if self._port is not None else find_free_port()
            self._connecting = self._util._connect_requestor(self._factory, port)
        return self._connecting

    def __await__(self) -> Generator[Any, None, RequestorAppClient]:
        return self._awaited().__await__()

    def send(self, value: Any) -> Any:
        return self._awaited().send(value)

    def throw(self, *args: Any) -> Any:
        return self._awaited().throw(*args)

    def close(self) -> None:
        if self._connecting is not None:
            self._connecting.close()

    async def __aenter__(self) -> RequestorAppClient:
        port = self._port if self._port is not None else RequestorAppClient.DEFAULT_PORT
        return await self._util._connect_requestor(self._factory, port)

    async def __aexit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self._util.shutdown_requestor()


class TaskLifecycleUtil:
    """Plays the Golem node: dirs, resources, a provider per subtask, verification.

    The requestor's work dir is `work_dir/requestor` (`req_dir`); provider
    task dirs live under `work_dir/provider` (`prov_dir`). Used as an async
    context manager, every server it started is shut down on exit.
    """

    def __init__(self, work_dir: Path) -> None:
        self.work_dir = Path(work_dir)
        self.req_dir = RequestorDir(self.work_dir / "requestor")
        self.prov_dir = ProviderDir(self.work_dir / "provider")
        self.req_dir.mkdir(parents=True, exist_ok=True)
        self.prov_dir.mkdir(parents=True, exist_ok=True)
        self.requestor_client: Optional[RequestorAppClient] = None
        self.provider_client: Optional[ProviderAppClient] = None
        self.task_id: Optional[str] = None
        self.task: Optional[structs.Task] = None
        self._provider_service: Optional[Callable[[], TaskApiService]] = None
        self._provider_port: Optional[int] = None
        self._providers: list[ProviderAppClient] = []

    # -- our earlier names -------------------------------------------------

    @property
    def requestor_dir(self) -> RequestorDir:
        """Alias of `req_dir`."""
        return self.req_dir

    @property
    def providers_dir(self) -> Path:
        """Where factory-style computations get their fresh provider dirs."""
        return self.work_dir / "providers"

    @property
    def requestor(self) -> RequestorAppClient:
        """The requestor client; init_requestor must have been used."""
        if self.requestor_client is None:
            raise RuntimeError("init_requestor() has not been called")
        return self.requestor_client

    @property
    def task_dir(self) -> RequestorTaskDir:
        """The current task's requestor dir."""
        if self.task_id is None:
            raise RuntimeError("no task was created")
        return self.req_dir.task_dir(self.task_id)

    async def __aenter__(self) -> "TaskLifecycleUtil":
        return self

    async def __aexit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self.shutdown()

    # -- requestor ---------------------------------------------------------

    def init_requestor(
        self, get_task_api_service: ServiceFactory, port: Optional[int] = None
    ) -> _RequestorSession:
        """Start the requestor server and connect `requestor_client`.

        `async with` it: yields the client and shuts it down on exit (port
        default 50005). Awaited: returns the client (port default: a free one).
        """
        return _RequestorSession(self, get_task_api_service, port)

    def init_requestor_with_handler(
        self,
        requestor_handler: RequestorAppHandler,
        lifecycle_handler: Optional[AppLifecycleHandler] = None,
        port: Optional[int] = None,
    ) -> _RequestorSession:
        """init_requestor with an InlineTaskApiService serving requestor_handler."""
        return self.init_requestor(
            lambda work_dir: InlineTaskApiService(
                work_dir,
                requestor_handler=requestor_handler,
                requestor_lifecycle_handler=lifecycle_handler,
            ),
            port,
        )

    async def _connect_requestor(
        self, factory: ServiceFactory, port: int
    ) -> RequestorAppClient:
        self.requestor_client = await RequestorAppClient.create(factory(self.req_dir), port)
        return self.requestor_client

    async def shutdown_requestor(self, timeout: float = 10.0) -> None:
        """Shut the requestor server down (idempotent)."""
        if self.requestor_client is not None:
            await self.requestor_client.shutdown(timeout)

    def put_resources_to_requestor(self, resources: Sequence[Path], task_id: str) -> None:
        """Copy the user's resources into the task's task_inputs/ (made if needed)."""
        task_dir = self.req_dir.task_dir(task_id)
        task_dir.prepare()
        for resource in resources:
            shutil.copy2(resource, task_dir.task_inputs_dir / Path(resource).name)

    async def create_task(
        self,
        task_id: str,
        max_subtasks_count: int,
        resources: Sequence[Path],
        task_params: dict[str, Any],
    ) -> structs.Task:
        """Prepare the task dir, copy resources into task_inputs/, call CreateTask."""
        self.put_resources_to_requestor(resources, task_id)
        task = await self.requestor.create_task(task_id, max_subtasks_count, task_params)
        self.task_id, self.task = task_id, task
        return task

    async def start_task(
        self,
        max_subtasks_count: int,
        task_params: dict[str, Any],
        resources: Sequence[Path] = (),
        task_id: Optional[str] = None,
    ) -> str:
        """create_task under a fresh id (unless given); returns the id."""
        task_id = task_id or uuid.uuid4().hex
        await self.create_task(task_id, max_subtasks_count, resources, task_params)
        return task_id

    async def get_next_subtask(
        self, opaque_node_id: str = DEFAULT_NODE_ID, subtask_id: Optional[str] = None
    ) -> tuple[str, Optional[structs.Subtask]]:
        """NextSubtask on the current task under a fresh id; None when the app gives none."""
        if self.task_id is None:
            raise RuntimeError("no task was created")
        subtask_id = subtask_id or uuid.uuid4().hex
        subtask = await self.requestor.next_subtask(self.task_id, subtask_id, opaque_node_id)
        return subtask_id, subtask

    async def verify(self, subtask_id: str) -> tuple[VerifyResult, Optional[str]]:
        """Verify a shipped result of the current task; the reason is None when the app gave none."""
        if self.task_id is None:
            raise RuntimeError("no task was created")
        result, reason = await self.requestor.verify(self.task_id, subtask_id)
        return result, reason or None

    # -- provider ----------------------------------------------------------

    def init_provider(
        self,
        get_task_api_service: ServiceFactory,
        task_id: str,
        port: Optional[int] = None,
    ) -> ProviderTaskDir:
        """Prepare the provider's task dir; later providers are started through the factory.

        port: where start_provider listens (default 50006).
        """
        task_dir = self.prov_dir.task_dir(task_id)
        task_dir.prepare()
        self._provider_service = lambda: get_task_api_service(task_dir)
        self._provider_port = port
        return task_dir

    def init_provider_with_handler(
        self,
        provider_handler: ProviderAppHandler,
        task_id: str,
        lifecycle_handler: Optional[AppLifecycleHandler] = None,
        port: Optional[int] = None,
    ) -> ProviderTaskDir:
        """init_provider with InlineTaskApiServices serving provider_handler."""
        return self.init_provider(
            lambda work_dir: InlineTaskApiService(
                work_dir,
                provider_handler=provider_handler,
                provider_lifecycle_handler=lifecycle_handler,
            ),
            task_id,
            port,
        )

    async def start_provider(self) -> ProviderAppClient:
        """Start a provider server for the task of init_provider; connect `provider_client`."""
        if self._provider_service is None:
            raise RuntimeError("init_provider() has not been called")
        port = self._provider_port or ProviderAppClient.DEFAULT_PORT
        self.provider_client = await ProviderAppClient.create(self._provider_service(), port)
        self._providers.append(self.provider_client)
        return self.provider_client

    async def shutdown_provider(self, timeout: float = 10.0) -> None:
        """Shut the current provider server down (idempotent)."""
        if self.provider_client is not None:
            await self.provider_client.shutdown(timeout)

    def copy_resources_from_requestor(self, resources: Sequence[str], task_id: str) -> None:
        """Copy named files from the requestor's subtask_inputs/ to the provider's."""
        source = self.req_dir.task_dir(task_id).subtask_inputs_dir
        target = self.prov_dir.task_dir(task_id)
        target.prepare()
        for name in resources:
            shutil.copy2(source / name, target.subtask_inputs_dir / name)

    def copy_result_from_provider(
        self, output_filepath: Path, task_id: str, subtask_id: str
    ) -> Path:
        """Ship a provider's result to the requestor's subtask_outputs/{subtask_id}/."""
        outputs_dir = self.req_dir.subtask_outputs_dir(task_id, subtask_id)
        outputs_dir.mkdir(parents=True, exist_ok=True)
        shipped = outputs_dir / Path(output_filepath).name
        shutil.copy2(self.prov_dir.task_dir(task_id) / output_filepath, shipped)
        return shipped

    async def run_provider_benchmark(
        self,
        provider_service_factory: Optional[ServiceFactory] = None,
        port: Optional[int] = None,
    ) -> float:
        """RunBenchmark on a fresh provider (of init_provider, or of the factory given)."""
        if provider_service_factory is None:
            client = await self.start_provider()
        else:
            client = await self._start_fresh_provider(
                provider_service_factory,
                ProviderTaskDir(self.providers_dir / f"benchmark-{uuid.uuid4().hex}"),
                port,
            )
        try:
            return await client.run_benchmark()
        finally:
            await client.shutdown()

    # -- whole subtasks and tasks -----------------------------------------

    async def compute_next_subtask(
        self,
        task_id: Union[str, ServiceFactory],
        opaque_node_id: str = DEFAULT_NODE_ID,
    ) -> Any:
        """NextSubtask, copy inputs, Compute on a fresh provider, ship the result, Verify.

        Published form `(task_id, opaque_node_id) -> (subtask_id, verdict)`,
        using init_provider's service; ours `(provider_service_factory,
        opaque_node_id) -> SubtaskOutcome` on the current task.
        """
        if callable(task_id):
            return await self._compute_next_with_factory(task_id, opaque_node_id)
        subtask_id = uuid.uuid4().hex
        subtask = await self.requestor.next_subtask(task_id, subtask_id, opaque_node_id)
        if subtask is None:
            raise NoSubtaskError(f"no subtask for node {opaque_node_id!r}")
        self.copy_resources_from_requestor(subtask.resources, task_id)
        client = await self.start_provider()
        try:
            output = await client.compute(task_id, subtask_id, subtask.params)
        finally:
            await self.shutdown_provider()
        self.copy_result_from_provider(output, task_id, subtask_id)
        verdict, _ = await self.requestor.verify(task_id, subtask_id)
        return subtask_id, verdict

    async def compute_remaining_subtasks(
        self,
        task_id: Union[str, ServiceFactory],
        opaque_node_id: str = DEFAULT_NODE_ID,
    ) -> list[Any]:
        """compute_next_subtask while HasPendingSubtasks says so.

        Published form: returns the subtask ids and raises SubtaskFailedError
        on a verdict other than SUCCESS; ours returns every SubtaskOutcome.
        """
        if callable(task_id):
            factory = task_id
            outcomes = []
            while await self.requestor.has_pending_subtasks(self._current_task_id()):
                outcomes.append(await self._compute_next_with_factory(factory, opaque_node_id))
            return outcomes
        subtask_ids = []
        while await self.requestor.has_pending_subtasks(task_id):
            subtask_id, verdict = await self.compute_next_subtask(task_id, opaque_node_id)
            if verdict is not VerifyResult.SUCCESS:
                raise SubtaskFailedError(f"{subtask_id}: {verdict.name}")
            subtask_ids.append(subtask_id)
        return subtask_ids

    async def simulate_task(
        self,
        get_task_api_service: ServiceFactory,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        """A whole task end to end.

        Published form `(get_task_api_service, max_subtasks_count, task_params,
        resources, requestor_port=50005, provider_port=50006) -> RequestorTaskDir`:
        one factory for requestor and providers. Ours `(requestor_service_factory, provider_service_factory,
        max_subtasks_count, task_params, resources=(), opaque_node_id="node")`
        returns the task_outputs/ dir.
        """
        if (args and callable(args[0])) or "provider_service_factory" in kwargs:
            return await self._simulate_with_factories(get_task_api_service, *args, **kwargs)
        return await self._simulate(get_task_api_service, *args, **kwargs)

    async def _simulate(
        self,
        get_task_api_service: ServiceFactory,
        max_subtasks_count: int,
        task_params: dict[str, Any],
        resources: Sequence[Path],
        requestor_port: Optional[int] = None,
        provider_port: Optional[int] = None,
    ) -> RequestorTaskDir:
        task_id = uuid.uuid4().hex
        async with self.init_requestor(get_task_api_service, requestor_port):
            await self.create_task(task_id, max_subtasks_count, resources, task_params)
            self.init_provider(get_task_api_service, task_id, provider_port)
            await self.compute_remaining_subtasks(task_id, DEFAULT_NODE_ID)
        return self.req_dir.task_dir(task_id)

    # -- our factory-style helpers -----------------------------------------

    def _current_task_id(self) -> str:
        if self.task_id is None:
            raise RuntimeError("no task was created")
        return self.task_id

    async def compute_subtask(
        self,
        subtask_id: str,
        subtask: structs.Subtask,
        provider_service_factory: ServiceFactory,
        port: Optional[int] = None,
    ) -> Path:
        """Run a fresh provider on the subtask; ship its result to subtask_outputs/{id}/."""
        task_id = self._current_task_id()
        task_dir = self.task_dir
        provider_dir = ProviderTaskDir(self.providers_dir / subtask_id)
        provider_dir.prepare()
        for name in subtask.resources:
            shutil.copy2(task_dir.subtask_inputs_dir / name, provider_dir.subtask_inputs_dir / name)
        client = await self._start_fresh_provider(provider_service_factory, provider_dir, port)
        try:
            relative = await client.compute(task_id, subtask_id, subtask.params)
        finally:
            await client.shutdown()
        outputs_dir = task_dir.subtask_outputs_dir(subtask_id)
        outputs_dir.mkdir(parents=True, exist_ok=True)
        shipped = outputs_dir / relative.name
        shutil.copy2(provider_dir / relative, shipped)
        return shipped

    async def _compute_next_with_factory(
        self, factory: ServiceFactory, opaque_node_id: str
    ) -> SubtaskOutcome:
        subtask_id, subtask = await self.get_next_subtask(opaque_node_id)
        if subtask is None:
            raise NoSubtaskError(f"no subtask for node {opaque_node_id!r}")
        output = await self.compute_subtask(subtask_id, subtask, factory)
        result, reason = await self.verify(subtask_id)
        return SubtaskOutcome(subtask_id, subtask, output, result, reason)

    async def _simulate_with_factories(
        self,
        requestor_service_factory: ServiceFactory,
        provider_service_factory: ServiceFactory,
        max_subtasks_count: int,
        task_params: dict[str, Any],
        resources: Sequence[Path] = (),
        opaque_node_id: str = DEFAULT_NODE_ID,
    ) -> Path:
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

    async def _start_fresh_provider(
        self, factory: ServiceFactory, provider_dir: ProviderTaskDir, port: Optional[int]
    ) -> ProviderAppClient:
        provider_dir.prepare()
        client = await ProviderAppClient.create(
            factory(provider_dir), port if port is not None else find_free_port()
        )
        self._providers.append(client)
        return client

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
