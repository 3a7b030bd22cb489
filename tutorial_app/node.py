"""The node loop: one task driven from creation to its last verification.

Data flow of one run::

    requestor app server (one process, lives for the whole run)
        CreateTask
        NextSubtask ──▶ subtask_inputs/{id}.zip ──copy──▶ provider work dir
                                                          provider app server
                                                          (one per subtask, started
                                                           ahead by the ProviderPool)
                                                          Compute ──▶ {id}.zip
                                                          {id}.progress (live count)
        Verify ◀── subtask_outputs/{id}/{id}.zip ◀──copy──┘
        verified result + its exact input ──▶ out dir; summary.json at the end

A provider that dies, fails, lies or overruns the subtask timeout has its
subtask aborted; the requestor makes the part computable again and the node
issues it to a new provider, up to a bounded number of failures. The same
loop drives app servers that run elsewhere: only the `Servers` differ.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from golem_task_api import dirutils
from golem_task_api.client import RequestorAppClient, ServiceNotReadyError
from golem_task_api.enums import VerifyResult
from golem_task_api.structs import Subtask
from golem_task_api.services import SubprocessTaskApiService
from grpclib.exceptions import GRPCError, StreamTerminatedError

from tutorial_app.archive import read_single_member
from tutorial_app.forkserver import ForkedService
from tutorial_app.files import (
    FileReadError, UnsafePathError, open_dir_under, read_file_bounded, write_atomically,
)
from tutorial_app.logtail import LogForwarder
from tutorial_app.meta import MAX_RESULT_FILE_BYTES
from tutorial_app.meter import WorkMeter, expected_hashes
from tutorial_app.outdir import OutDir, check_out_dir
from tutorial_app.pool import ProviderPool, ProviderStartError, ReadyProvider
from tutorial_app.progress import RunProgress
from tutorial_app.provider import IN_PROCESS_MAX_DIFFICULTY
from tutorial_app.report import RunReport, SubtaskResult
from tutorial_app.result import parse_result
from tutorial_app.servers import Provider, Servers, log_tail

logger = logging.getLogger(__name__)

# Enough to survive a few crashed or lying providers without looping forever.
FAILURES_PER_SUBTASK = 3
SHUTDOWN_TIMEOUT = 5.0
# A provider that overran its subtask's time is stuck: it gets less grace.
STUCK_SHUTDOWN_TIMEOUT = 1.0
# How often the progress callback hears from a run.
TICK_SECONDS = 0.25
# The default subtask timeout: start-up and transfers, plus enough searching
# that a healthy provider overruns it with probability e^-TAIL (the smallest
# nonce is geometrically distributed with mean 2^difficulty).
TIMEOUT_BASE_SECONDS = 30.0
TIMEOUT_TAIL = 12.0
# Beyond this a timeout means nothing (difficulty 256): none is set.
NO_TIMEOUT_BEYOND = 1e8
# Providers starting or serving idle per provider computing: a start waits
# on the health check's poll (0.1 s), so at low difficulty a few must be on
# their way at once for one to be ready whenever a subtask is issued.
PROVIDERS_AHEAD_PER_SLOT = 3
# Subtasks fetched for a serving provider before a compute slot is free.
PREPARED_AHEAD = 1
DEFAULT_RATE_HINT = 1e6
"""A provider's rate assumed until one is measured: the slowest kernel's."""


# Services whose process this node started: not running means gone.
OWN_PROCESSES = (SubprocessTaskApiService, ForkedService)


class RunError(Exception):
    """The run could not finish: every subtask was not verified."""


class ProviderResultError(Exception):
    """The path a provider's Compute answered is not a result file in its work dir."""


class SubtaskTimeoutError(Exception):
    """A provider did not return its subtask's result in time."""


ProgressFn = Callable[[RunProgress], None]


def default_subtask_timeout(difficulty: int, provider_rate: float) -> float | None:
    """Seconds a subtask may take on one provider; None when no finite bound makes sense."""
    timeout = TIMEOUT_BASE_SECONDS + TIMEOUT_TAIL * expected_hashes(difficulty) / provider_rate
    return None if timeout > NO_TIMEOUT_BEYOND else timeout


def expected_run_seconds(difficulty: int, subtasks: int, rate: float) -> float:
    """The search time a run needs on average at ``rate`` nonces per second, all providers."""
    return subtasks * expected_hashes(difficulty) / rate


