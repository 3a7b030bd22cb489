"""The provider side of the app: unpack a subtask's input, search, pack the result.

`ProviderLifecycle` owns the engine's worker pool for the life of the
provider server: it starts the pool while the server starts (so a Compute
does not pay for it) and closes it when the server stops. Small searches,
and every search of a provider told to run no pool (as the local node tells
its providers), run on threads of the provider's own process instead
(`engine.search_in_process`). `ProviderHandler` runs the search in
`golem_task_api.threading.Executor`, polling `Executor.is_shutting_down()`,
so a Shutdown during Compute stops the search promptly.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path
from typing import Any

import engine
from engine.supervisor import pool_start_method
import golem_task_api as api
from golem_task_api.errors import FailedPreconditionError, NotFoundError

from tutorial_app import meta
from tutorial_app.archive import (
    NotARegularFileError, TextMember, read_file_bounded, read_text_zip, write_text_zip,
)
from tutorial_app.params import InvalidParamsError, check_difficulty, check_file_name
from tutorial_app.progressfile import INTERVAL_SECONDS, ProgressReporter, progress_path
from tutorial_app.result import format_result

log = logging.getLogger(__name__)

PROVIDER_BENCHMARK_SECONDS = 1.0
"""How long the provider's benchmark hashes on every usable core."""


POOL_START_ENV = "TUTORIAL_APP_POOL_START"
"""``eager`` (default): start the engine pool with the server, so a Compute does not
wait for it. ``on-demand``: start it at the first Compute that needs one, so a
provider that only ever searches in-process (small difficulties) never pays for it.
``none``: no pool; every search runs on threads of the provider's own process
(`engine.search_in_process`), as many as its workers: what a node that starts a
provider per subtask wants, as a pool costs a process per worker per subtask."""
POOL_START_CHOICES = ("eager", "on-demand", "none")
IN_PROCESS_MAX_DIFFICULTY = 16
"""Searches expected to try at most 2^16 nonces (milliseconds on one core) run in
the provider's own process: handing them to the pool would cost more than they do."""


def pool_start_policy() -> str:
    """The pool start policy from ``TUTORIAL_APP_POOL_START``; ValueError naming a bad one."""
    value = os.environ.get(POOL_START_ENV, "").strip() or "eager"
    if value not in POOL_START_CHOICES:
        raise ValueError(f"{POOL_START_ENV}={value!r}: expected one of {', '.join(POOL_START_CHOICES)}")
    return value


LOCAL_NODE_POOL_START = "none"
"""The policy the local node gives its providers. Each serves one subtask, so a pool
would cost every subtask a process per worker; threads hash as fast. Measured with
8 subtasks at difficulty 24 on 2 cores (`python -m bench.e2e --seed 100`, mean of
20 runs): 0.65 of the pool's rate on one-worker pools, 0.68 on one thread, 0.73 on
two threads per provider (see `default_split`)."""


class ComputeFailedError(RuntimeError):
    """The engine could not finish a search (a worker died, stalled or did not start)."""


