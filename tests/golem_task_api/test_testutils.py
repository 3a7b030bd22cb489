"""The node simulator and the services it drives."""
from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path
from typing import Optional

import psutil
import pytest

from golem_task_api import services
from golem_task_api.enums import VerifyResult
from golem_task_api.testutils import (
    InlineTaskApiService,
    NoSubtaskError,
    SubprocessTaskApiService,
    SubtaskFailedError,
    TaskLifecycleUtil,
)

from gta_fakes import FakeProviderHandler, FakeRequestorHandler

APP = Path(__file__).with_name("gta_app.py")


def _inline_requestor(work_dir: Path) -> InlineTaskApiService:
    return InlineTaskApiService(work_dir, requestor_handler=FakeRequestorHandler())


def _inline_provider(work_dir: Path) -> InlineTaskApiService:
    return InlineTaskApiService(work_dir, provider_handler=FakeProviderHandler())


def _subprocess_app(work_dir: Path) -> SubprocessTaskApiService:
    return SubprocessTaskApiService(
        work_dir, [sys.executable, str(APP), "--work-dir", str(work_dir)]
    )


@pytest.mark.timeout(90)
@pytest.mark.parametrize("factory", [_inline_requestor, _subprocess_app], ids=["inline", "subprocess"])
def test_simulate_task_ships_resources_and_results(tmp_path: Path, factory) -> None:
    resource = tmp_path / "data.txt"
    resource.write_text("payload")
    provider_factory = _inline_provider if factory is _inline_requestor else _subprocess_app

    async def scenario() -> Path:
        async with TaskLifecycleUtil(tmp_path / "node") as util:
            outputs = await util.simulate_task(
                factory, provider_factory, max_subtasks_count=2, task_params={}, resources=[resource]
            )
            assert await util.requestor.has_pending_subtasks(util.task_id or "") is False
            return outputs

    outputs = asyncio.run(scenario())
    texts = sorted(p.read_text() for p in outputs.iterdir())
    # Each provider saw the resource the requestor named, copied into its own dir.
    assert texts == ["good 0 payload", "good 1 payload"]


def test_step_by_step_failure_no_subtask_and_benchmark(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with TaskLifecycleUtil(tmp_path) as util:
            await util.init_requestor(_inline_requestor)
            await util.start_task(1, {})
            subtask_id, none = await util.get_next_subtask(opaque_node_id="banned")
            assert none is None
            outcome = await util.compute_next_subtask(_inline_provider, opaque_node_id="cheater")
            assert outcome.result is VerifyResult.FAILURE
            assert outcome.output_path == util.task_dir.subtask_outputs_dir(outcome.subtask_id) / "result.txt"
            with pytest.raises(NoSubtaskError):
                await util.compute_next_subtask(_inline_provider)
            assert await util.run_provider_benchmark(_inline_provider) == pytest.approx(7.25)
            assert await util.requestor.run_benchmark() == pytest.approx(42.5)
            service = util.requestor.service
        assert not service.running()

    asyncio.run(scenario())


def test_simulate_task_reports_failed_verification(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with TaskLifecycleUtil(tmp_path) as util:
            await util.init_requestor(_inline_requestor)
            await util.start_task(1, {})
            subtask_id, subtask = await util.get_next_subtask(opaque_node_id="cheater")
            assert subtask is not None
            await util.compute_subtask(subtask_id, subtask, _inline_provider)
            result, reason = await util.verify(subtask_id)
            assert result is VerifyResult.FAILURE and reason
            # A second task on the same requestor, every result bad.
            with pytest.raises(SubtaskFailedError, match="FAILURE"):
                await util.simulate_task(
                    _inline_requestor, _inline_provider, 2, {}, opaque_node_id="cheater"
                )

    asyncio.run(scenario())


_STUBBORN_SERVER = """
import signal, subprocess, sys, time
from pathlib import Path
from typing import Optional
signal.signal(signal.SIGTERM, signal.SIG_IGN)
helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
Path(sys.argv[1]).write_text(str(helper.pid))
time.sleep(60)
"""


def _stubborn_service(tmp_path: Path) -> tuple[SubprocessTaskApiService, Path]:
    marker = tmp_path / "helper.pid"
    return SubprocessTaskApiService(
        tmp_path, [sys.executable, "-c", _STUBBORN_SERVER, str(marker)]
    ), marker


async def _started(service: SubprocessTaskApiService, marker: Path) -> int:
    await service.start(["provider", "1"], 1)
    while not marker.exists() or not marker.read_text():
        await asyncio.sleep(0.02)
    return int(marker.read_text())


def _gone(pid: int, within: float = 2.0) -> bool:
    """True once pid has ended (a zombie counts: it only awaits reaping)."""
    deadline = time.monotonic() + within
    while True:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


def test_stop_kills_a_server_ignoring_sigterm_and_its_helpers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(services, "STOP_GRACE_SECONDS", 0.3)
    service, marker = _stubborn_service(tmp_path)

    async def scenario() -> int:
        helper = await _started(service, marker)
        await service.stop()
        return helper

    helper = asyncio.run(scenario())
    assert service.returncode == -signal.SIGKILL
    # The helper was reparented when its parent died; stop() must not leave it.
    assert _gone(helper)


def test_a_cancelled_stop_still_ends_the_server(tmp_path: Path) -> None:
    service, marker = _stubborn_service(tmp_path)

    async def scenario() -> int:
        helper = await _started(service, marker)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(service.stop(), 0.3)
        return helper

    helper = asyncio.run(scenario())
    assert service.returncode == -signal.SIGKILL  # ended and reaped
    assert _gone(helper)


class _FakeClient:
    def __init__(self, error: Optional[Exception] = None) -> None:
        self.error = error
        self.shutdowns = 0

    async def shutdown(self, timeout: float = 10.0) -> None:
        self.shutdowns += 1
        if self.error is not None:
            raise self.error


def test_util_shutdown_stops_every_server_even_when_one_fails(tmp_path: Path) -> None:
    util = TaskLifecycleUtil(tmp_path)
    failing, provider, requestor = _FakeClient(RuntimeError("boom")), _FakeClient(), _FakeClient()
    util._providers = [failing, provider]  # type: ignore[list-item]
    util.requestor_client = requestor  # type: ignore[assignment]
    with pytest.raises(RuntimeError, match="boom"):
        asyncio.run(util.shutdown())
    assert (failing.shutdowns, provider.shutdowns, requestor.shutdowns) == (1, 1, 1)
