"""Where the node's app servers run: local processes, or servers someone else runs.

`LocalServers` starts the requestor and each provider through a fork
server (see `tutorial_app.forkserver`), each in its own work
dir under a scratch dir, logging to a file there. `RemoteServers` drives a
requestor and a provider that run elsewhere (containers started by compose)
through work dirs shared with this machine.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import stat
import sys
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import psutil
from golem_task_api.client import TaskApiService
from golem_task_api.argv import parse_port
from golem_task_api.services import SubprocessTaskApiService, find_free_port

from tutorial_app.forkserver import ForkedService, ForkServer
from tutorial_app.provider import LOCAL_NODE_POOL_START, POOL_START_ENV

log = logging.getLogger(__name__)

LOG_TAIL_LINES = 6
"""Lines of a server's log quoted when it fails."""
RECENT_PORTS = 64
CONNECT_TIMEOUT = 10.0
"""How long a server run elsewhere may refuse connections before it counts as unreachable."""


@dataclass(frozen=True)
class Provider:
    """A provider app server to be started, and its work dir as the node sees it."""

    service: TaskApiService
    work_dir: Path
    port: int
    log_path: Path | None = None
    label: str = "provider"


class Servers(Protocol):
    """Where the app servers run: local processes or elsewhere."""

    requestor_dir: Path
    requestor_port: int
    requestor_log: Path | None
    providers_ahead: bool
    """True when the next provider may start while others compute."""

    async def open(self) -> None:
        """Get ready to start servers (before the first one)."""

    async def close(self) -> None:
        """Release what `open` acquired, after every server stopped."""

    def requestor_service(self) -> TaskApiService: ...

    def provider(self, slot: int) -> Provider: ...

    def release(self, provider: Provider) -> None:
        """The provider's life ended: its work dir may be tidied."""


def app_argv(work_dir: Path) -> list[str]:
    """The command line of our app's entrypoint for a work dir."""
    return [sys.executable, "-m", "tutorial_app.entrypoint", "--work-dir", str(work_dir)]


def log_tail(path: Path | None, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of a server's log, joined with `` | ``; empty if there is none."""
    if path is None:
        return ""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 8192))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:] if line.strip())