class ProviderLifecycle(api.AppLifecycleHandler):
    """Owns the engine's pool: started with the server (or on demand), closed on shutdown."""

    def __init__(self, workers: int | None = None, pool_start: str | None = None) -> None:
        """``workers``: pool size; None means the engine's usable cores.
        ``pool_start``: see `POOL_START_ENV`; None reads that variable at startup."""
        super().__init__()
        self.workers = workers
        self.pool_start = pool_start
        self._supervisor: engine.Supervisor | None = None
        self._policy: str | None = pool_start
        self._started = False
        self._closed = False
        self._starting: asyncio.Task[engine.Supervisor] | None = None

    @property
    def supervisor(self) -> engine.Supervisor | None:
        """The running pool, or None before it started and after shutdown."""
        return self._supervisor

    async def on_before_startup(self) -> None:
        """Start the worker processes before the server says SERVING (unless on demand)."""
        await super().on_before_startup()
        self._policy = self.pool_start or pool_start_policy()
        self._started = True
        if self._policy == "eager":
            await self.pool()

    @property
    def searches_in_process(self) -> bool:
        """True when every search runs in this process (policy ``none``): no pool ever starts."""
        return self._policy == "none"

    async def pool(self) -> engine.Supervisor | None:
        """The running pool, started now if need be; None outside the server's life."""
        if not self._started or self._closed or self.searches_in_process:
            return None
        if self._supervisor is None:
            if self._starting is None:
                self._starting = asyncio.create_task(self._start_pool())
            await asyncio.shield(self._starting)
        return self._supervisor

    async def _start_pool(self) -> engine.Supervisor:
        supervisor = engine.Supervisor(self.workers)
        if pool_start_method() == "fork":
            # Forking takes milliseconds and must come from this, the only, thread.
            supervisor.start()
        else:
            await asyncio.to_thread(supervisor.start)
        if self._closed:  # the server stopped while the pool started
            await asyncio.to_thread(supervisor.close)
        else:
            self._supervisor = supervisor
            log.info("provider: engine pool started")
        return supervisor

    async def on_before_shutdown(self) -> None:
        """Stop a running search at once (Shutdown during Compute)."""
        await super().on_before_shutdown()
        if self._supervisor is not None:
            self._supervisor.cancel()

    async def on_after_shutdown(self) -> None:
        """Close the pool: no worker outlives the server."""
        self._closed = True
        if self._starting is not None:
            with contextlib.suppress(Exception):
                await self._starting
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None:
            await asyncio.to_thread(supervisor.close)
            log.info("provider: engine pool closed")
        await super().on_after_shutdown()

    def __getstate__(self) -> dict[str, Any]:
        # A live pool cannot cross a process boundary; the child starts its own.
        state = super().__getstate__()
        state["_supervisor"] = None
        state["_starting"] = None
        return state


class ProviderHandler(api.ProviderAppHandler):
    """The provider app: finds the smallest nonce whose digest meets the target."""

    def __init__(self, lifecycle: ProviderLifecycle | None = None) -> None:
        """Search on ``lifecycle``'s pool when it runs one, else on a pool per call."""
        self.lifecycle = lifecycle

    async def compute(self, task_work_dir: Path, subtask_id: str, subtask_params: dict[str, Any]) -> Path:
        """Compute the subtask; returns the result ZIP's path relative to ``task_work_dir``."""
        check_file_name("subtask id", subtask_id)
        inputs_dir = task_work_dir / api.constants.SUBTASK_INPUTS_DIR
        difficulty, resource = parse_subtask_params(subtask_params, inputs_dir)
        in_process = difficulty <= IN_PROCESS_MAX_DIFFICULTY or (
            self.lifecycle is not None and self.lifecycle.searches_in_process)
        pool: engine.Supervisor | None = None
        if not in_process and self.lifecycle is not None:
            # Before anything runs off the loop: started while this is the
            # process's only thread, the pool forks its workers (milliseconds)
            # instead of spawning fresh interpreters.
            try:
                pool = await self.lifecycle.pool()
            except engine.PoolStartFailed as exc:
                raise ComputeFailedError(f"subtask {subtask_id}: the search failed: {exc}") from None
        try:
            member = await asyncio.to_thread(_read_input, inputs_dir / resource)
        except FileNotFoundError:
            raise NotFoundError(f"subtask input {resource!r} is not in subtask_inputs/") from None
        except (OSError, NotARegularFileError) as exc:  # a directory, a symlink, unreadable, ...
            raise InvalidParamsError(f"cannot read subtask input {resource!r}: {exc}") from None
        log.info("subtask %s: searching at difficulty %d over %d characters",
                 subtask_id, difficulty, len(member.text))
        # The node reads this file to show live progress; the Task API has no call for it.
        reporter = ProgressReporter(progress_path(task_work_dir, subtask_id))
        reporter.update(0, 0.0)
        try:
            if in_process:
                solution = await api.threading.Executor.run(
                    _search_in_process, member.text, difficulty, self._threads(difficulty), reporter)
            else:
                solution = await api.threading.Executor.run(_search, pool, member.text, difficulty, reporter)
        except engine.SearchCancelled as exc:
            reporter.finish(exc.hashes, exc.seconds)
            raise FailedPreconditionError(
                f"subtask {subtask_id}: computation interrupted (the provider is shutting down)"
            ) from None
        except (engine.WorkerCrashed, engine.PoolStartFailed) as exc:
            # The provider's own failure (a dead, stalled or unstartable worker): the node
            # hands the part to another provider; the message says what happened here.
            raise ComputeFailedError(f"subtask {subtask_id}: the search failed: {exc}") from None
        if solution is None:
            # Shutdown came before the search started: the Executor never ran it.
            raise FailedPreconditionError(
                f"subtask {subtask_id}: not computed (the provider is shutting down)")
        reporter.finish(solution.hashes, solution.seconds)
        result_name = f"{subtask_id}.zip"
        await asyncio.to_thread(
            write_text_zip, task_work_dir / result_name, subtask_id,
            format_result(solution.digest, solution.nonce))
        log.info("subtask %s: nonce %d after %d hashes in %.2f s on %d workers (%s)",
                 subtask_id, solution.nonce, solution.hashes, solution.seconds,
                 solution.workers, solution.kernel)
        return Path(result_name)

    def _threads(self, difficulty: int) -> int:
        """Threads for an in-process search: one for a small one, the provider's workers otherwise."""
        if difficulty <= IN_PROCESS_MAX_DIFFICULTY or self.lifecycle is None:
            return 1
        # Cores only: the memory a worker process needs (what usable_workers
        # also counts) is not what a thread needs.
        return self.lifecycle.workers or engine.usable_cores()

    async def run_benchmark(self, work_dir: Path) -> float:
        """Score this provider's hash rate on every usable core."""
        workers = self.lifecycle.workers if self.lifecycle is not None else None
        score = await api.threading.Executor.run(
            engine.benchmark, PROVIDER_BENCHMARK_SECONDS, workers=workers)
        if score is None:
            raise FailedPreconditionError("benchmark not run (the provider is shutting down)")
        return score


