"""The app end to end through the lifecycle driver, over gRPC, in child processes.

Every scenario runs twice: with the handlers in a child interpreter
(`InlineTaskApiService`) and with the real entrypoint as a subprocess
(`SubprocessTaskApiService`).
"""
from __future__ import annotations

import asyncio
import os
import shutil
import signal
import time
import zipfile
from pathlib import Path

import engine
import psutil
import pytest
from golem_task_api.client import ProviderAppClient
from golem_task_api.dirutils import ProviderTaskDir
from golem_task_api.enums import VerifyResult
from golem_task_api.testutils import TaskLifecycleUtil, find_free_port
from grpclib.const import Status
from grpclib.exceptions import GRPCError, StreamTerminatedError

from app_testing import MODES, provider_factory, requestor_factory, subtask_input_text
from tutorial_app.store import PartState, SubtaskState, TaskStore

DIFFICULTY = 10


def _params(count: int | None = None) -> dict:
    params: dict = {"difficulty": DIFFICULTY, "resources": ["input.txt"]}
    if count is not None:
        params["subtasks_count"] = count
    return params


def _outputs(util: TaskLifecycleUtil) -> dict[str, Path]:
    return {p.name: p for p in util.task_dir.task_outputs_dir.iterdir()}


def _check_result(util: TaskLifecycleUtil, path: Path) -> None:
    """A task output verifies with the engine against the requestor's own input copy."""
    sid = path.stem
    with zipfile.ZipFile(path) as zf:
        assert zf.namelist() == [sid]
        digest, nonce = zf.read(sid).decode().split(" ")
    engine.verify(subtask_input_text(util.task_dir, sid), DIFFICULTY, digest, int(nonce))


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", MODES)
def test_whole_task(tmp_path: Path, input_file: Path, mode: str) -> None:
    async def scenario() -> None:
        async with TaskLifecycleUtil(tmp_path) as util:
            await util.init_requestor(requestor_factory(mode))
            await util.start_task(3, _params(), [input_file])
            assert util.task.env_id == "docker_cpu"
            assert util.task.prerequisites == {"image": "tutorial-app", "tag": "0.1.0"}
            outcomes = await util.compute_remaining_subtasks(provider_factory(mode))
            assert [o.result for o in outcomes] == [VerifyResult.SUCCESS] * 3
            outputs = _outputs(util)
            assert sorted(outputs) == sorted(f"{o.subtask_id}.zip" for o in outcomes)
            for path in outputs.values():
                _check_result(util, path)
            texts = {subtask_input_text(util.task_dir, o.subtask_id) for o in outcomes}
            assert len(texts) == 3
            assert not await util.requestor.has_pending_subtasks(util.task_id)
            assert (await util.get_next_subtask())[1] is None

    asyncio.run(scenario())


@pytest.mark.timeout(180)
@pytest.mark.parametrize("mode", MODES)
def test_discard_all_then_one_and_recompute(tmp_path: Path, input_file: Path, mode: str) -> None:
    async def scenario() -> None:
        async with TaskLifecycleUtil(tmp_path) as util:
            provider = provider_factory(mode)
            await util.init_requestor(requestor_factory(mode))
            await util.start_task(2, _params(), [input_file])
            first = [o.subtask_id for o in await util.compute_remaining_subtasks(provider)]
            assert await util.requestor.discard_subtasks(util.task_id, first) == first
            assert _outputs(util) == {}
            assert await util.requestor.has_pending_subtasks(util.task_id)
            second = [o.subtask_id for o in await util.compute_remaining_subtasks(provider)]
            assert len(second) == 2
            assert await util.requestor.discard_subtasks(util.task_id, second[:1]) == second[:1]
            assert sorted(_outputs(util)) == [f"{second[1]}.zip"]
            third = await util.compute_remaining_subtasks(provider)
            assert [o.result for o in third] == [VerifyResult.SUCCESS]
            assert sorted(_outputs(util)) == sorted([f"{second[1]}.zip", f"{third[0].subtask_id}.zip"])
            for path in _outputs(util).values():
                _check_result(util, path)
            assert not await util.requestor.has_pending_subtasks(util.task_id)

    asyncio.run(scenario())


