"""The provider handler in this process: compute, its inputs, interruption."""
from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from golem_task_api.errors import FailedPreconditionError, NotFoundError
from golem_task_api.threading import Executor

from app_testing import sha256_hex, solve
from tutorial_app.archive import ArchiveError, write_text_zip
from tutorial_app.provider import ProviderHandler, ProviderLifecycle


@pytest.fixture(autouse=True)
def _fresh_executor() -> Iterator[None]:
    """The shutdown flag is process-wide: clear it around each test."""
    Executor.initialize()
    yield
    Executor.initialize()


def _provider_dir(tmp_path: Path, text: str | None = "provider input") -> Path:
    work = tmp_path / "provider"
    (work / "subtask_inputs").mkdir(parents=True)
    if text is not None:
        write_text_zip(work / "subtask_inputs" / "s1.zip", "s1", text)
    return work


def _result(work: Path, rel: Path) -> tuple[str, str]:
    with zipfile.ZipFile(work / rel) as zf:
        (name,) = zf.namelist()
        return name, zf.read(name).decode()


def test_compute_on_a_pool_of_its_own(tmp_path: Path) -> None:
    work = _provider_dir(tmp_path)
    rel = asyncio.run(ProviderHandler().compute(work, "s1", {"difficulty": 8, "resources": ["s1.zip"]}))
    assert rel == Path("s1.zip") and not rel.is_absolute()
    digest, nonce = solve("provider input", 8)
    assert _result(work, rel) == ("s1", f"{digest} {nonce}")


def test_compute_on_the_lifecycle_pool_and_close(tmp_path: Path) -> None:
    work = _provider_dir(tmp_path)
    lifecycle = ProviderLifecycle()

    async def scenario() -> str:
        await lifecycle.on_before_startup()
        try:
            assert lifecycle.supervisor is not None
            rel = await ProviderHandler(lifecycle).compute(work, "s1", {"difficulty": 6})
        finally:
            await lifecycle.on_before_shutdown()
            await lifecycle.on_after_shutdown()
        return _result(work, rel)[1]

    digest, nonce = asyncio.run(scenario()).split()
    assert digest == sha256_hex("provider input" + nonce)
    assert lifecycle.supervisor is None


@pytest.mark.parametrize("params, error", [
    ({"difficulty": -1}, ValueError),
    ({"difficulty": 4, "resources": ["missing.zip"]}, NotFoundError),
    ({"difficulty": 4, "resources": ["../x.zip"]}, ValueError),
])
def test_bad_params(tmp_path: Path, params: dict, error: type) -> None:
    work = _provider_dir(tmp_path)
    with pytest.raises(error):
        asyncio.run(ProviderHandler().compute(work, "s1", params))
    assert sorted(p.name for p in work.iterdir()) == ["subtask_inputs"]


def test_input_that_is_a_directory(tmp_path: Path) -> None:
    work = _provider_dir(tmp_path, text=None)
    (work / "subtask_inputs" / "s1.zip").mkdir()
    with pytest.raises(ValueError, match="cannot read subtask input"):
        asyncio.run(ProviderHandler().compute(work, "s1", {"difficulty": 4, "resources": ["s1.zip"]}))


def test_input_that_is_a_symlink_outside_the_task_dir(tmp_path: Path) -> None:
    work = _provider_dir(tmp_path, text=None)
    elsewhere = tmp_path / "elsewhere.zip"
    write_text_zip(elsewhere, "s1", "a file the node never placed")
    (work / "subtask_inputs" / "s1.zip").symlink_to(elsewhere)
    with pytest.raises(ValueError, match="cannot read subtask input.*symlink"):
        asyncio.run(ProviderHandler().compute(work, "s1", {"difficulty": 0, "resources": ["s1.zip"]}))
    assert sorted(p.name for p in work.iterdir()) == ["subtask_inputs"]


def test_bad_input_zip(tmp_path: Path) -> None:
    work = _provider_dir(tmp_path, text=None)
    (work / "subtask_inputs" / "s1.zip").write_bytes(b"not a zip")
    with pytest.raises(ArchiveError, match="not a ZIP"):
        asyncio.run(ProviderHandler().compute(work, "s1", {"difficulty": 4}))


