"""A `TaskApiService` that runs an app server as a Docker container.

Every Docker operation is a short-lived call of the ``docker`` client run as
an asyncio subprocess, so the event loop never blocks. The container:

- runs the image's entrypoint with ``command`` appended (``["requestor",
  "50005"]``), so any Task API app image works;
- has the node's work dir bind-mounted at ``/golem/work``;
- publishes the app's port on 127.0.0.1 only, on a port the kernel picks;
- is removed when it ends (``--rm``) and carries a label naming its role,
  plus any labels the caller adds (tests use them to find leftovers).

A background ``docker wait`` started with the container tells when it has
ended, which keeps ``running()`` a cheap, synchronous look at a task.

Node mode (``DockerTaskApiService.as_node`` or ``node=NodeSettings(...)``)
starts the container the way a Golem node's Docker CPU environment does
instead: the numeric uid alone as the user (so the app runs as a uid the
image does not know, with group 0), the port published on 0.0.0.0 under its
own number, the first N host CPUs, a memory limit, the node's dropped
capabilities, the bridge network and stdin open. Tests use it to prove the
image works under exactly those conditions, not just under ours.

Who the container runs as: by default the node's own uid:gid. The node and
the app both create files and directories in the shared work dir while the
app runs (the node prepares a task dir after the requestor started, the
requestor writes into it), so each side must be able to write into what the
other created. Running the app as the node's identity gives exactly that
without loosening file modes. Chowning the work dir to the image's user at
start would not: whatever the node creates afterwards (as root, in CI) is
again closed to the container. Pass ``user`` to choose otherwise.
"""
from __future__ import annotations

import asyncio
import csv
import io
import logging
import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Optional

from golem_task_api import constants
from golem_task_api.client import TaskApiService, command_argv

log = logging.getLogger("golem_task_api.dockerservice")

CONTAINER_WORK_DIR = PurePosixPath("/", constants.WORK_DIR)
# Every container a DockerTaskApiService starts has this label; its value is the role.
ROLE_LABEL = "golem-task-api.role"
# How long quick docker client calls (run, port, stop's bookkeeping) may take.
CLI_TIMEOUT = 60.0
# `docker stop -t`: seconds between SIGTERM and SIGKILL.
STOP_GRACE_SECONDS = 5
# How long the daemon gets to remove an ended container (--rm), and how
# often we look.
REMOVAL_TIMEOUT = 10.0
REMOVAL_POLL_SECONDS = 0.05


# What a node drops from Docker's default capability set (its Docker CPU environment).
NODE_DROPPED_CAPABILITIES: tuple[str, ...] = (
    "audit_control", "audit_write", "mac_admin", "mac_override", "mknod",
    "net_admin", "net_bind_service", "net_raw", "setfcap", "setpcap",
    "sys_admin", "sys_boot", "sys_chroot", "sys_module", "sys_nice",
    "sys_pacct", "sys_resource", "sys_time", "sys_tty_config",
)
# A node's default memory limit for an app container.
NODE_MEM_LIMIT_MB = 1024
# Where a client on the node's host reaches a port published on 0.0.0.0.
NODE_DIAL_HOST = "127.0.0.1"


class DockerServiceError(RuntimeError):
    """A docker client call for the service failed."""


def host_cpu_count() -> int:
    """The number of CPUs of the Docker host (this machine), at least 1."""
    return os.cpu_count() or 1


def _own_uid() -> int:
    # Windows has no uids: 0 stands in (the daemon runs in a Linux VM there).
    return os.getuid() if hasattr(os, "getuid") else 0


