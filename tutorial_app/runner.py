"""Play the Golem node on one machine: run a whole task over real gRPC.

Data flow of one run::

    requestor app server (one process, lives for the whole run)
        CreateTask
        NextSubtask ──▶ subtask_inputs/{id}.zip ──copy──▶ provider work dir
                                                          provider app server
                                                          (one process per subtask,
                                                           up to `providers` at once)
                                                          Compute ──▶ {id}.zip
        Verify ◀── subtask_outputs/{id}/{id}.zip ◀──copy──┘
        task_outputs/ ──copy──▶ out dir (results + the exact input each searched)

A provider that dies or fails has its subtask aborted; the requestor makes the
part computable again and the runner issues it to a new provider, up to a
bounded number of failures. The same loop drives app servers that run
elsewhere (containers started by compose): only the `Servers` differ.
"""
from __future__ import annotations

import asyncio
import json
import logging
import re
import shutil
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from golem_task_api import dirutils
from golem_task_api.client import ProviderAppClient, RequestorAppClient, TaskApiService
from golem_task_api.enums import VerifyResult
from golem_task_api.structs import Subtask
from golem_task_api.testutils import SubprocessTaskApiService, find_free_port
from grpclib.exceptions import GRPCError

from tutorial_app.archive import read_single_member
from tutorial_app.result import parse_result

logger = logging.getLogger(__name__)

# Enough to survive a few crashed or lying providers without looping forever.
FAILURES_PER_SUBTASK = 3
SHUTDOWN_TIMEOUT = 5.0
# How often the progress callback hears from a run with nothing new to say.
TICK_SECONDS = 0.5


class RunError(Exception):
    """The run could not finish: every subtask was not verified."""


@dataclass(frozen=True)
class SubtaskResult:
    """One verified subtask, enough to re-verify it without our code."""

    subtask_id: str
    input: str
    nonce: int
    digest: str
    seconds: float


@dataclass
class RunReport:
    """What a run did; `ok` only when every subtask verified."""

    ok: bool
    task_id: str
    difficulty: int
    subtasks_total: int
    out_dir: Path
    seconds: float
    subtasks: list[SubtaskResult] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The machine-readable summary printed by ``tutorial-app run --json``."""
        return {
            "ok": self.ok,
            "task_id": self.task_id,
            "difficulty": self.difficulty,
            "subtasks_total": self.subtasks_total,
            "out_dir": str(self.out_dir),
            "seconds": round(self.seconds, 3),
            "subtasks": [asdict(s) for s in self.subtasks],
            "failures": self.failures,
        }


@dataclass(frozen=True)
class Provider:
    """A provider app server to be started, and its work dir as the node sees it."""

    service: TaskApiService
    work_dir: Path
    port: int


class Servers(Protocol):
    """Where the app servers run: local subprocesses or elsewhere."""

    requestor_dir: Path
    requestor_port: int

    def requestor_service(self) -> TaskApiService: ...

    def provider(self, slot: int) -> Provider: ...


def app_argv(work_dir: Path) -> list[str]:
    """The command line of our app's entrypoint for a work dir."""
    return [sys.executable, "-m", "tutorial_app.entrypoint", "--work-dir", str(work_dir)]