def describe_error(exc: BaseException) -> str:
    """A failed call as a person reads it: ``FAILED_PRECONDITION: <message>``."""
    if isinstance(exc, GRPCError):
        return f"{exc.status.name}: {exc.message}" if exc.message else exc.status.name
    if isinstance(exc, (StreamTerminatedError, ConnectionError)):
        return f"the connection to it broke ({exc or type(exc).__name__})"
    if isinstance(exc, (ProviderResultError, SubtaskTimeoutError)):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class TaskRun:
    """One task driven from creation to its last verification."""

    def __init__(
        self,
        servers: Servers,
        input_file: Path,
        difficulty: int,
        subtasks: int,
        providers: int,
        out_dir: Path,
        progress: ProgressFn | None = None,
        subtask_timeout: float | None = None,
        provider_rate_hint: float = DEFAULT_RATE_HINT,
        log_lines: Callable[[str], None] | None = None,
    ) -> None:
        """``subtask_timeout``: seconds, or None for one derived from the difficulty and
        the providers' measured rate (``provider_rate_hint`` until one is measured).
        ``log_lines``: where the app servers' log lines go, prefixed; None keeps them in files."""
        self.servers = servers
        self.input_file = input_file
        self.difficulty = difficulty
        self.subtasks = subtasks
        self.providers = providers
        self.out = OutDir(out_dir)
        self.progress = progress or (lambda update: None)
        self.subtask_timeout = subtask_timeout
        self.provider_rate_hint = provider_rate_hint
        self.task_id = uuid.uuid4().hex
        self._logs = LogForwarder(log_lines) if log_lines is not None else None
        self._requestor: RequestorAppClient | None = None
        # Searches long enough for a pool hide a provider's start behind one
        # search; in-process ones are so short that starts must overlap.
        ahead = PROVIDERS_AHEAD_PER_SLOT if difficulty <= IN_PROCESS_MAX_DIFFICULTY else 1
        self._pool = ProviderPool(servers, ahead=ahead * providers, on_start=self._on_provider_start)
        self._computing: set[Any] = set()
        self._slots = asyncio.Semaphore(providers)  # providers computing at once
        self._in_flight: set[asyncio.Task[None]] = set()
        self._stopping: set[asyncio.Task[None]] = set()
        self._meter = WorkMeter()
        self._results: list[SubtaskResult] = []
        self._failures: list[str] = []
        self._error: str | None = None
        self._interrupt_note = "interrupted"
        self._started = time.monotonic()
        self._seconds = 0.0

    @property
    def out_dir(self) -> Path:
        """The absolute out dir."""
        return self.out.path

    def note_interrupt(self, why: str) -> None:
        """Say what interrupted the run (e.g. the signal), for the report's error."""
        self._interrupt_note = why

    async def run(self) -> None:
        """Run the whole task; app servers are shut down and summary.json written whatever happens."""
        self._started = time.monotonic()
        check_out_dir(self.out.path)
        self._error = "the run has not finished"
        self.out.write_summary(self.report())  # a run killed outright still leaves ok: false
        self._error = None
        helpers = [asyncio.create_task(self._tick())]
        if self._logs is not None:
            helpers.append(asyncio.create_task(self._logs.run()))
        try:
            try:
                await self._run()
            except (GRPCError, StreamTerminatedError, OSError):
                # A call to the requestor that broke because it died says less than its death.
                if self._requestor is not None and isinstance(
                        self._requestor.service, OWN_PROCESSES):
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(
                            self._requestor.service.wait_until_shutdown_complete(), 1.0)
                    self._check_requestor()
                raise
        except asyncio.CancelledError:
            self._error = f"{self._interrupt_note}; every app server was stopped"
            raise
        except RunError as exc:
            self._error = str(exc)
            raise
        except ProviderStartError as exc:
            self._error = str(exc)
            raise RunError(str(exc)) from exc
        except Exception as exc:
            self._error = f"the run failed: {describe_error(exc)}"
            raise
        finally:
            for helper in helpers:
                helper.cancel()
            self._seconds = time.monotonic() - self._started
            try:
                for task in self._in_flight:
                    task.cancel()
                await asyncio.gather(*self._in_flight, return_exceptions=True)
            finally:
                # Even if this clean-up is itself cancelled, the servers go.
                try:
                    await self._shutdown_all()
                finally:
                    if self._logs is not None:
                        self._logs.drain()
                    self._meter.sample()
                    self.out.write_summary(self.report())

    def _on_provider_start(self, provider: Provider) -> None:
        if self._logs is not None:
            self._logs.follow(provider.label, provider.log_path)

    async def _tick(self) -> None:
        """Keep the count, elapsed time, rate and ETA moving between verifications."""
        while True:
            self._report_progress()
            await asyncio.sleep(TICK_SECONDS)

    def _report_progress(self, note: str = "") -> None:
        rate = self._meter.sample()
        remaining = self.subtasks - len(self._results)
        eta = expected_run_seconds(self.difficulty, remaining, rate) if rate > 0 else None
        self.progress(RunProgress(len(self._results), self.subtasks, rate, eta, note))

    def report(self) -> RunReport:
        """What the run did so far; ``ok`` only once every subtask verified."""
        return RunReport(
            ok=len(self._results) == self.subtasks and self._error is None,
            task_id=self.task_id,
            difficulty=self.difficulty,
            subtasks_total=self.subtasks,
            out_dir=self.out.path,
            seconds=self._seconds,
            hashes=self._meter.hashes,
            subtasks=list(self._results),
            failures=self._pool.failures + self._failures,
            error=self._error,
        )

    async def _run(self) -> None:
        if self._logs is not None:
            self._logs.follow("requestor", self.servers.requestor_log)
        # Opened first: the requestor starts through the fork server when there is one.
        await self.servers.open()
        service = self.servers.requestor_service()
        requestor = asyncio.create_task(
            RequestorAppClient.create(service, port=self.servers.requestor_port))
        try:
            # Providers boot while the requestor does.
            self._pool.wanted = self.subtasks
            self._pool.fill()
        except BaseException:
            requestor.cancel()  # a start cancelled half-way stops its server
            (outcome,) = await asyncio.gather(requestor, return_exceptions=True)
            if isinstance(outcome, RequestorAppClient):
                self._requestor = outcome  # it had started: shut down with the rest
            raise
        try:
            self._requestor = await requestor
        except ServiceNotReadyError as exc:
            why = getattr(service, "problem", None) or str(exc)
            tail = log_tail(self.servers.requestor_log)
            raise RunError(f"the requestor app server did not start: {why}"
                           + (f"; its log ends: {tail}" if tail else "")) from exc
        task_dir = dirutils.RequestorDir(self.servers.requestor_dir).task_dir(self.task_id)
        task_dir.prepare()
        shutil.copy2(self.input_file, task_dir.task_inputs_dir / self.input_file.name)
        try:
            await self._requestor.create_task(
                self.task_id,
                self.subtasks,
                {
                    "difficulty": self.difficulty,
                    "resources": [self.input_file.name],
                    "subtasks_count": self.subtasks,
                },
            )
        except GRPCError as exc:
            raise RunError(f"the requestor refused the task: {describe_error(exc)}") from exc
        max_failures = FAILURES_PER_SUBTASK * self.subtasks
        in_flight = self._in_flight
        slot = 0
        while True:
            self._check_requestor()
            unissued = self.subtasks - len(self._results) - len(in_flight)
            # One more than can compute: the next subtask is fetched and its
            # provider chosen while the others compute, so a freed slot
            # starts computing at once. Not with one provider run elsewhere,
            # whose single work dir the prepared one would share.
            prepared = PREPARED_AHEAD if self.servers.providers_ahead else 0
            while len(in_flight) < self.providers + prepared and unissued > 0:
                in_flight.add(asyncio.create_task(self._one_subtask(slot)))
                slot += 1
                unissued -= 1
            self._pool.wanted = unissued
            if not in_flight:
                break
            # Wake up now and then: a requestor that died would otherwise go
            # unnoticed until a provider finished (never, at difficulty 256).
            done, _ = await asyncio.wait(
                in_flight, timeout=TICK_SECONDS, return_when=asyncio.FIRST_COMPLETED)
            self._check_requestor()
            for finished in done:
                in_flight.discard(finished)
                finished.result()
            if len(self._failures) >= max_failures:
                raise RunError(
                    f"giving up after {len(self._failures)} failed subtasks; "
                    f"last: {self._failures[-1]}"
                )

    def _check_requestor(self) -> None:
        """Raise `RunError` if the requestor app server we started has exited."""
        assert self._requestor is not None
        service = self._requestor.service
        # Only a process we own is surely gone when it is not running; an app
        # server run elsewhere may be between lives.
        if isinstance(service, OWN_PROCESSES) and not service.running():
            tail = log_tail(self.servers.requestor_log)
            raise RunError(
                f"the requestor app server exited (code {service.returncode}) in mid-task"
                + (f"; its log ends: {tail}" if tail else ""))

    def _timeout(self) -> float | None:
        if self.subtask_timeout is not None:
            return self.subtask_timeout
        rate = self._meter.provider_rate() or self.provider_rate_hint
        return default_subtask_timeout(self.difficulty, rate)

    async def _one_subtask(self, slot: int) -> None:
        """Take a serving provider, get a subtask for it, compute, ship and verify."""
        assert self._requestor is not None
        ready = await self._pool.acquire()
        subtask_id = uuid.uuid4().hex
        try:
            subtask = await self._requestor.next_subtask(self.task_id, subtask_id, f"local-node-{slot}")
        except BaseException:
            await self._stop(ready)
            raise
        if subtask is None:
            await self._stop(ready)
            self._fail(subtask_id, "the requestor had no subtask to give although parts are unverified")
            return
        try:
            await self._slots.acquire()
        except BaseException:
            await self._stop(ready)
            raise
        try:
            computed = await self._compute_and_ship(ready, subtask_id, subtask)
        finally:
            self._slots.release()
        if computed is None:
            return
        output_path, requestor_task, started = computed
        verdict, reason = await self._requestor.verify(self.task_id, subtask_id)
        if verdict != VerifyResult.SUCCESS:
            self._fail(subtask_id, f"verification {verdict.name}: {reason}")
            if verdict != VerifyResult.FAILURE:
                # Only a FAILURE makes the part computable again by itself.
                await self._requestor.abort_subtask(self.task_id, subtask_id)
            return
        self._collect(subtask_id, output_path, requestor_task, time.monotonic() - started)

    async def _compute_and_ship(
        self, ready: ReadyProvider, subtask_id: str, subtask: Subtask
    ) -> tuple[Path, Any, float] | None:
        """Compute on ``ready`` within the timeout and put the result where the
        requestor reads it: (its path, the requestor's task dir, when computing
        began), or None when the provider failed (the subtask is then aborted)."""
        assert self._requestor is not None
        started = time.monotonic()
        requestor_task = dirutils.RequestorDir(self.servers.requestor_dir).task_dir(self.task_id)
        outputs = requestor_task.subtask_outputs_dir(subtask_id)
        timeout = self._timeout()
        self._meter.watch(subtask_id, ready.provider.work_dir)
        self._computing.add(ready.client)
        stuck = False
        try:
            try:
                output_name, output = await asyncio.wait_for(
                    self._compute(ready, subtask_id, subtask, requestor_task), timeout)
            except asyncio.TimeoutError:
                stuck = True
                raise SubtaskTimeoutError(
                    f"no result within the subtask timeout ({timeout:.1f} s); provider stopped") from None
            outputs.mkdir(parents=True, exist_ok=True)
            write_atomically(outputs / output_name, output)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a crashed, lying or stuck provider is an expected event here
            await stop_server(ready.client, STUCK_SHUTDOWN_TIMEOUT if stuck else SHUTDOWN_TIMEOUT)
            tail = log_tail(ready.provider.log_path)
            self._fail(subtask_id, f"{ready.provider.label} failed: {describe_error(exc)}"
                       + (f"; its log ends: {tail}" if tail else ""))
            await self._requestor.abort_subtask(self.task_id, subtask_id)
            return None
        finally:
            self._meter.finish(subtask_id)
            self._computing.discard(ready.client)
            # After its one request the provider stops by itself; waiting for
            # that (or forcing it) need not hold up the verification, unless the
            # next provider is the same server's next life in the same work dir.
            if self.servers.providers_ahead:
                self._stop_later(ready)
            else:
                await self._stop(ready)
        return outputs / output_name, requestor_task, started

    async def _stop(self, ready: ReadyProvider) -> None:
        try:
            await stop_server(ready.client, SHUTDOWN_TIMEOUT)
        finally:
            with contextlib.suppress(Exception):
                self.servers.release(ready.provider)

    def _stop_later(self, ready: ReadyProvider) -> None:
        task = asyncio.create_task(self._stop(ready))
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    async def _compute(
        self, ready: ReadyProvider, subtask_id: str, subtask: Subtask, requestor_task: Any
    ) -> tuple[str, bytes]:
        provider_dir = dirutils.ProviderTaskDir(ready.provider.work_dir)
        provider_dir.prepare()
        for resource in subtask.resources:
            shutil.copy2(
                requestor_task.subtask_inputs_dir / resource,
                provider_dir.subtask_inputs_dir / resource,
            )
        relative = await ready.client.compute(self.task_id, subtask_id, subtask.params)
        # Read before the provider's dir is tidied for its next life.
        return _read_result(ready.provider.work_dir, relative)

    def _fail(self, subtask_id: str, why: str) -> None:
        logger.warning("subtask %s: %s", subtask_id, why)
        self._failures.append(f"{subtask_id}: {why}")
        self._report_progress(note=f"retrying: {why[:40]}")

    def _collect(self, subtask_id: str, result_zip: Path, requestor_task: Any, seconds: float) -> None:
        digest, nonce = parse_result(read_single_member(result_zip))
        text = read_single_member(requestor_task.subtask_inputs_dir / f"{subtask_id}.zip")
        self.out.save_result(subtask_id, result_zip, text)
        self._results.append(SubtaskResult(subtask_id, text, nonce, digest, round(seconds, 3)))
        self._report_progress()

    async def _shutdown_all(self) -> None:
        clients: list[Any] = list(self._computing)
        if self._requestor is not None:
            clients.append(self._requestor)
        try:
            results = await asyncio.gather(
                self._pool.close(SHUTDOWN_TIMEOUT), *list(self._stopping),
                *(stop_server(c, SHUTDOWN_TIMEOUT) for c in clients), return_exceptions=True
            )
            for result in results:
                if isinstance(result, BaseException):
                    logger.warning("shutting an app server down: %s", result)
        finally:
            await self.servers.close()


