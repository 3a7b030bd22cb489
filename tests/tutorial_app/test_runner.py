"""`tutorial-app run`'s node loop: whole tasks, failed providers re-issued."""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from golem_task_api.client import RequestorAppClient
from golem_task_api.testutils import SubprocessTaskApiService

from tutorial_app.forkserver import ForkedService
from tutorial_app.node import ProviderResultError, _read_result
from tutorial_app.progressfile import SearchProgress, read_progress
from tutorial_app.provider import POOL_START_ENV
import engine
from app_testing import check_out_dir, children_now
from file_races import dir_to_symlink, swap_at_open, to_symlink
from tutorial_app.runner import (
    LocalServers, OutDirError, Provider, RunError, TaskRun, default_split, default_subtask_timeout,
    parse_address, scratch_dir,
)

HERE = Path(__file__).parent


class FirstProviderStuck(LocalServers):
    """The first provider hangs in compute; every later one is the real app."""

    providers_ahead = False  # so the first subtask surely goes to the first provider

    def __init__(self, scratch: Path, workers: int) -> None:
        super().__init__(scratch, workers)
        self.stuck: Provider | None = None

    def provider(self, slot: int) -> Provider:
        if self.stuck is not None:
            return super().provider(slot)
        work_dir = self.scratch / "stuck"
        work_dir.mkdir()
        argv = [sys.executable, str(HERE / "stuck_provider.py"), "--work-dir", str(work_dir)]
        self.stuck = Provider(SubprocessTaskApiService(work_dir, argv), work_dir, self._port())
        return self.stuck

    def release(self, provider: Provider) -> None:
        if provider is not self.stuck:  # the stuck one's marker file is read after the run
            super().release(provider)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("fork, difficulty, workers, pool_start",
                         [(True, 10, 2, None), (False, 10, 2, None), (True, 18, 2, "eager"), (True, 18, 2, None),
                          (True, 18, 1, None)],
                         ids=["forked-small", "subprocess", "forked-pool", "forked-threads", "forked-one-thread"])
def test_whole_task_verifies(tmp_path: Path, input_file: Path, fork: bool, difficulty: int, workers: int,
                             pool_start: str | None) -> None:
    env = {} if pool_start is None else {POOL_START_ENV: pool_start}
    servers = LocalServers(scratch_dir(tmp_path), workers=workers, fork=fork, env=env)
    run = TaskRun(servers, input_file, difficulty=difficulty, subtasks=3, providers=2,
                  out_dir=tmp_path / "out")
    asyncio.run(run.run())
    report = run.report()
    assert report.ok
    assert not report.failures
    assert {r.subtask_id for r in report.subtasks} == {p.stem for p in (tmp_path / "out" / "results").iterdir()}
    for result in report.subtasks:
        assert result.input.startswith(input_file.read_text(encoding="utf-8"))
        engine.verify(result.input, difficulty, result.digest, result.nonce)
    check_out_dir(tmp_path / "out", difficulty, 3)
    # Every provider reported what it tried: at least the nonces below each answer.
    assert report.hashes >= sum(r.nonce + 1 for r in report.subtasks)


@pytest.mark.timeout(60)
def test_provider_killed_mid_subtask_is_reissued(tmp_path: Path, input_file: Path) -> None:
    servers = FirstProviderStuck(scratch_dir(tmp_path), workers=1)
    run = TaskRun(servers, input_file, difficulty=8, subtasks=2, providers=1, out_dir=tmp_path / "out")

    async def kill_when_computing() -> None:
        while servers.stuck is None or not (servers.stuck.work_dir / "compute-started").exists():
            await asyncio.sleep(0.02)
        service = servers.stuck.service
        assert isinstance(service, (SubprocessTaskApiService, ForkedService)) and service.pid is not None
        os.kill(service.pid, signal.SIGKILL)

    async def main() -> None:
        killer = asyncio.create_task(kill_when_computing())
        await run.run()
        await killer

    asyncio.run(main())
    report = run.report()
    assert report.ok, report.failures
    assert len(report.failures) == 1 and "provider failed" in report.failures[0]
    stuck_subtask = (servers.stuck.work_dir / "compute-started").read_text()
    assert stuck_subtask not in {r.subtask_id for r in report.subtasks}
    check_out_dir(tmp_path / "out", 8, 2)