@pytest.mark.parametrize("mode", MODES)
def test_provider_shutdown_single_and_double(tmp_path: Path, mode: str) -> None:
    async def scenario() -> None:
        service = provider_factory(mode)(tmp_path)
        client = await ProviderAppClient.create(service, find_free_port())
        assert service.running()
        await client.shutdown()
        assert not service.running() and service.returncode == 0
        await client.shutdown()
        assert not service.running() and service.returncode == 0

    asyncio.run(scenario())


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", MODES)
def test_shutdown_during_compute_stops_workers(tmp_path: Path, mode: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Shutdown while 2 workers search at difficulty 256 (which never succeeds)."""
    monkeypatch.setenv("TUTORIAL_APP_WORKERS", "2")
    input_file = tmp_path / "in" / "input.txt"
    input_file.parent.mkdir()
    input_file.write_text("interrupt me", encoding="utf-8")

    async def scenario() -> float:
        async with TaskLifecycleUtil(tmp_path) as util:
            await util.init_requestor(requestor_factory(mode))
            await util.start_task(1, {"difficulty": 256, "resources": ["input.txt"]}, [input_file])
            sid, subtask = await util.get_next_subtask()
            provider_dir = ProviderTaskDir(tmp_path / "provider")
            provider_dir.prepare()
            for name in subtask.resources:
                shutil.copy(util.task_dir.subtask_inputs_dir / name, provider_dir.subtask_inputs_dir / name)
            client = await ProviderAppClient.create(
                provider_factory(mode)(Path(provider_dir)), find_free_port())
            try:
                compute = asyncio.ensure_future(client.compute(util.task_id, sid, subtask.params))
                server = psutil.Process(client.service.pid)
                workers = await _busy_workers(server, compute, count=2)
                started = time.monotonic()
                await client.shutdown(timeout=10)
                elapsed = time.monotonic() - started
            finally:
                await client.shutdown(timeout=1)
            with pytest.raises((GRPCError, StreamTerminatedError, OSError)):
                await compute
            # The server exited (shutdown returned); its workers were gone before that.
            assert not [w for w in workers if w.is_running() and w.status() != psutil.STATUS_ZOMBIE]
            assert not (Path(provider_dir) / f"{sid}.zip").exists()
            return elapsed

    elapsed = asyncio.run(scenario())
    assert elapsed < 5.0, f"shutdown took {elapsed:.2f} s"
    print(f"shutdown during compute ({mode}): {elapsed * 1000:.0f} ms to process exit")


async def _busy_workers(server: psutil.Process, compute: asyncio.Future, count: int) -> list[psutil.Process]:
    """The provider server's search workers, once ``count`` of them burn CPU.

    Only busy children count: the server also runs multiprocessing's resource
    tracker, which ends on its own shortly after the server.
    """
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert not compute.done(), compute
        workers = server.children(recursive=True)
        if len(workers) >= count:
            times = [sum(w.cpu_times()[:2]) for w in workers]
            await asyncio.sleep(0.2)
            busy = [w for w, t in zip(workers, times) if sum(w.cpu_times()[:2]) - t > 0.05]
            if len(busy) >= count:
                return busy
        else:
            await asyncio.sleep(0.05)
    raise AssertionError("the provider's workers never got busy")


@pytest.mark.timeout(90)
@pytest.mark.parametrize("mode", MODES)
def test_benchmarks(tmp_path: Path, mode: str) -> None:
    async def scenario() -> tuple[float, float]:
        async with TaskLifecycleUtil(tmp_path) as util:
            await util.init_requestor(requestor_factory(mode))
            requestor_score = await util.requestor.run_benchmark()
            provider_score = await util.run_provider_benchmark(provider_factory(mode))
            return requestor_score, provider_score

    requestor_score, provider_score = asyncio.run(scenario())
    assert 0 < requestor_score <= engine.BENCHMARK_MAX_SCORE
    assert 0 < provider_score <= engine.BENCHMARK_MAX_SCORE


@pytest.mark.timeout(180)
@pytest.mark.parametrize("mode", MODES)
def test_requestor_killed_mid_task_carries_on(tmp_path: Path, input_file: Path, mode: str) -> None:
    async def scenario() -> None:
        async with TaskLifecycleUtil(tmp_path) as util:
            provider = provider_factory(mode)
            requestor = requestor_factory(mode)
            await util.init_requestor(requestor)
            await util.start_task(4, _params(), [input_file])
            handed = [await util.get_next_subtask() for _ in range(3)]
            for sid, subtask in handed[:2]:
                await util.compute_subtask(sid, subtask, provider)
            assert await util.verify(handed[0][0]) == (VerifyResult.SUCCESS, None)

            old = util.requestor
            os.kill(old.service.pid, signal.SIGKILL)
            await old.service.wait_until_shutdown_complete()
            await old.shutdown(timeout=1)

            await util.init_requestor(requestor)
            # Verified before the kill: still verified, not counted again.
            assert await util.verify(handed[0][0]) == (VerifyResult.SUCCESS, None)
            # Computed before the kill, verified after.
            assert await util.verify(handed[1][0]) == (VerifyResult.SUCCESS, None)
            # Handed out before the kill, computed after.
            await util.compute_subtask(handed[2][0], handed[2][1], provider)
            assert await util.verify(handed[2][0]) == (VerifyResult.SUCCESS, None)
            rest = await util.compute_remaining_subtasks(provider)
            assert [o.result for o in rest] == [VerifyResult.SUCCESS]

            store = TaskStore.open(Path(util.task_dir))
            assert [p.state for p in store.parts()] == [PartState.VERIFIED] * 4
            verified = [s for s in store.subtasks() if s.state is SubtaskState.VERIFIED]
            assert sorted(s.part for s in verified) == [0, 1, 2, 3]
            assert sorted(_outputs(util)) == sorted(f"{s.subtask_id}.zip" for s in verified)

    asyncio.run(scenario())


@pytest.mark.timeout(180)
@pytest.mark.parametrize("mode", MODES)
def test_requestor_killed_during_concurrent_calls_stays_consistent(
    tmp_path: Path, input_file: Path, mode: str,
) -> None:
    """Whatever calls the kill interrupts, no part is held twice and each held one has its input."""
    async def scenario() -> None:
        async with TaskLifecycleUtil(tmp_path) as util:
            provider = provider_factory(mode)
            requestor = requestor_factory(mode)
            await util.init_requestor(requestor)
            await util.start_task(6, _params(), [input_file])
            client = util.requestor
            calls = [asyncio.ensure_future(client.next_subtask(util.task_id, f"s{i}", "node"))
                     for i in range(12)]
            await asyncio.sleep(0.02)
            os.kill(client.service.pid, signal.SIGKILL)
            replies = await asyncio.gather(*calls, return_exceptions=True)
            answered = {f"s{i}": r for i, r in enumerate(replies)
                        if r is not None and not isinstance(r, BaseException)}
            await client.service.wait_until_shutdown_complete()
            await client.shutdown(timeout=1)

            await util.init_requestor(requestor)
            store = TaskStore.open(Path(util.task_dir))
            held = {s.subtask_id: s.part for s in store.subtasks()}
            assert set(answered) <= set(held)
            assert len(set(held.values())) == len(held)
            salts = {p.index: p.salt for p in store.parts()}
            for sid, part in held.items():
                assert subtask_input_text(util.task_dir, sid).endswith(salts[part])
            # The node gives up on the calls it never heard back from.
            for sid in set(held) - set(answered):
                await util.requestor.abort_subtask(util.task_id, sid)
            for sid, subtask in answered.items():
                await util.compute_subtask(sid, subtask, provider)
                assert await util.verify(sid) == (VerifyResult.SUCCESS, None)
            await util.compute_remaining_subtasks(provider)
            assert [p.state for p in store.parts()] == [PartState.VERIFIED] * 6
            verified = [s for s in store.subtasks() if s.state is SubtaskState.VERIFIED]
            assert sorted(s.part for s in verified) == list(range(6))
            print(f"{mode}: {len(answered)} answered, {len(held)} held at the kill")

    asyncio.run(scenario())


@pytest.mark.parametrize("mode", MODES)
def test_provider_rejects_bad_params_and_exits_cleanly(tmp_path: Path, mode: str) -> None:
    async def scenario() -> None:
        provider_dir = ProviderTaskDir(tmp_path / "provider")
        provider_dir.prepare()
        service = provider_factory(mode)(Path(provider_dir))
        client = await ProviderAppClient.create(service, find_free_port())
        try:
            with pytest.raises(GRPCError) as info:
                await client.compute("t", "s1", {"difficulty": 300, "resources": ["s1.zip"]})
            assert info.value.status is Status.INVALID_ARGUMENT
            assert "difficulty=300 is out of range" in info.value.message
        finally:
            await client.shutdown(timeout=5)
        assert service.returncode == 0
        assert sorted(p.name for p in Path(provider_dir).iterdir()) == ["subtask_inputs"]

    asyncio.run(scenario())