def parse_subtask_params(params: Any, inputs_dir: Path) -> tuple[int, str]:
    """Return (difficulty, input file name) from a subtask's params.

    ``resources`` names the input ZIP in ``subtask_inputs/``; requestors that
    send only ``difficulty`` (as the seed's does) get the single file there.
    """
    if not isinstance(params, dict):
        raise InvalidParamsError("subtask params must be a JSON object")
    if "difficulty" not in params:
        raise InvalidParamsError("subtask params lack difficulty")
    difficulty = check_difficulty(params["difficulty"])
    resources = params.get("resources")
    if resources is not None:
        if not isinstance(resources, list) or len(resources) != 1:
            raise InvalidParamsError("subtask resources must name exactly one input file")
        return difficulty, check_file_name("subtask resource", resources[0])
    try:
        names = sorted(p.name for p in inputs_dir.iterdir())
    except FileNotFoundError:
        names = []
    if len(names) != 1:
        raise InvalidParamsError(
            f"subtask params name no resource and subtask_inputs/ holds {len(names)} files;"
            " expected exactly one")
    return difficulty, names[0]


def _read_input(path: Path) -> TextMember:
    """The subtask's input text, from a regular file only (a symlink could point anywhere)."""
    data = read_file_bounded(path, meta.MAX_SUBTASK_INPUT_FILE_BYTES)
    return read_text_zip(data, meta.MAX_SUBTASK_INPUT_BYTES, label=path.name)


def _search(
    pool: engine.Supervisor | None, text: str, difficulty: int, reporter: ProgressReporter,
) -> engine.Solution:
    """Blocking search, on ``pool`` or on a pool of its own, reporting its progress."""
    stop = api.threading.Executor.is_shutting_down

    def progress(p: engine.Progress) -> None:
        reporter.update(p.hashes, p.seconds)

    if pool is not None:
        return pool.search(text, difficulty, should_stop=stop, progress=progress,
                           progress_interval=INTERVAL_SECONDS)
    with engine.Supervisor() as own:
        return own.search(text, difficulty, should_stop=stop, progress=progress,
                          progress_interval=INTERVAL_SECONDS)


def _search_in_process(text: str, difficulty: int, threads: int, reporter: ProgressReporter) -> engine.Solution:
    """Blocking search on ``threads`` threads of this process: the smallest nonce, as the pool finds."""
    return engine.search_in_process(
        text, difficulty, threads=threads, should_stop=api.threading.Executor.is_shutting_down,
        progress=lambda p: reporter.update(p.hashes, p.seconds), progress_interval=INTERVAL_SECONDS)