def test_default_split_shares_cores() -> None:
    # Each provider may use every core: at the tail of a run the last ones do.
    assert default_split(subtasks=8, providers=None, workers=None, cores=4) == (4, 4)
    assert default_split(subtasks=1, providers=None, workers=None, cores=4) == (1, 4)
    assert default_split(subtasks=2, providers=None, workers=None, cores=4) == (2, 4)
    assert default_split(subtasks=8, providers=2, workers=None, cores=4) == (2, 4)
    assert default_split(subtasks=8, providers=None, workers=2, cores=4) == (2, 2)
    assert default_split(subtasks=8, providers=None, workers=8, cores=2) == (1, 8)


@pytest.mark.parametrize("text", ["host", "host:", ":80", "host:http", "host:0", "host:70000"])
def test_parse_address_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_address(text)


def test_parse_address() -> None:
    assert parse_address("requestor:50005") == ("requestor", 50005)
    assert parse_address("[::1]:1") == ("::1", 1)


class NeverReadyProviders(LocalServers):
    """Every provider is a process that never answers the health check."""

    def provider(self, slot: int) -> Provider:
        work_dir = self.scratch / f"slow-{slot}"
        work_dir.mkdir()
        argv = [sys.executable, "-c", "import time; time.sleep(60)"]
        return Provider(SubprocessTaskApiService(work_dir, argv), work_dir, self._port())


@pytest.mark.timeout(40)
@pytest.mark.parametrize("slow", [False, True], ids=["computing", "starting"])
def test_requestor_death_ends_the_run_and_stops_every_provider(
    tmp_path: Path, input_file: Path, slow: bool,
) -> None:
    kind = NeverReadyProviders if slow else LocalServers
    servers = kind(scratch_dir(tmp_path), workers=1)
    run = TaskRun(servers, input_file, difficulty=256, subtasks=1, providers=1, out_dir=tmp_path / "out")

    before = children_now()  # the session's multiprocessing resource tracker

    async def kill_requestor() -> None:
        # Once providers are starting (slow) or one computes (its progress file).
        scratch = servers.scratch
        while not (list(scratch.glob("slow-*")) if slow else list(scratch.glob("providers/*/*.progress"))):
            await asyncio.sleep(0.02)
        while run._requestor is None:
            await asyncio.sleep(0.02)
        service = run._requestor.service
        assert isinstance(service, (SubprocessTaskApiService, ForkedService)) and service.pid is not None
        os.kill(service.pid, signal.SIGKILL)

    async def main() -> set[int]:
        killer = asyncio.create_task(kill_requestor())
        with pytest.raises(RunError, match="requestor"):
            await run.run()
        killed_at = time.monotonic()
        await killer
        # Noticed promptly, not after a provider's health check or search gave up.
        assert time.monotonic() - killed_at < 10
        # Checked before asyncio.run's own clean-up of leftover tasks could help.
        return children_now() - before

    assert asyncio.run(main()) == set()
    assert not run.report().ok


class FirstProviderLies(LocalServers):
    """The first provider answers a result path that is not a file; later ones are real."""

    providers_ahead = False

    def __init__(self, scratch: Path, workers: int, how: str) -> None:
        super().__init__(scratch, workers)
        self.how = how
        self.lied = False

    def provider(self, slot: int) -> Provider:
        if self.lied:
            return super().provider(slot)
        self.lied = True
        work_dir = self.scratch / "liar"
        work_dir.mkdir()
        argv = [sys.executable, str(HERE / "lying_provider.py"), self.how, "--work-dir", str(work_dir)]
        return Provider(SubprocessTaskApiService(work_dir, argv), work_dir, self._port())