class LocalServers:
    """App servers as subprocesses of this one, each with its own work dir."""

    def __init__(self, scratch: Path, workers: int) -> None:
        self.scratch = scratch
        self.workers = workers
        self.requestor_dir = scratch / "requestor"
        self.requestor_dir.mkdir(parents=True, exist_ok=True)
        self.requestor_port = find_free_port()
        self._env = {"TUTORIAL_APP_WORKERS": str(workers)}

    def requestor_service(self) -> TaskApiService:
        return SubprocessTaskApiService(
            self.requestor_dir,
            app_argv(self.requestor_dir),
            log_path=self.scratch / "requestor.log",
        )

    def provider(self, slot: int) -> Provider:
        name = uuid.uuid4().hex[:12]
        work_dir = self.scratch / "providers" / name
        work_dir.mkdir(parents=True)
        service = SubprocessTaskApiService(
            work_dir,
            app_argv(work_dir),
            env=self._env,
            log_path=self.scratch / "providers" / f"{name}.log",
        )
        return Provider(service, work_dir, find_free_port())


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` as a pair; a clear error for anything else."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]  # an IPv6 literal
    return host, int(port)


class ConnectedService(TaskApiService):
    """An app server someone else runs (a container): nothing to start or stop.

    Its owner may be (re)starting it when we connect: a provider serves one
    request per life, then a new life starts. So until it has accepted a
    connection once it counts as running, and the client's health-check
    timeout, not the first refused connection, decides when to give up.
    """

    def __init__(self, address: tuple[str, int], stop_timeout: float = 10.0) -> None:
        self.address = address
        self.stop_timeout = stop_timeout
        self._answered = False

    async def start(self, command: list[str], port: int) -> tuple[str, int]:
        self._answered = False
        return self.address

    def _accepts(self) -> bool:
        try:
            with socket.create_connection(self.address, timeout=0.2):
                return True
        except OSError:
            return False

    def running(self) -> bool:
        if self._accepts():
            self._answered = True
            return True
        return not self._answered

    async def stop(self) -> None:
        """Its owner stops it; after Shutdown we only wait for it to go."""
        await self.wait_until_shutdown_complete()

    async def wait_until_shutdown_complete(self) -> None:
        deadline = time.monotonic() + self.stop_timeout
        while self._accepts() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)


class RemoteServers:
    """One requestor and one provider run elsewhere, sharing work dirs with us.

    The provider is expected to come back (a restarting container) after each
    one-request life, so subtasks go to it one at a time.
    """

    def __init__(
        self,
        requestor: tuple[str, int],
        requestor_dir: Path,
        provider: tuple[str, int],
        provider_dir: Path,
    ) -> None:
        self.requestor_address = requestor
        self.requestor_dir = requestor_dir
        self.requestor_port = requestor[1]
        self.provider_address = provider
        self.provider_dir = provider_dir

    def requestor_service(self) -> TaskApiService:
        return ConnectedService(self.requestor_address)

    def provider(self, slot: int) -> Provider:
        # The same dir serves every subtask: clear what the last one left,
        # but never the TLS files the node placed there.
        self.provider_dir.mkdir(parents=True, exist_ok=True)
        for child in self.provider_dir.iterdir():
            if child.name.startswith("task_api_"):
                continue
            if child.is_dir():
                shutil.rmtree(child)
            else:
                child.unlink()
        return Provider(ConnectedService(self.provider_address), self.provider_dir, self.provider_address[1])


@dataclass
class _Tally:
    started: float = field(default_factory=time.monotonic)
    verified: int = 0
    hashes: int = 0

    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.hashes / elapsed if elapsed > 0 else 0.0


ProgressFn = Callable[[int, float, str], None]


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
    ) -> None:
        self.servers = servers
        self.input_file = input_file
        self.difficulty = difficulty
        self.subtasks = subtasks
        self.providers = providers
        self.out_dir = out_dir
        self.progress = progress or (lambda done, rate, note: None)
        self.task_id = uuid.uuid4().hex
        self._requestor: RequestorAppClient | None = None
        self._live_providers: set[ProviderAppClient] = set()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._tally = _Tally()
        self._results: list[SubtaskResult] = []
        self._failures: list[str] = []
        self._started = time.monotonic()
        self._seconds = 0.0

    async def run(self) -> None:
        """Run the whole task; app servers are shut down whatever happens."""
        self._started = time.monotonic()
        _clear_earlier_results(self.out_dir)
        ticker = asyncio.create_task(self._tick())
        try:
            await self._run()
        finally:
            ticker.cancel()
            self._seconds = time.monotonic() - self._started
            try:
                # A subtask still starting its provider is not in _live_providers:
                # cancelling it is what stops that provider.
                for task in self._in_flight:
                    task.cancel()
                await asyncio.gather(*self._in_flight, return_exceptions=True)
            finally:
                # Even if this clean-up is itself cancelled, the servers go.
                await self._shutdown_all()
                self._write_summary()

    async def _tick(self) -> None:
        """Keep the elapsed time and rate moving between verifications."""
        while True:
            await asyncio.sleep(TICK_SECONDS)
            self.progress(self._tally.verified, self._tally.rate(), "")

    def report(self) -> RunReport:
        """What the run did so far; ``ok`` only once every subtask verified."""
        return RunReport(
            ok=len(self._results) == self.subtasks,
            task_id=self.task_id,
            difficulty=self.difficulty,
            subtasks_total=self.subtasks,
            out_dir=self.out_dir,
            seconds=self._seconds,
            subtasks=sorted(self._results, key=lambda r: r.subtask_id),
            failures=list(self._failures),
        )

    async def _run(self) -> None:
        self._requestor = await RequestorAppClient.create(
            self.servers.requestor_service(), port=self.servers.requestor_port
        )
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
            raise RunError(f"the requestor refused the task: {exc.message}") from exc
        self.progress(0, 0.0, "")
        max_failures = FAILURES_PER_SUBTASK * self.subtasks
        in_flight = self._in_flight
        slot = 0
        while True:
            self._check_requestor()
            while len(in_flight) < self.providers:
                subtask_id = uuid.uuid4().hex
                subtask = await self._requestor.next_subtask(
                    self.task_id, subtask_id, f"local-node-{slot}"
                )
                if subtask is None:
                    break
                in_flight.add(asyncio.create_task(self._one_subtask(slot, subtask_id, subtask)))
                slot += 1
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
        if isinstance(service, SubprocessTaskApiService) and not service.running():
            raise RunError(
                f"the requestor app server exited (code {service.returncode}) in mid-task;"
                " its log is in the work dir (--keep-work-dirs keeps it)")

    async def _one_subtask(self, slot: int, subtask_id: str, subtask: Subtask) -> None:
        """Compute one subtask on a fresh provider, ship the result, verify it."""
        assert self._requestor is not None
        started = time.monotonic()
        requestor_task = dirutils.RequestorDir(self.servers.requestor_dir).task_dir(self.task_id)
        outputs = requestor_task.subtask_outputs_dir(subtask_id)
        try:
            output = await self._compute(slot, subtask_id, subtask, requestor_task)
            outputs.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(output, outputs / output.name)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a crashed or lying provider is an expected event here
            self._fail(subtask_id, f"provider failed: {exc}")
            await self._requestor.abort_subtask(self.task_id, subtask_id)
            return
        verdict, reason = await self._requestor.verify(self.task_id, subtask_id)
        if verdict != VerifyResult.SUCCESS:
            self._fail(subtask_id, f"verification {verdict.name}: {reason}")
            if verdict != VerifyResult.FAILURE:
                # Only a FAILURE makes the part computable again by itself.
                await self._requestor.abort_subtask(self.task_id, subtask_id)
            return
        self._collect(subtask_id, outputs / output.name, requestor_task, time.monotonic() - started)

    async def _compute(
        self, slot: int, subtask_id: str, subtask: Subtask, requestor_task: Any
    ) -> Path:
        provider = self.servers.provider(slot)
        provider_dir = dirutils.ProviderTaskDir(provider.work_dir)
        provider_dir.prepare()
        for resource in subtask.resources:
            shutil.copy2(
                requestor_task.subtask_inputs_dir / resource,
                provider_dir.subtask_inputs_dir / resource,
            )
        client = await ProviderAppClient.create(provider.service, port=provider.port)
        self._live_providers.add(client)
        try:
            relative = await client.compute(self.task_id, subtask_id, subtask.params)
        finally:
            self._live_providers.discard(client)
            # After its one request the provider stops by itself; this waits
            # for that (or forces it) and closes the channel.
            await client.shutdown(SHUTDOWN_TIMEOUT)
        return _result_file(provider.work_dir, relative)

    def _fail(self, subtask_id: str, why: str) -> None:
        logger.warning("subtask %s: %s", subtask_id, why)
        self._failures.append(f"{subtask_id}: {why}")
        self.progress(self._tally.verified, self._tally.rate(), f"retrying: {why[:60]}")

    def _collect(self, subtask_id: str, result_zip: Path, requestor_task: Any, seconds: float) -> None:
        digest, nonce = parse_result(read_single_member(result_zip))
        text = read_single_member(requestor_task.subtask_inputs_dir / f"{subtask_id}.zip")
        results = self.out_dir / "results"
        inputs = self.out_dir / "inputs"
        results.mkdir(parents=True, exist_ok=True)
        inputs.mkdir(parents=True, exist_ok=True)
        shutil.copy2(result_zip, results / result_zip.name)
        (inputs / f"{subtask_id}.txt").write_text(text, encoding="utf-8")
        self._results.append(SubtaskResult(subtask_id, text, nonce, digest, round(seconds, 3)))
        self._tally.verified += 1
        # The search tried at least nonce + 1 candidates: a lower bound of the work done.
        self._tally.hashes += nonce + 1
        self.progress(self._tally.verified, self._tally.rate(), "")

    async def _shutdown_all(self) -> None:
        clients: list[Any] = list(self._live_providers)
        if self._requestor is not None:
            clients.append(self._requestor)
        results = await asyncio.gather(
            *(c.shutdown(SHUTDOWN_TIMEOUT) for c in clients), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                logger.warning("shutting an app server down: %s", result)

    def _write_summary(self) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        summary = {
            "task_id": self.task_id,
            "difficulty": self.difficulty,
            "subtasks": [asdict(r) for r in self._results],
        }
        (self.out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")


# What a run writes into the out dir's results/ and inputs/: named after subtask ids.
_OUR_OUTPUT = re.compile(r"[0-9a-f]{32}\.(zip|txt)")


def _clear_earlier_results(out_dir: Path) -> None:
    """Remove an earlier run's results and inputs, so the out dir describes this run only.

    Only files this runner names (subtask id + .zip/.txt) go; anything else a
    user keeps there stays.
    """
    for sub in ("results", "inputs"):
        directory = out_dir / sub
        if not directory.is_dir():
            continue
        for path in directory.iterdir():
            if _OUR_OUTPUT.fullmatch(path.name) and (path.is_file() or path.is_symlink()):
                path.unlink()


class ProviderResultError(Exception):
    """The path a provider's Compute answered is not a result file in its work dir."""


def _result_file(work_dir: Path, relative: Path) -> Path:
    """The provider's result file; `ProviderResultError` if the path is not one."""
    path = work_dir / relative
    inside = path.resolve().is_relative_to(work_dir.resolve())
    if relative.is_absolute() or not inside or path.is_symlink() or not path.is_file():
        raise ProviderResultError(
            f"Compute answered {str(relative)!r}, which is not a regular file in its work dir")
    return path


def default_split(subtasks: int, providers: int | None, workers: int | None, cores: int) -> tuple[int, int]:
    """Share the usable cores out between providers running at once."""
    if providers is None:
        providers = max(1, min(subtasks, cores if workers is None else max(1, cores // workers)))
    if workers is None:
        workers = max(1, cores // providers)
    return providers, workers


def scratch_dir(base: Path | None) -> Path:
    """A fresh directory for the app servers' work dirs."""
    if base is not None:
        base.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix="node-", dir=base))
    return Path(tempfile.mkdtemp(prefix="tutorial-app-node-"))


__all__ = [
    "ConnectedService",
    "LocalServers",
    "RemoteServers",
    "parse_address",
    "Provider",
    "RunError",
    "RunReport",
    "Servers",
    "SubtaskResult",
    "TaskRun",
    "app_argv",
    "default_split",
    "scratch_dir",
]
