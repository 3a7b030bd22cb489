"""The image under a Golem node's container settings (DockerTaskApiService node mode).

A node runs the app as its own numeric uid with group 0, pins the container
to its first N CPUs, caps memory (1024 MB by default), drops capabilities
and publishes the port on 0.0.0.0 under the same number. Every test here
starts containers that way; ``node_uid`` is not the image's user.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

import dockerutil
import engine
from golem_task_api.client import ProviderAppClient, RequestorAppClient, ServiceNotReadyError
from golem_task_api.dirutils import ProviderTaskDir, RequestorDir
from golem_task_api.dockerservice import (
    CONTAINER_WORK_DIR,
    NODE_DROPPED_CAPABILITIES,
    DockerServiceError,
    DockerTaskApiService,
    NodeSettings,
    host_cpu_count,
)
from golem_task_api.enums import VerifyResult
from golem_task_api.testutils import TaskLifecycleUtil, find_free_port
from grpclib.exceptions import GRPCError, StreamTerminatedError
from tutorial_app.archive import read_single_member, write_text_zip
from tutorial_app.result import parse_result

pytestmark = pytest.mark.docker

NodeServiceFactory = Callable[..., DockerTaskApiService]

IMAGE_UID = 1000
DIFFICULTY = 8
# Never met: the search runs until it is shut down.
ENDLESS = 256
INPUT_TEXT = "a node's container, zażółć\n"
# How long a test lets the pool search before it looks at CPUs and memory.
SEARCH_WINDOW_SECONDS = 1.0
# Shutdown mid-compute must end the container well inside `docker stop`'s grace.
PROMPT_SHUTDOWN_SECONDS = 3.0
# Measured on this image (median of 3, `docker exec ... memory.max_usage_in_bytes`
# of a provider pinned to 1 and to 2 CPUs under 1024 MB): the server with its
# pool costs about 27 MiB, each engine worker about 10 MiB more. A limit
# between one worker's and two workers' peak: two workers are OOM-killed
# under it (measured at 42 MiB), one is not.
SERVER_MIB = 27
WORKER_MIB = 10
TIGHT_LIMIT_MIB = 44


def _allowed_workers(limit_mib: int) -> int:
    """The most workers a limit holds by the measured costs (at least one)."""
    return max(1, (limit_mib - SERVER_MIB) // WORKER_MIB)


def test_container_has_exactly_the_node_settings(
    tmp_path: Path, node_service: NodeServiceFactory, node_uid: int,
) -> None:
    """The container's config is the node's: uid alone, 0.0.0.0:P->P, cpuset, 1024 MB, caps, bridge, stdin."""
    port = find_free_port()
    service = node_service(tmp_path)

    async def scenario() -> tuple[dict[str, Any], tuple[str, int]]:
        # One string, as the published TaskApiService.start takes it.
        address = await service.start(f"requestor {port}", port)
        try:
            # Serving: a SIGTERM before the app installed its handler would be lost on PID 1.
            await dockerutil.until_serving(*address)
            assert service.container_id is not None
            return dockerutil.Container(service.container_id, service.name or "").inspect(), address
        finally:
            await service.stop()

    info, address = asyncio.run(scenario())
    config, host = info["Config"], info["HostConfig"]
    assert address == ("127.0.0.1", port)
    assert config["User"] == str(node_uid)
    assert config["Cmd"] == ["requestor", str(port)]
    assert config["OpenStdin"] is True
    assert host["PortBindings"] == {f"{port}/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(port)}]}
    assert host["CpusetCpus"] == "0"
    assert host["Memory"] == 1024 * 2**20
    assert sorted(c.lower().removeprefix("cap_") for c in host["CapDrop"]) == sorted(NODE_DROPPED_CAPABILITIES)
    assert host["NetworkMode"] == "bridge"
    assert host["Privileged"] is False
    (mount,) = info["Mounts"]
    assert (mount["Source"], mount["Destination"]) == (str(tmp_path.resolve()), str(CONTAINER_WORK_DIR))


@pytest.mark.timeout(120)
def test_whole_task_with_every_server_a_node_container(
    tmp_path: Path, node_service: NodeServiceFactory, containers: dockerutil.ContainerSet,
) -> None:
    """A requestor and three providers, node-mode containers under this process's uid, compute and verify a task."""
    input_file = tmp_path / "input.txt"
    input_file.write_text(INPUT_TEXT, encoding="utf-8")
    services: list[DockerTaskApiService] = []

    def recording(work_dir: Path) -> DockerTaskApiService:
        # The node's own uid, as a node passes it (root's in CI).
        services.append(node_service(work_dir, uid=os.getuid()))
        return services[-1]

    async def scenario() -> list[Path]:
        async with TaskLifecycleUtil(tmp_path / "node") as util:
            await util.init_requestor(recording)
            await util.start_task(
                3, {"difficulty": DIFFICULTY, "resources": ["input.txt"], "subtasks_count": 3},
                [input_file])
            outcomes = await util.compute_remaining_subtasks(recording)
            assert [o.result for o in outcomes] == [VerifyResult.SUCCESS] * 3, outcomes
            for outcome in outcomes:
                text = read_single_member(util.task_dir.subtask_inputs_dir / f"{outcome.subtask_id}.zip")
                assert text.startswith(INPUT_TEXT)
                engine.verify(text, DIFFICULTY, *parse_result(read_single_member(outcome.output_path)))
            return sorted(util.task_dir.task_outputs_dir.iterdir())

    outputs = asyncio.run(scenario())
    assert len(outputs) == 3 and len(services) == 4
    for service in services:
        assert not service.running()
        assert service.exit_code == 0, service.name
    assert containers.listed() == []