def the_one_failure(servers: LocalServers, input_file: Path, tmp_path: Path) -> str:
    """Run one subtask at difficulty 4 whose first provider fails; the run must still
    verify it (on the next provider). Returns the one failure it reported."""
    run = TaskRun(servers, input_file, difficulty=4, subtasks=1, providers=1, out_dir=tmp_path / "out")
    asyncio.run(run.run())
    report = run.report()
    assert report.ok, report.failures
    assert len(report.failures) == 1, report.failures
    check_out_dir(tmp_path / "out", 4, 1)
    return report.failures[0]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["missing", "directory"])
def test_result_path_that_is_not_a_file_is_a_provider_failure(
    tmp_path: Path, input_file: Path, how: str,
) -> None:
    servers = FirstProviderLies(scratch_dir(tmp_path), workers=1, how=how)
    assert "provider failed" in the_one_failure(servers, input_file, tmp_path)


@pytest.mark.timeout(60)
def test_result_file_over_the_limit_is_a_provider_failure(tmp_path: Path, input_file: Path) -> None:
    servers = FirstProviderLies(scratch_dir(tmp_path), workers=1, how="huge")
    failure = the_one_failure(servers, input_file, tmp_path)
    assert "provider failed" in failure and "larger than" in failure


@pytest.mark.timeout(60)
def test_result_file_swapped_for_a_symlink_at_open_is_not_followed(
    tmp_path: Path, input_file: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"the node's own file")
    scratch = scratch_dir(tmp_path)
    servers = FirstProviderLies(scratch, workers=1, how="plain")
    swapped = swap_at_open(monkeypatch, scratch / "liar" / "result.zip", to_symlink(secret), shutil)
    failure = the_one_failure(servers, input_file, tmp_path)
    assert swapped
    assert "provider failed" in failure and "symlink" in failure