def test_shutdown_flag_interrupts_compute(tmp_path: Path) -> None:
    work = _provider_dir(tmp_path)
    threading.Timer(0.5, Executor.request_shutdown).start()
    started = time.monotonic()
    with pytest.raises(FailedPreconditionError, match="interrupted"):
        asyncio.run(ProviderHandler().compute(work, "s1", {"difficulty": 256}))
    assert time.monotonic() - started < 3
    assert not (work / "s1.zip").exists()


@pytest.mark.parametrize("difficulty", [4, 256])
def test_shutdown_before_compute_is_refused_not_internal(tmp_path: Path, difficulty: int) -> None:
    """Executor.run starts nothing once shutdown was requested: a clear refusal, no result."""
    work = _provider_dir(tmp_path)
    Executor.request_shutdown()
    with pytest.raises(FailedPreconditionError, match="shutting down"):
        asyncio.run(ProviderHandler().compute(work, "s1", {"difficulty": difficulty, "resources": ["s1.zip"]}))
    assert not (work / "s1.zip").exists()


def test_benchmark_after_shutdown_is_refused(tmp_path: Path) -> None:
    Executor.request_shutdown()
    with pytest.raises(FailedPreconditionError, match="shutting down"):
        asyncio.run(ProviderHandler().run_benchmark(tmp_path))


def test_benchmark_scores(tmp_path: Path) -> None:
    assert asyncio.run(ProviderHandler().run_benchmark(tmp_path)) > 0


def test_compute_reports_its_progress_in_the_work_dir(tmp_path: Path) -> None:
    from tutorial_app.progressfile import progress_path, read_progress
    work = _provider_dir(tmp_path)
    asyncio.run(ProviderHandler().compute(work, "s1", {"difficulty": 12, "resources": ["s1.zip"]}))
    progress = read_progress(progress_path(work, "s1"))
    _, nonce = solve("provider input", 12)
    assert progress is not None and progress.done
    assert progress.hashes >= nonce + 1


def test_pool_on_demand_starts_only_for_a_search_that_needs_it(tmp_path: Path) -> None:
    from tutorial_app.provider import IN_PROCESS_MAX_DIFFICULTY
    work = _provider_dir(tmp_path)
    lifecycle = ProviderLifecycle(workers=1, pool_start="on-demand")
    handler = ProviderHandler(lifecycle)
    big = IN_PROCESS_MAX_DIFFICULTY + 1

    async def scenario() -> tuple[bool, bool, Path]:
        await lifecycle.on_before_startup()
        try:
            await handler.compute(work, "s1", {"difficulty": 4, "resources": ["s1.zip"]})
            before = lifecycle.supervisor is None
            rel = await handler.compute(work, "s1", {"difficulty": big, "resources": ["s1.zip"]})
            after = lifecycle.supervisor is not None
        finally:
            await lifecycle.on_before_shutdown()
            await lifecycle.on_after_shutdown()
        return before, after, rel

    before, after, rel = asyncio.run(scenario())
    assert before and after  # no pool for the small search, one for the big one
    assert lifecycle.supervisor is None  # closed with the server
    digest, nonce = solve("provider input", big)
    assert _result(work, rel) == ("s1", f"{digest} {nonce}")


def test_bad_pool_start_setting_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from tutorial_app.provider import pool_start_policy
    monkeypatch.setenv("TUTORIAL_APP_POOL_START", "lazy")
    with pytest.raises(ValueError, match="TUTORIAL_APP_POOL_START='lazy'"):
        pool_start_policy()


_ON_DEMAND_SCRIPT = """
import asyncio, sys
from pathlib import Path
from tutorial_app.archive import write_text_zip
from tutorial_app.provider import IN_PROCESS_MAX_DIFFICULTY, ProviderHandler, ProviderLifecycle

async def main(work):
    lifecycle = ProviderLifecycle(workers=1, pool_start="on-demand")
    await lifecycle.on_before_startup()
    try:
        await ProviderHandler(lifecycle).compute(
            work, "s1", {"difficulty": IN_PROCESS_MAX_DIFFICULTY + 1, "resources": ["s1.zip"]})
        print(lifecycle.supervisor.start_method)
    finally:
        await lifecycle.on_before_shutdown()
        await lifecycle.on_after_shutdown()

work = Path(sys.argv[1])
(work / "subtask_inputs").mkdir(parents=True)
write_text_zip(work / "subtask_inputs" / "s1.zip", "s1", "provider input")
asyncio.run(main(work))
"""