@dataclass(frozen=True)
class NodeSettings:
    """The container settings a Golem node uses for an app (its Docker CPU environment).

    ``cpus`` is the number of cores the provider shares: the container is
    pinned to the first ``cpus`` host CPUs. ``uid`` is the node's uid (this
    process's by default); it is given to Docker alone, without a group.
    """

    cpus: int = field(default_factory=host_cpu_count)
    mem_limit_mb: int = NODE_MEM_LIMIT_MB
    uid: int = field(default_factory=_own_uid)
    network: str = "bridge"
    dropped_capabilities: tuple[str, ...] = NODE_DROPPED_CAPABILITIES

    def __post_init__(self) -> None:
        if not 1 <= self.cpus <= host_cpu_count():
            raise ValueError(
                f"cpus must be 1..{host_cpu_count()} (the host's CPUs), got {self.cpus}")
        if self.mem_limit_mb < 6:  # Docker's own minimum
            raise ValueError(f"mem_limit_mb must be at least 6, got {self.mem_limit_mb}")
        if self.uid < 0:
            raise ValueError(f"uid must not be negative, got {self.uid}")

    @property
    def cpuset(self) -> str:
        """``--cpuset-cpus``: the first ``cpus`` host CPUs."""
        return ",".join(str(cpu) for cpu in range(self.cpus))

    @property
    def user(self) -> str:
        """``--user``: the numeric uid alone, as the node passes it."""
        return str(self.uid)

    def run_options(self, port: int) -> list[str]:
        """The ``docker run`` options for an app serving on ``port``."""
        args = [
            "--user", self.user,
            "--publish", f"0.0.0.0:{port}:{port}",
            "--cpuset-cpus", self.cpuset,
            "--memory", f"{self.mem_limit_mb}m",
            "--network", self.network,
            # A node creates the container with stdin open; `docker run -d -i` does the same.
            "--interactive",
        ]
        for capability in self.dropped_capabilities:
            args += ["--cap-drop", capability]
        return args


def run_arguments(
    image: str,
    work_dir: Path,
    command: Sequence[str],
    port: int,
    *,
    name: str,
    labels: Mapping[str, str],
    node: Optional[NodeSettings] = None,
    user: Optional[str] = None,
    host: str = "127.0.0.1",
    env: Optional[Mapping[str, str]] = None,
    run_options: Sequence[str] = (),
    remove: bool = True,
) -> list[str]:
    """The ``docker run --detach`` arguments (after ``docker``) for an app container.

    With ``node``, the container is set up as a Golem node would (``user``
    and ``host`` are then ignored); else the port is published on ``host``
    on a port the kernel picks and the container runs as ``user``.
    """
    args = ["run", "--detach", "--name", name]
    if remove:
        args.append("--rm")
    for key, value in labels.items():
        args += ["--label", f"{key}={value}"]
    args += ["--mount", _bind_mount(work_dir, CONTAINER_WORK_DIR)]
    if node is not None:
        args += node.run_options(port)
    else:
        args += ["--publish", f"{host}::{port}"]
        if user:
            args += ["--user", user]
    for key, value in (env or {}).items():
        args += ["--env", f"{key}={value}"]
    return [*args, *run_options, image, *command]


def parse_port_mappings(docker_port_output: str) -> list[tuple[str, int]]:
    """``docker port`` lines ("0.0.0.0:50005", "[::]:50005", ":::50005") as (address, port)."""
    mappings = []
    for line in docker_port_output.split():
        address, _, host_port = line.rpartition(":")
        if host_port.isdigit():
            mappings.append((address.strip("[]"), int(host_port)))
    return mappings


@dataclass(frozen=True)
class CliResult:
    """The outcome of one docker client call."""

    returncode: int
    stdout: str
    stderr: str


async def run_cli(argv: Sequence[str], timeout: Optional[float] = CLI_TIMEOUT) -> CliResult:
    """Run a client command to completion; on timeout or cancellation the client is killed."""
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        raise DockerServiceError(f"cannot run {argv[0]!r}: {exc}") from exc
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
    except asyncio.TimeoutError:
        await _kill(process)
        raise DockerServiceError(f"`{' '.join(argv)}` timed out after {timeout:g} s") from None
    except BaseException:
        # Cancelled: never leave a client process behind.
        await _kill(process)
        raise
    assert process.returncode is not None
    return CliResult(process.returncode, stdout.decode(errors="replace"), stderr.decode(errors="replace"))