async def stop_server(client: Any, timeout: float) -> None:
    """Shut an app server down; a broken connection is no error here.

    The client stops the service whatever its Shutdown call raised (grpclib
    can raise AttributeError on a connection the server already dropped).
    """
    try:
        await client.shutdown(timeout)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        logger.debug("shutting an app server down: %r", exc)


def _read_result(work_dir: Path, relative: Path) -> tuple[str, bytes]:
    """The name and bytes of the provider's result file; `ProviderResultError` if it is not one.

    Every check is made on what was opened, none on the path before: the
    provider owns its work dir and may swap the file, or a directory on the
    way to it, for a symlink or a FIFO at any moment. So each directory is
    opened relative to the one before without following links
    (`open_dir_under`), and the file relative to the last (`read_file_bounded`).
    """
    parts = relative.parts
    if relative.is_absolute() or not parts or parts[-1] in (".", ".."):
        raise ProviderResultError(
            f"Compute answered {str(relative)!r}, which is not a file in its work dir")
    try:
        dir_fd = open_dir_under(work_dir, parts[:-1])
    except UnsafePathError:
        raise ProviderResultError(
            f"Compute answered {str(relative)!r}, which is not a file in its work dir") from None
    except OSError as exc:
        raise ProviderResultError(
            f"Compute answered {str(relative)!r}, whose directory is not one in its work dir: "
            f"{_reason(exc)}") from None
    try:
        return parts[-1], read_file_bounded(Path(parts[-1]), MAX_RESULT_FILE_BYTES, dir_fd=dir_fd)
    except (OSError, FileReadError) as exc:
        raise ProviderResultError(
            f"Compute answered {str(relative)!r}, which is not a readable result: {_reason(exc)}") from None
    finally:
        os.close(dir_fd)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, FileReadError):
        return str(exc)  # names the file by its last component only
    return exc.strerror or type(exc).__name__


def default_split(subtasks: int, providers: int | None, workers: int | None, cores: int) -> tuple[int, int]:
    """Providers computing at once, and the engine workers of each.

    By default as many providers as usable cores (or subtasks), each with a
    worker per usable core: while they all compute, the cores are shared out
    between them; once too few parts are left to keep every provider busy (the
    tail of a run), the last ones use the cores the others leave idle. Measured
    with 8 subtasks at difficulty 24 on 2 cores: 0.73 of the pool's rate with
    2 workers per provider, 0.68 with 1 (`python -m bench.e2e --reps 20
    --subtasks 8 --difficulty 24 --seed 100`, mean)."""
    if providers is None:
        providers = max(1, min(subtasks, cores if workers is None else max(1, cores // workers)))
    if workers is None:
        workers = cores
    return providers, workers