@pytest.mark.timeout(60)
def test_a_pool_started_on_demand_by_a_single_threaded_provider_forks_its_workers(tmp_path: Path) -> None:
    """A provider has one thread until its first Compute runs something off the
    loop; a pool started after that spawns its workers, each a fresh interpreter
    (measured: 0.48 of the pool's rate at difficulty 24 instead of 0.65)."""
    done = subprocess.run([sys.executable, "-c", _ON_DEMAND_SCRIPT, str(tmp_path / "work")],
                          capture_output=True, text=True, timeout=50)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "fork"


def test_a_pool_that_cannot_start_fails_the_compute_with_the_reason(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import engine
    from tutorial_app.provider import IN_PROCESS_MAX_DIFFICULTY, ComputeFailedError
    work = _provider_dir(tmp_path)
    lifecycle = ProviderLifecycle(workers=1, pool_start="on-demand")

    async def no_pool() -> None:
        raise engine.PoolStartFailed("injected: fork refused")

    monkeypatch.setattr(lifecycle, "pool", no_pool)
    with pytest.raises(ComputeFailedError, match="s1: the search failed: injected: fork refused"):
        asyncio.run(ProviderHandler(lifecycle).compute(
            work, "s1", {"difficulty": IN_PROCESS_MAX_DIFFICULTY + 1, "resources": ["s1.zip"]}))


def test_the_local_node_has_its_providers_search_on_threads_unless_told_otherwise(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tutorial_app.provider import POOL_START_ENV
    from tutorial_app.servers import LocalServers
    monkeypatch.delenv(POOL_START_ENV, raising=False)
    assert LocalServers(tmp_path / "a", workers=2)._env[POOL_START_ENV] == "none"
    assert LocalServers(tmp_path / "b", workers=2, env={POOL_START_ENV: "eager"})._env[POOL_START_ENV] == "eager"
    monkeypatch.setenv(POOL_START_ENV, "on-demand")  # the user's own setting reaches the providers as it is
    assert POOL_START_ENV not in LocalServers(tmp_path / "c", workers=2)._env


def test_with_no_pool_a_big_search_runs_here_on_a_thread_per_worker_and_finds_the_pools_nonce(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import psutil
    from tutorial_app.provider import IN_PROCESS_MAX_DIFFICULTY
    caplog.set_level("INFO", logger="tutorial_app.provider")
    work = _provider_dir(tmp_path)
    lifecycle = ProviderLifecycle(workers=2, pool_start="none")
    big = IN_PROCESS_MAX_DIFFICULTY + 2
    children = set(psutil.Process().children())

    async def scenario() -> tuple[Path, set[psutil.Process]]:
        await lifecycle.on_before_startup()
        try:
            rel = await ProviderHandler(lifecycle).compute(work, "s1", {"difficulty": big, "resources": ["s1.zip"]})
            return rel, set(psutil.Process().children()) - children
        finally:
            await lifecycle.on_before_shutdown()
            await lifecycle.on_after_shutdown()

    rel, started = asyncio.run(scenario())
    assert lifecycle.searches_in_process and lifecycle.supervisor is None and not started
    digest, nonce = solve("provider input", big)
    assert _result(work, rel) == ("s1", f"{digest} {nonce}")
    assert any(" on 2 workers " in r.getMessage() for r in caplog.records)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("workers", [1, 2])
def test_shutdown_stops_a_long_search_that_runs_here_within_a_slice(tmp_path: Path, workers: int) -> None:
    import threading
    from tutorial_app.progressfile import progress_path, read_progress
    work = _provider_dir(tmp_path)
    lifecycle = ProviderLifecycle(workers=workers, pool_start="none")

    async def scenario() -> float:
        await lifecycle.on_before_startup()
        compute = asyncio.create_task(
            ProviderHandler(lifecycle).compute(work, "s1", {"difficulty": 60, "resources": ["s1.zip"]}))
        await asyncio.sleep(0.5)
        asked = time.monotonic()
        Executor.request_shutdown()
        with pytest.raises(FailedPreconditionError, match="interrupted"):
            await compute
        return time.monotonic() - asked

    assert asyncio.run(scenario()) < 0.2
    progress = read_progress(progress_path(work, "s1"))
    assert progress is not None and progress.done and progress.hashes > 1_000_000
    assert not [t for t in threading.enumerate() if t.name.startswith("engine-search-")]