class LocalServers:
    """App servers as processes of this machine, each with its own work dir and log."""

    providers_ahead = True

    def __init__(self, scratch: Path, workers: int, env: dict[str, str] | None = None,
                 fork: bool = True, keep_work_dirs: bool = False) -> None:
        """``env``: added to the servers' environment; providers search on threads of
        their own (`LOCAL_NODE_POOL_START`) unless it or ours sets `POOL_START_ENV`.
        ``keep_work_dirs``: leave each provider's work dir in place when it is
        released (for a look afterwards); otherwise only its log stays."""
        self.scratch = scratch
        self.keep_work_dirs = keep_work_dirs
        self.workers = workers
        self.requestor_dir = scratch / "requestor"
        self.requestor_dir.mkdir(parents=True, exist_ok=True)
        self.requestor_port = find_free_port()
        self.requestor_log: Path | None = scratch / "requestor.log"
        self._env = {**(env or {}), "TUTORIAL_APP_WORKERS": str(workers)}
        if POOL_START_ENV not in self._env and not os.environ.get(POOL_START_ENV):
            self._env[POOL_START_ENV] = LOCAL_NODE_POOL_START
        self._fork = fork
        self._forkserver: ForkServer | None = None
        self._recent_ports: deque[int] = deque([self.requestor_port], maxlen=RECENT_PORTS)

    def _port(self) -> int:
        # A port is free only until its server binds it: servers starting at
        # the same time must not be handed the same one.
        while (port := find_free_port()) in self._recent_ports:
            pass
        self._recent_ports.append(port)
        return port

    async def open(self) -> None:
        if self._fork:
            forkserver = ForkServer(self.scratch / "forkserver.log")
            await forkserver.start()
            self._forkserver = forkserver

    async def close(self) -> None:
        forkserver, self._forkserver = self._forkserver, None
        if forkserver is not None:
            await forkserver.close()

    def requestor_service(self) -> TaskApiService:
        if self._forkserver is not None:
            return ForkedService(self._forkserver, ["--work-dir", str(self.requestor_dir)], self._env,
                                 self.requestor_log)
        return SubprocessTaskApiService(
            self.requestor_dir, app_argv(self.requestor_dir), env=self._env,
            log_path=self.requestor_log)

    def provider(self, slot: int) -> Provider:
        name = uuid.uuid4().hex[:12]
        work_dir = self.scratch / "providers" / name
        work_dir.mkdir(parents=True)
        log_path = self.scratch / "providers" / f"{name}.log"
        service: TaskApiService
        if self._forkserver is not None:
            service = ForkedService(self._forkserver, ["--work-dir", str(work_dir)], self._env, log_path)
        else:
            service = SubprocessTaskApiService(work_dir, app_argv(work_dir), env=self._env, log_path=log_path)
        return Provider(service, work_dir, self._port(), log_path, f"provider {slot}")

    def release(self, provider: Provider) -> None:
        """Delete the provider's work dir (its copy of the input with it); its log stays.

        A run of many subtasks would otherwise hold one input copy per
        provider in the scratch dir until it ends. The log is kept: failure
        messages quote it, and --keep-work-dirs shows it.
        """
        if self.keep_work_dirs:
            return
        try:
            shutil.rmtree(provider.work_dir)
        except FileNotFoundError:
            pass
        except OSError as exc:  # what is left goes with the scratch dir at the end
            log.warning("removing %s: %s", provider.work_dir.name, exc.strerror or exc)


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` as a pair; a clear error for anything else."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    try:
        port = parse_port(port_text)
    except ValueError:
        raise ValueError(f"expected HOST:PORT with a port 1-65535, got {text!r}") from None
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]  # an IPv6 literal
    return host, port


class ConnectedService(TaskApiService):
    """An app server someone else runs (a container): nothing to start or stop.

    Its owner may be (re)starting it when we connect: a provider serves one
    request per life, then a new life starts. So it counts as running while
    it has not yet accepted a connection, for up to ``connect_timeout`` s;
    then it is unreachable and `running()` turns false, which ends the
    client's health check at once instead of after its own, longer timeout.
    Every probe is an asynchronous connect: nothing here blocks the loop.
    """

    def __init__(self, address: tuple[str, int], stop_timeout: float = 10.0,
                 connect_timeout: float = CONNECT_TIMEOUT) -> None:
        self.address = address
        self.stop_timeout = stop_timeout
        self.connect_timeout = connect_timeout
        self._answered = False
        self._gave_up = False
        self._prober: asyncio.Task[None] | None = None

    @property
    def problem(self) -> str | None:
        """Why the server counts as not running, if it does."""
        if self._gave_up:
            host, port = self.address
            return f"nothing accepted a connection at {host}:{port} within {self.connect_timeout:g} s"
        return None

    async def start(self, command: Sequence[str] | str, port: int) -> tuple[str, int]:
        self._answered = False
        self._gave_up = False
        self._prober = asyncio.create_task(self._probe())
        return self.address

    async def _accepts(self, timeout: float = 0.5) -> bool:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(*self.address), timeout)
        except (OSError, asyncio.TimeoutError):
            return False
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True

    async def _probe(self) -> None:
        deadline = time.monotonic() + self.connect_timeout
        while time.monotonic() < deadline:
            if await self._accepts():
                self._answered = True
                return
            await asyncio.sleep(0.1)
        self._gave_up = True

    def running(self) -> bool:
        return not self._gave_up

    async def stop(self) -> None:
        """Its owner stops it; after Shutdown we only wait for it to go."""
        if self._prober is not None:
            self._prober.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._prober
        await self.wait_until_shutdown_complete()

    async def wait_until_shutdown_complete(self) -> None:
        if not self._answered:
            return
        deadline = time.monotonic() + self.stop_timeout
        while time.monotonic() < deadline and await self._accepts():
            await asyncio.sleep(0.1)


# What the node and our provider put in a provider's work dir: TLS material
# the node placed (task_api_*), subtask inputs named after subtask ids (32 hex
# digits), the provider's results and progress files, and their temp files.
_OWN_TOP = re.compile(r"task_api_.*|[0-9a-f]{32}\.(zip|progress)|\.[0-9a-f]{32}\.(zip|progress)\..*\.tmp")
_OWN_INPUT = re.compile(r"[0-9a-f]{32}\.zip")


class ForeignDirectoryError(ValueError):
    """A directory holds files the node did not make; it will not touch them."""


def foreign_entries(work_dir: Path) -> list[str]:
    """Entries of a provider work dir that neither the node nor our provider made."""
    if not work_dir.exists():
        return []
    foreign = []
    for child in sorted(work_dir.iterdir()):
        if child.name == "subtask_inputs" and child.is_dir() and not child.is_symlink():
            foreign += [f"subtask_inputs/{c.name}" for c in sorted(child.iterdir())
                        if not (_OWN_INPUT.fullmatch(c.name) and c.is_file())]
        elif not (_OWN_TOP.fullmatch(child.name) and (child.is_file() or child.is_symlink())):
            foreign.append(child.name)
    return foreign


def check_provider_dir(work_dir: Path) -> None:
    """`ForeignDirectoryError` unless the dir is empty or holds only what the node makes."""
    if work_dir.exists() and not work_dir.is_dir():
        raise ForeignDirectoryError(f"--provider-dir {work_dir} is not a directory")
    foreign = foreign_entries(work_dir)
    if foreign:
        shown = ", ".join(repr(name) for name in foreign[:3])
        more = f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
        raise ForeignDirectoryError(
            f"--provider-dir {work_dir} holds files tutorial-app did not make ({shown}{more});"
            " give it the provider's own, empty work dir")


def clear_own_entries(work_dir: Path) -> None:
    """Remove what an earlier subtask left in a provider work dir, and nothing else."""
    check_provider_dir(work_dir)  # between lives, someone may have put something there
    for child in work_dir.iterdir():
        if child.name.startswith("task_api_"):
            continue  # the TLS files the node placed stay
        if child.name == "subtask_inputs":
            for entry in child.iterdir():
                entry.unlink()
        else:
            child.unlink()


class RemoteServers:
    """One requestor and one provider run elsewhere, sharing work dirs with us.

    The provider is expected to come back (a restarting container) after each
    one-request life, so subtasks go to it one at a time.
    """

    providers_ahead = False
    requestor_log: Path | None = None  # its log is its owner's

    def __init__(
        self,
        requestor: tuple[str, int],
        requestor_dir: Path,
        provider: tuple[str, int],
        provider_dir: Path,
        connect_timeout: float = CONNECT_TIMEOUT,
    ) -> None:
        self.requestor_address = requestor
        self.requestor_dir = requestor_dir
        self.requestor_port = requestor[1]
        self.provider_address = provider
        self.provider_dir = provider_dir
        self.connect_timeout = connect_timeout

    async def open(self) -> None:
        check_provider_dir(self.provider_dir)

    async def close(self) -> None:
        pass

    def requestor_service(self) -> TaskApiService:
        return ConnectedService(self.requestor_address, connect_timeout=self.connect_timeout)

    def provider(self, slot: int) -> Provider:
        self.provider_dir.mkdir(parents=True, exist_ok=True)
        clear_own_entries(self.provider_dir)
        host, port = self.provider_address
        return Provider(ConnectedService(self.provider_address, connect_timeout=self.connect_timeout),
                        self.provider_dir, port, None, f"provider {host}:{port}")

    def release(self, provider: Provider) -> None:
        clear_own_entries(self.provider_dir)


MEMORY_SCRATCH = Path("/dev/shm")
"""Where the local node keeps its scratch dir when there is room: in memory.
Nothing in it outlives the run (the results go to the out dir), so what a
disk adds is only cost: every file the servers create, fsync and delete
(measured: 100 subtasks at difficulty 0 took 18% less time there, 8 at
difficulty 24 3% less, `python -m bench.e2e`)."""
_SCRATCH_MARGIN_BYTES = 64 << 20
_LOG_BYTES_PER_SERVER = 16 << 10


def scratch_need_bytes(input_bytes: int, subtasks: int, keep_work_dirs: bool = False) -> int:
    """About the most a local run's scratch dir holds: the requestor's copies of
    the input and one input per part; a provider's copy while it computes (all
    of them when work dirs are kept); a log per server; a margin."""
    copies = subtasks * (2 if keep_work_dirs else 1) + 8
    return input_bytes * copies + subtasks * _LOG_BYTES_PER_SERVER + _SCRATCH_MARGIN_BYTES


def scratch_root(need_bytes: int, memory: Path | None = None) -> Path | None:
    """``memory`` (default `MEMORY_SCRATCH`) if the scratch dir should go there,
    else None (the temp dir).

    Only when the user did not choose with TMPDIR, ``memory`` is a directory
    we may write, and twice ``need_bytes`` is free there: a run must not fill
    the machine's memory (a container's /dev/shm is 64 MiB by default)."""
    memory = MEMORY_SCRATCH if memory is None else memory
    if os.environ.get("TMPDIR"):
        return None
    try:
        usage = os.statvfs(memory)
    except OSError:
        return None
    if not (memory.is_dir() and os.access(memory, os.W_OK | os.X_OK)):
        return None
    return memory if usage.f_bavail * usage.f_frsize >= 2 * need_bytes else None


SCRATCH_PREFIX = "tutorial-app-node-"
OWNER_FILE = ".owner"
"""In a scratch dir in memory: the pid and start time of the run that owns it.
A run killed outright cannot remove its scratch dir, and in memory that dir
would hold RAM until a reboot; the next run finds it by its dead owner and
removes it (`sweep_abandoned_scratch`)."""


def process_stamp(pid: int) -> str | None:
    """``"<pid> <start time>"``: names one process, even once its pid is reused; None if it is gone."""
    try:
        return f"{pid} {psutil.Process(pid).create_time():.3f}"
    except psutil.Error:
        return None


def sweep_abandoned_scratch(root: Path) -> list[Path]:
    """Remove the scratch dirs under ``root`` whose run ended without removing them.

    Only dirs of ours (our uid, not symlinks) that name an owner that is gone:
    an unclaimed one (kept with ``--keep-work-dirs``, or not ours) stays."""
    removed = []
    for path in root.glob(SCRATCH_PREFIX + "*"):
        try:
            info = path.lstat()  # a symlink is not a directory here
            if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
                continue
            stamp = (path / OWNER_FILE).read_text(encoding="ascii").strip()
            pid = int(stamp.split()[0])
        except (OSError, ValueError, IndexError):
            continue
        if process_stamp(pid) == stamp:
            continue  # its run goes on
        shutil.rmtree(path, ignore_errors=True)
        log.info("removed %s, left behind by a run that was killed", path)
        removed.append(path)
    return removed


def scratch_dir(base: Path | None, need_bytes: int = _SCRATCH_MARGIN_BYTES, claim: bool = True) -> Path:
    """A fresh directory for the app servers' work dirs: under ``base``, or
    where `scratch_root` says for a run needing about ``need_bytes``.

    In memory, what runs killed outright left there is removed first, and
    the new dir names this process as its owner unless ``claim`` is false
    (a dir the user keeps must outlive us)."""
    if base is not None:
        base.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix="node-", dir=base))
    root = scratch_root(need_bytes)
    if root is None:
        return Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX))
    sweep_abandoned_scratch(root)
    path = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX, dir=root))
    if claim:
        (path / OWNER_FILE).write_text(f"{process_stamp(os.getpid())}\n", encoding="ascii")
    return path
