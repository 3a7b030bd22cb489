"""The node simulator and the services it drives."""
from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

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