@pytest.mark.timeout(90)
def test_task_in_work_dirs_owned_by_a_uid_the_image_does_not_know(
    tmp_path: Path, node_service: NodeServiceFactory, node_uid: int,
    containers: dockerutil.ContainerSet,
) -> None:
    """Requestor and provider run as ``node_uid`` (not the image's 1000) in dirs that uid owns.

    The node's side is played by hand so that every file it puts into a
    shared dir is the node uid's, as on a real node: the task is created,
    computed and verified, and the app's result file is owned by that uid.
    """
    if node_uid == IMAGE_UID:
        pytest.skip(f"this process runs as the image's own uid {IMAGE_UID}")
    input_file = tmp_path / "input.txt"
    input_file.write_text(INPUT_TEXT, encoding="utf-8")
    requestor_dir = RequestorDir(tmp_path / "requestor")
    requestor_dir.mkdir()
    provider_dir = ProviderTaskDir(tmp_path / "provider")
    provider_dir.prepare()

    async def scenario() -> Path:
        requestor = await RequestorAppClient.create(node_service(Path(requestor_dir)), find_free_port())
        try:
            task_dir = requestor_dir.task_dir("task")
            task_dir.prepare()
            shutil.copy(input_file, task_dir.task_inputs_dir / "input.txt")
            dockerutil.hand_over(Path(task_dir), node_uid)
            await requestor.create_task(
                "task", 1, {"difficulty": DIFFICULTY, "resources": ["input.txt"], "subtasks_count": 1})
            subtask = await requestor.next_subtask("task", "subtask", "node")
            assert subtask is not None
            for name in subtask.resources:
                shutil.copy(task_dir.subtask_inputs_dir / name, provider_dir.subtask_inputs_dir / name)
            provider = await ProviderAppClient.create(node_service(Path(provider_dir)), find_free_port())
            try:
                relative = await provider.compute("task", "subtask", subtask.params)
            finally:
                await provider.shutdown()
            result = Path(provider_dir) / relative
            outputs = task_dir.subtask_outputs_dir("subtask")
            outputs.mkdir(parents=True)
            shutil.copy(result, outputs / result.name)
            dockerutil.hand_over(Path(task_dir), node_uid)
            verdict, reason = await requestor.verify("task", "subtask")
            assert verdict is VerifyResult.SUCCESS, reason
            assert not await requestor.has_pending_subtasks("task")
            return result
        finally:
            await requestor.shutdown()

    result = asyncio.run(scenario())
    # Written by the provider app itself: it ran as the node's uid.
    assert result.stat().st_uid == node_uid
    assert containers.listed() == []