async def _kill(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.kill()
    await process.wait()


def node_user() -> Optional[str]:
    """This process's ``uid:gid``, or None where the OS has no such notion."""
    if not hasattr(os, "getuid"):
        return None
    return f"{os.getuid()}:{os.getgid()}"


def _bind_mount(source: Path, target: PurePosixPath) -> str:
    # --mount takes CSV: quoting keeps a comma or quote in the path from
    # being read as another field (-v would split on ':' instead).
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(
        ["type=bind", f"source={source}", f"target={target}"]
    )
    return buffer.getvalue()


class DockerTaskApiService(TaskApiService):
    """Runs the app server as ``docker run -d --rm IMAGE *command`` on ``work_dir``.

    ``node`` switches to a Golem node's container settings (see
    :class:`NodeSettings` and :meth:`as_node`); ``user`` and ``host`` are
    then theirs, not the caller's.
    """

    def __init__(
        self,
        image: str,
        work_dir: Path,
        *,
        env: Optional[Mapping[str, str]] = None,
        docker: str = "docker",
        user: Optional[str] = None,
        labels: Optional[Mapping[str, str]] = None,
        name_prefix: str = "golem-task-api",
        host: str = "127.0.0.1",
        stop_grace: int = STOP_GRACE_SECONDS,
        run_options: Sequence[str] = (),
        log_path: Optional[Path] = None,
        node: Optional[NodeSettings] = None,
    ) -> None:
        if node is not None and user is not None:
            raise ValueError("user comes from the node settings in node mode")
        self.image = image
        self.work_dir = Path(work_dir)
        self.env = dict(env or {})
        self.docker = docker
        # None: the node's uid:gid (see the module docstring); "" keeps the image's USER.
        self.node = node
        self.user = node.user if node is not None else node_user() if user is None else user
        self.labels = dict(labels or {})
        self.name_prefix = name_prefix
        # The address the port is published on and the client dials (node
        # mode publishes on 0.0.0.0 and dials the loopback).
        self.host = NODE_DIAL_HOST if node is not None else host
        self.stop_grace = stop_grace
        # Extra `docker run` options (e.g. ["--cpus", "1"]), placed before the image.
        self.run_options = list(run_options)
        # The container's stdout and stderr are copied there when given.
        self.log_path = log_path
        self.name: Optional[str] = None
        self.container_id: Optional[str] = None
        self._waiter: Optional[asyncio.Task[Optional[int]]] = None
        self._exit_code: Optional[int] = None
        self._stop_lock = asyncio.Lock()

    @classmethod
    def as_node(
        cls,
        image: str,
        work_dir: Path,
        settings: Optional[NodeSettings] = None,
        **options: Any,
    ) -> "DockerTaskApiService":
        """A service that starts its container exactly as a Golem node does.

        ``settings`` defaults to ``NodeSettings()``: every host CPU, 1024 MB,
        this process's uid. ``options`` are the constructor's other keywords
        (labels, env, log_path, ...).
        """
        return cls(image, work_dir, node=settings or NodeSettings(), **options)

    @property
    def exit_code(self) -> Optional[int]:
        """The container's exit status once it ended (None if unknown or still running)."""
        return self._exit_code

    async def _cli(self, *args: str, timeout: Optional[float] = CLI_TIMEOUT) -> CliResult:
        return await run_cli([self.docker, *args], timeout)

    async def start(self, command: str | Sequence[str], port: int) -> tuple[str, int]:
        """Start the container serving ``command`` ("requestor 50005" or a list); (host, port) to dial."""
        if self.name is not None:
            raise DockerServiceError("service already started")
        argv = command_argv(command)
        work_dir = self.work_dir.resolve()
        if not work_dir.is_dir():
            # Docker would silently create a root-owned directory instead.
            raise DockerServiceError(f"work dir {work_dir} is not a directory")
        self.name = f"{self.name_prefix}-{uuid.uuid4().hex[:12]}"
        args = run_arguments(
            self.image, work_dir, argv, port,
            name=self.name,
            labels={ROLE_LABEL: argv[0] if argv else "", **self.labels},
            node=self.node, user=self.user, host=self.host, env=self.env,
            run_options=self.run_options,
        )
        try:
            result = await self._cli(*args)
        except BaseException:
            # The daemon may have created it before the client was stopped.
            await self._cli("rm", "--force", self.name)
            raise
        if result.returncode != 0:
            await self._cli("rm", "--force", self.name)
            raise DockerServiceError(
                f"docker run {self.image} failed ({result.returncode}): {result.stderr.strip()}"
            )
        self.container_id = result.stdout.strip()
        self._waiter = asyncio.create_task(self._watch(self.container_id))
        try:
            host_port = await self._published_port(port)
        except BaseException:
            await self.stop()
            raise
        log.debug("container %s (%s) serves %s on %s:%d", self.name, self.image, argv, self.host, host_port)
        return self.host, host_port

    async def _published_port(self, port: int) -> int:
        assert self.container_id is not None
        result = await self._cli("port", self.container_id, f"{port}/tcp")
        if result.returncode != 0:
            raise DockerServiceError(
                f"container {self.name} publishes no port {port} "
                f"(exited at once?): {result.stderr.strip()}"
            )
        # Node mode binds every address under the same number; ours binds self.host.
        wanted = {"0.0.0.0"} if self.node is not None else {self.host}
        for address, host_port in parse_port_mappings(result.stdout):
            if address in wanted:
                return host_port
        raise DockerServiceError(f"no {'/'.join(sorted(wanted))} mapping for port {port} in {result.stdout!r}")

    async def _watch(self, container_id: str) -> Optional[int]:
        """Live as long as the container; its exit status, when Docker tells it."""
        logs = None
        if self.log_path is not None:
            with open(self.log_path, "ab") as sink:
                logs = await asyncio.create_subprocess_exec(
                    self.docker, "logs", "--follow", container_id,
                    stdin=asyncio.subprocess.DEVNULL, stdout=sink, stderr=sink,
                )
        try:
            result = await run_cli([self.docker, "wait", container_id], timeout=None)
        finally:
            if logs is not None:
                # It ends with the container; a removed container may leave it hanging.
                try:
                    await asyncio.wait_for(logs.wait(), 5.0)
                except asyncio.TimeoutError:
                    logs.kill()
                    await logs.wait()
        if result.returncode == 0 and result.stdout.strip().lstrip("-").isdigit():
            self._exit_code = int(result.stdout.strip())
        else:
            # Typically "No such container": it ended and --rm removed it first.
            log.debug("docker wait %s: %s", self.name, result.stderr.strip())
        await self._until_removed(container_id)
        return self._exit_code

    async def _until_removed(self, container_id: str) -> None:
        # --rm removes the container a moment after it ended: "ended" here
        # means gone, so that nothing is left once a caller stops waiting.
        deadline = asyncio.get_running_loop().time() + REMOVAL_TIMEOUT
        while asyncio.get_running_loop().time() < deadline:
            probe = await run_cli(
                [self.docker, "container", "inspect", "--format", "{{.State.Status}}", container_id])
            if probe.returncode != 0:
                return
            await asyncio.sleep(REMOVAL_POLL_SECONDS)
        log.warning("container %s ended but was not removed within %g s", self.name, REMOVAL_TIMEOUT)

    def running(self) -> bool:
        return self._waiter is not None and not self._waiter.done()

    async def stop(self) -> None:
        """``docker stop``: SIGTERM, SIGKILL after ``stop_grace`` s; returns once it ended."""
        if self._waiter is None or self.container_id is None:
            return
        async with self._stop_lock:
            if self._waiter.done() and self._exit_code is not None:
                return
            result = await self._cli(
                "stop", "--time", str(self.stop_grace), self.container_id,
                timeout=self.stop_grace + CLI_TIMEOUT,
            )
            if result.returncode != 0 and "No such container" not in result.stderr:
                raise DockerServiceError(f"docker stop {self.name} failed: {result.stderr.strip()}")
            await asyncio.shield(self._waiter)

    async def wait_until_shutdown_complete(self) -> None:
        if self._waiter is not None:
            # Shielded: a caller's timeout must not cancel the watcher itself.
            await asyncio.shield(self._waiter)


__all__ = [
    "CONTAINER_WORK_DIR",
    "CliResult",
    "DockerServiceError",
    "DockerTaskApiService",
    "NODE_DROPPED_CAPABILITIES",
    "NODE_MEM_LIMIT_MB",
    "NodeSettings",
    "ROLE_LABEL",
    "host_cpu_count",
    "node_user",
    "parse_port_mappings",
    "run_arguments",
    "run_cli",
]