@pytest.mark.timeout(60)
def test_result_directory_swapped_for_a_symlink_at_open_is_not_followed(
    tmp_path: Path, input_file: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The provider answers out/result.zip; right before the node opens it, out/
    becomes a symlink to a directory of the node's. Only the last component
    being opened without following links would read the node's file."""
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = b"the node's own file"
    (outside / "result.zip").write_bytes(secret)
    scratch = scratch_dir(tmp_path)
    servers = FirstProviderLies(scratch, workers=1, how="nested")
    swapped = swap_at_open(monkeypatch, scratch / "liar" / "out", dir_to_symlink(outside))
    failure = the_one_failure(servers, input_file, tmp_path)
    assert swapped
    assert "whose directory is not one in its work dir" in failure
    assert not any(p.is_file() and p.read_bytes() == secret
                   for p in (scratch / "requestor").rglob("*"))


@pytest.mark.parametrize("answer", ["../escape.zip", "a/../../escape.zip", "/etc/passwd", "."])
def test_result_paths_leaving_the_work_dir_are_refused(tmp_path: Path, answer: str) -> None:
    (tmp_path / "escape.zip").write_bytes(b"outside")
    work = tmp_path / "work"
    (work / "a").mkdir(parents=True)
    with pytest.raises(ProviderResultError, match="not a file in its work dir"):
        _read_result(work, Path(answer))


@pytest.mark.timeout(60)
def test_second_run_into_the_same_out_dir_is_refused_and_keeps_the_first(
        tmp_path: Path, input_file: Path) -> None:
    out = tmp_path / "out"
    first = TaskRun(LocalServers(scratch_dir(tmp_path), workers=1), input_file,
                    difficulty=2, subtasks=2, providers=1, out_dir=out)
    asyncio.run(first.run())
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    summary = (out / "summary.json").read_text()
    second = TaskRun(LocalServers(scratch_dir(tmp_path), workers=1), input_file,
                     difficulty=6, subtasks=1, providers=1, out_dir=out)
    with pytest.raises(OutDirError, match="already holds a run"):
        asyncio.run(second.run())
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    assert (out / "summary.json").read_text() == summary
    check_out_dir(out, 2, 2)


@pytest.mark.timeout(60)
def test_hung_provider_subtask_is_reissued_after_the_timeout(tmp_path: Path, input_file: Path) -> None:
    servers = FirstProviderStuck(scratch_dir(tmp_path), workers=1)
    run = TaskRun(servers, input_file, difficulty=6, subtasks=2, providers=1,
                  out_dir=tmp_path / "out", subtask_timeout=2.0)
    started = time.monotonic()
    asyncio.run(run.run())
    report = run.report()
    assert report.ok, report.failures
    assert len(report.failures) == 1 and "subtask timeout (2.0 s)" in report.failures[0]
    assert servers.stuck is not None
    stuck_subtask = (servers.stuck.work_dir / "compute-started").read_text()
    assert report.failures[0].startswith(stuck_subtask)
    assert stuck_subtask not in {r.subtask_id for r in report.subtasks}
    assert not servers.stuck.service.running()
    assert time.monotonic() - started < 30
    check_out_dir(tmp_path / "out", 6, 2)


@pytest.mark.timeout(60)
def test_interrupted_run_summary_says_not_ok(tmp_path: Path, input_file: Path) -> None:
    servers = LocalServers(scratch_dir(tmp_path), workers=1)
    out = tmp_path / "out"
    run = TaskRun(servers, input_file, difficulty=256, subtasks=2, providers=1, out_dir=out)

    async def main() -> None:
        task = asyncio.create_task(run.run())
        while not any((read_progress(p) or SearchProgress(0, 0, False)).hashes
                      for p in servers.scratch.glob("providers/*/*.progress")):
            await asyncio.sleep(0.02)
        run.note_interrupt("interrupted by the test")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    summary = json.loads((out / "summary.json").read_text())
    assert summary == run.report().to_json()
    assert summary["ok"] is False
    assert summary["subtasks_total"] == 2 and summary["subtasks"] == []
    assert summary["error"].startswith("interrupted by the test")
    assert summary["out_dir"] == str(out.absolute())
    assert summary["hashes"] > 0  # the provider reported what it tried


def test_summary_written_at_start_says_not_ok(tmp_path: Path, input_file: Path) -> None:
    class Boom(LocalServers):
        async def open(self) -> None:
            summary = json.loads((tmp_path / "out" / "summary.json").read_text())
            assert summary["ok"] is False and summary["error"] == "the run has not finished"
            raise RuntimeError("no servers today")

    run = TaskRun(Boom(scratch_dir(tmp_path), workers=1), input_file, difficulty=1, subtasks=1,
                  providers=1, out_dir=tmp_path / "out")
    with pytest.raises(RuntimeError):
        asyncio.run(run.run())
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["ok"] is False and "no servers today" in summary["error"]


def test_default_subtask_timeout_follows_difficulty_and_rate() -> None:
    assert default_subtask_timeout(0, 1e6) == pytest.approx(30.0, abs=0.01)
    # 2^30 nonces at 1e7/s: ~107 s expected, so 12x that on top of the base.
    assert default_subtask_timeout(30, 1e7) == pytest.approx(30 + 12 * 2**30 / 1e7)
    assert default_subtask_timeout(30, 1e8) < default_subtask_timeout(30, 1e7)
    assert default_subtask_timeout(256, 1e9) is None


class ProviderFailsToStart(LocalServers):
    """Every provider writes a cause to its log and exits at once."""

    providers_ahead = False

    def provider(self, slot: int) -> Provider:
        work_dir = self.scratch / f"bad-{slot}"
        work_dir.mkdir()
        log = self.scratch / f"bad-{slot}.log"
        argv = [sys.executable, "-c", "import sys; print('kernel xyz is not available here'); sys.exit(3)"]
        return Provider(SubprocessTaskApiService(work_dir, argv, log_path=log), work_dir,
                        self._port(), log, f"provider {slot}")


@pytest.mark.timeout(60)
def test_provider_that_fails_to_start_is_reported_with_its_log(tmp_path: Path, input_file: Path) -> None:
    run = TaskRun(ProviderFailsToStart(scratch_dir(tmp_path), workers=1), input_file,
                  difficulty=1, subtasks=1, providers=1, out_dir=tmp_path / "out")
    with pytest.raises(RunError, match="in a row failed to start") as caught:
        asyncio.run(run.run())
    assert "kernel xyz is not available here" in str(caught.value)
    report = run.report()
    assert not report.ok and "kernel xyz" in (report.error or "")


def test_statuses_read_as_name_and_message() -> None:
    from grpclib.const import Status
    from grpclib.exceptions import GRPCError

    from tutorial_app.node import describe_error
    error = GRPCError(Status.FAILED_PRECONDITION, "subtask x: computation interrupted")
    assert describe_error(error) == "FAILED_PRECONDITION: subtask x: computation interrupted"
    assert describe_error(GRPCError(Status.UNAVAILABLE)) == "UNAVAILABLE"


@pytest.mark.timeout(60)
def test_provider_dying_mid_subtask_is_reported_with_its_log(tmp_path: Path, input_file: Path) -> None:
    servers = LocalServers(scratch_dir(tmp_path), workers=1)
    run = TaskRun(servers, input_file, difficulty=256, subtasks=1, providers=1, out_dir=tmp_path / "out")

    async def main() -> None:
        task = asyncio.create_task(run.run())
        while not list(servers.scratch.glob("providers/*/*.progress")):
            await asyncio.sleep(0.02)
        (computing,) = run._computing
        service = computing.service
        assert isinstance(service, ForkedService) and service.pid is not None
        os.kill(service.pid, signal.SIGKILL)
        while not run._failures:
            await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    (failure,) = run.report().failures
    assert "provider 0 failed: the connection to it broke" in failure
    assert "its log ends:" in failure and "searching at difficulty 256" in failure


@pytest.mark.timeout(60)
@pytest.mark.parametrize("keep", [False, True], ids=["tidied", "keep-work-dirs"])
def test_released_providers_leave_only_their_logs(tmp_path: Path, input_file: Path, keep: bool) -> None:
    scratch = scratch_dir(tmp_path)
    servers = LocalServers(scratch, workers=1, keep_work_dirs=keep)
    run = TaskRun(servers, input_file, difficulty=4, subtasks=4, providers=2, out_dir=tmp_path / "out")
    asyncio.run(run.run())
    assert run.report().ok, run.report().failures
    providers = scratch / "providers"
    dirs = [p for p in providers.iterdir() if p.is_dir()]
    logs = [p for p in providers.iterdir() if p.suffix == ".log"]
    input_copies = list(providers.rglob("subtask_inputs/*"))
    assert len(logs) >= 4
    if keep:
        assert len(dirs) == len(logs) and len(input_copies) >= 4
    else:
        assert dirs == [] and input_copies == []


@pytest.mark.timeout(60)
@pytest.mark.parametrize("providers", [1, 2])
def test_next_subtask_is_fetched_while_others_compute_but_no_more_compute_than_providers(
    tmp_path: Path, input_file: Path, monkeypatch: pytest.MonkeyPatch, providers: int,
) -> None:
    """A subtask is fetched for a serving provider before a compute slot frees
    (no idle gap between subtasks), yet only ``providers`` compute at once."""
    computing = 0
    most = 0
    fetched_while_all_computing = 0
    real_compute = TaskRun._compute
    real_next = RequestorAppClient.next_subtask

    async def compute(self: TaskRun, *args: Any) -> Any:
        nonlocal computing, most
        computing += 1
        most = max(most, computing)
        try:
            await asyncio.sleep(0.05)  # long enough for the next fetch to overlap
            return await real_compute(self, *args)
        finally:
            computing -= 1

    async def next_subtask(self: RequestorAppClient, *args: Any) -> Any:
        nonlocal fetched_while_all_computing
        fetched_while_all_computing += computing == providers
        return await real_next(self, *args)

    monkeypatch.setattr(TaskRun, "_compute", compute)
    monkeypatch.setattr(RequestorAppClient, "next_subtask", next_subtask)
    run = TaskRun(LocalServers(scratch_dir(tmp_path), workers=1), input_file,
                  difficulty=2, subtasks=4, providers=providers, out_dir=tmp_path / "out")
    asyncio.run(run.run())
    assert run.report().ok, run.report().failures
    assert most == providers
    if providers == 1:  # with more, which fetch overlaps which compute is up to timing
        assert fetched_while_all_computing >= 1