@pytest.mark.timeout(90)
@pytest.mark.parametrize("cpus", [1, 2], ids=["1-pinned", "2-pinned"])
def test_provider_engine_uses_exactly_the_pinned_cpus(
    tmp_path: Path, node_service: NodeServiceFactory, containers: dockerutil.ContainerSet,
    node_uid: int, cpus: int,
) -> None:
    """Pinned to the first N CPUs: N engine workers, each allowed only those CPUs, each searching.

    No oversubscription: with 1 of 2 host CPUs pinned the pool has 1
    worker, not 2. Prints the worker count and the container's memory peak
    under the node's 1024 MB with the pool searching.
    """
    if host_cpu_count() < cpus:
        pytest.skip(f"the host has {host_cpu_count()} CPU(s); {cpus} cannot be pinned")
    service = node_service(_provider_dir(tmp_path), cpus=cpus)

    async def scenario() -> tuple[list[psutil.Process], dict[int, float], dict[int, list[int]], int | None, float]:
        client = await ProviderAppClient.create(service, find_free_port())
        try:
            compute = asyncio.ensure_future(client.compute("task", "subtask", _endless_params()))
            workers = await _until_searching(service, compute)
            busy = await _cpu_seconds(workers, SEARCH_WINDOW_SECONDS)
            affinities = {w.pid: sorted(w.cpu_affinity()) for w in workers}
            assert service.container_id is not None
            peak = dockerutil.memory_peak(service.container_id)
            started = time.monotonic()
            await client.shutdown(timeout=10)
            took = time.monotonic() - started
            with pytest.raises((GRPCError, StreamTerminatedError, OSError)):
                await compute
            return workers, busy, affinities, peak, took
        finally:
            await client.shutdown(timeout=1)

    workers, busy, affinities, peak, took = asyncio.run(scenario())
    peak_text = "unknown" if peak is None else f"{peak / 2**20:.1f} MiB"
    print(f"{cpus} of {host_cpu_count()} CPUs pinned: {len(workers)} engine workers, "
          f"CPU seconds in {SEARCH_WINDOW_SECONDS:g} s {sorted(busy.values())}, "
          f"memory peak {peak_text} of 1024 MiB, shutdown {took * 1000:.0f} ms")
    assert len(workers) == cpus
    assert all(cpu_list == list(range(cpus)) for cpu_list in affinities.values()), affinities
    # Every worker searched: none was started only to idle on a shared CPU.
    # 0.05 s of a 1 s window: a busy CI box shares the CPUs with other work.
    assert all(seconds > 0.05 for seconds in busy.values()), busy
    assert service.exit_code == 0
    assert containers.listed() == []


@pytest.mark.timeout(90)
def test_tight_memory_limit_means_fewer_workers_and_no_oom_kill(
    tmp_path: Path, node_service: NodeServiceFactory, containers: dockerutil.ContainerSet,
    node_uid: int,
) -> None:
    """Every host CPU pinned but only TIGHT_LIMIT_MIB of memory: fewer workers than CPUs, no OOM kill.

    The pool searches for a while under the limit and the provider then
    shuts down cleanly (exit 0): memory, not cores, sized the pool.
    """
    cpus = host_cpu_count()
    if cpus < 2:
        pytest.skip("needs at least 2 host CPUs to pin more CPUs than the memory limit allows workers")
    service = node_service(_provider_dir(tmp_path), cpus=cpus, mem_limit_mb=TIGHT_LIMIT_MIB)

    async def scenario() -> tuple[int, int | None, int | None]:
        try:
            client = await ProviderAppClient.create(service, find_free_port())
        except (ServiceNotReadyError, DockerServiceError) as exc:
            raise AssertionError(
                f"the provider died before serving under {TIGHT_LIMIT_MIB} MiB with {cpus} CPUs "
                f"(exit {service.exit_code}; 137 is the OOM killer): {exc}") from exc
        try:
            compute = asyncio.ensure_future(client.compute("task", "subtask", _endless_params()))
            workers = await _until_searching(service, compute)
            await asyncio.sleep(SEARCH_WINDOW_SECONDS)
            assert service.container_id is not None
            peak = dockerutil.memory_peak(service.container_id)
            kills = dockerutil.oom_kills(service.container_id)
            dead = [w.pid for w in workers if not w.is_running()]
            assert not dead, f"{len(dead)} of {len(workers)} workers died (OOM kills: {kills})"
            await client.shutdown(timeout=10)
            return len(workers), peak, kills
        finally:
            await client.shutdown(timeout=1)

    workers, peak, kills = asyncio.run(scenario())
    peak_text = "unknown" if peak is None else f"{peak / 2**20:.1f} MiB"
    print(f"{cpus} CPUs pinned under {TIGHT_LIMIT_MIB} MiB: {workers} engine workers, memory peak {peak_text}")
    assert workers < cpus
    assert workers <= _allowed_workers(TIGHT_LIMIT_MIB)
    assert kills in (0, None)
    assert service.exit_code == 0  # 137: killed
    assert containers.listed() == []


@pytest.mark.timeout(90)
def test_shutdown_mid_compute_ends_the_container_promptly(
    tmp_path: Path, node_service: NodeServiceFactory, containers: dockerutil.ContainerSet,
    node_uid: int,
) -> None:
    """Shutdown while the provider searches: the container is gone within PROMPT_SHUTDOWN_SECONDS, exit 0."""
    provider_dir = _provider_dir(tmp_path)
    service = node_service(provider_dir)

    async def scenario() -> float:
        client = await ProviderAppClient.create(service, find_free_port())
        compute = asyncio.ensure_future(client.compute("task", "subtask", _endless_params()))
        try:
            await _until_searching(service, compute)
            started = time.monotonic()
            await client.shutdown(timeout=10)
            took = time.monotonic() - started
        finally:
            await client.shutdown(timeout=1)
        with pytest.raises((GRPCError, StreamTerminatedError, OSError)):
            await compute
        return took

    took = asyncio.run(scenario())
    print(f"provider container ended {took * 1000:.0f} ms after Shutdown mid-compute")
    assert not service.running()
    # Not 137 (SIGKILL) nor 143: the app shut itself down on the Shutdown call.
    assert service.exit_code == 0
    assert took < PROMPT_SHUTDOWN_SECONDS, f"shutdown took {took:.2f} s"
    assert not (provider_dir / "subtask.zip").exists()
    assert containers.listed() == []


@pytest.mark.parametrize("role", ["requestor", "provider"])
def test_unwritable_work_dir_gives_one_line_naming_dir_and_uid(
    tmp_path: Path, image: str, containers: dockerutil.ContainerSet, node_uid: int, role: str,
) -> None:
    """A work dir the node's uid cannot write: exit 2 and one line naming the dir and the uid.

    Not SQLite's "unable to open database file", and no traceback.
    """
    work_dir = tmp_path / "work"
    work_dir.mkdir()
    if os.getuid() == 0:
        os.chown(work_dir, IMAGE_UID, IMAGE_UID)  # someone else's: the image user's, even
        work_dir.chmod(0o755)
    else:
        work_dir.chmod(0o555)
    port = find_free_port()
    settings = NodeSettings(cpus=1, uid=node_uid)
    container = containers.start(
        image, role, str(port),
        options=["--mount", f"type=bind,source={work_dir},target={CONTAINER_WORK_DIR}",
                 *settings.run_options(port)])
    deadline = time.monotonic() + 20
    while container.running():
        assert time.monotonic() < deadline, f"still running after 20 s:\n{container.logs()}"
        time.sleep(0.1)
    lines = container.logs().strip().splitlines()
    assert container.exit_code() == 2, lines
    assert len(lines) == 1, lines
    (line,) = lines
    assert f"work dir {CONTAINER_WORK_DIR} is not writable" in line
    assert f"uid {node_uid}" in line
    assert "unable to open database file" not in line


def _provider_dir(tmp_path: Path) -> Path:
    """A provider task dir with one subtask input, ``input.zip`` (see _endless_params)."""
    provider_dir = ProviderTaskDir(tmp_path / "provider")
    provider_dir.prepare()
    write_text_zip(provider_dir.subtask_inputs_dir / "input.zip", "input.txt", INPUT_TEXT)
    return Path(provider_dir)


def _endless_params() -> dict[str, Any]:
    return {"difficulty": ENDLESS, "resources": ["input.zip"]}


def _engine_workers(server: psutil.Process) -> list[psutil.Process]:
    """The engine's worker processes under the app server (not multiprocessing's resource tracker)."""
    workers = []
    for child in server.children(recursive=True):
        try:
            if "resource_tracker" not in " ".join(child.cmdline()):
                workers.append(child)
        except psutil.Error:
            pass
    return workers


async def _until_searching(service: DockerTaskApiService, compute: asyncio.Future[Any]) -> list[psutil.Process]:
    """The engine workers once one of them burns CPU (the search runs)."""
    assert service.container_id is not None
    pid = int(dockerutil.docker("inspect", "--format", "{{.State.Pid}}", service.container_id).stdout)
    server = psutil.Process(pid)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if compute.done():
            kills = dockerutil.oom_kills(service.container_id) if service.running() else None
            raise AssertionError(
                f"Compute ended before the search got busy: {compute.exception()!r} "
                f"(OOM kills in the container: {'unknown' if kills is None else kills})")
        workers = _engine_workers(server)
        busy = await _cpu_seconds(workers, 0.2)
        if any(seconds > 0.05 for seconds in busy.values()):
            return workers
    raise AssertionError("the provider's search never got busy")


async def _cpu_seconds(processes: list[psutil.Process], window: float) -> dict[int, float]:
    """CPU seconds each process used during ``window`` seconds."""
    def used(p: psutil.Process) -> float:
        try:
            times = p.cpu_times()
        except psutil.Error:
            return 0.0
        return times.user + times.system

    before = {p.pid: used(p) for p in processes}
    await asyncio.sleep(window)
    return {p.pid: used(p) - before[p.pid] for p in processes}
