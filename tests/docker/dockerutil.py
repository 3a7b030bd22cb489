"""Run and stop containers from tests through the ``docker`` CLI.

Every call is a short-lived ``docker`` client process that finishes (or is
killed on timeout) before the call returns, so tests leave no child process
behind. Containers started through a :class:`ContainerSet` carry a label
unique to that set, and :meth:`ContainerSet.remove_all` force-removes them.
"""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grpclib.client import Channel
from grpclib.exceptions import StreamTerminatedError
from grpclib.health.v1.health_grpc import HealthStub
from grpclib.health.v1.health_pb2 import HealthCheckRequest, HealthCheckResponse

# Docker's own calls (inspect, rm, logs) answer in well under this.
CLI_TIMEOUT = 30.0
LABEL = "tutorial-app-test"


class DockerError(Exception):
    """A docker CLI call failed."""


class DockerUnavailable(DockerError):
    """No docker CLI, or no daemon answering it."""


class ContainerExited(DockerError):
    """A container stopped while a test waited for it to become ready."""


@dataclass(frozen=True)
class RunResult:
    """The outcome of one ``docker`` client call."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


def docker_cli() -> str:
    """The docker client's path; raise DockerUnavailable without one."""
    path = shutil.which("docker")
    if path is None:
        raise DockerUnavailable("no `docker` client on PATH")
    return path


def docker(*args: str, timeout: float = CLI_TIMEOUT, check: bool = True) -> RunResult:
    """Run ``docker ARGS``; with ``check``, raise DockerError on a non-zero exit."""
    cmd = (docker_cli(), *args)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise DockerError(f"`docker {' '.join(args)}` timed out after {timeout:g} s") from exc
    result = RunResult(tuple(args), proc.returncode, proc.stdout, proc.stderr)
    if check and proc.returncode != 0:
        raise DockerError(
            f"`docker {' '.join(args)}` exited {proc.returncode}: {proc.stderr.strip()[-500:]}")
    return result


def daemon_problem() -> str | None:
    """Why no daemon is usable, or None when ``docker info`` answers."""
    try:
        result = docker("version", "--format", "{{.Server.Version}}", timeout=15, check=False)
    except DockerError as exc:
        return str(exc)
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines()
        return f"no Docker daemon reachable: {lines[-1] if lines else 'docker version failed'}"
    return None


def hand_over(path: Path, uid: int) -> None:
    """Make ``path`` and everything under it owned by ``uid`` (group 0), as a node's shared dir is.

    Only root can give files away; for anyone else the files are already
    their own, which is the node's uid then.
    """
    if os.getuid() != 0:
        return
    for item in [path, *path.rglob("*")]:
        os.chown(item, uid, 0, follow_symlinks=False)


def memory_peak(container_id: str) -> int | None:
    """The container's memory high-water mark in bytes (cgroup v1 or v2), or None if unknown.

    Read inside the container, where its own cgroup is mounted as the root
    (without a cgroup namespace v2 shows the host's tree: then None).
    """
    result = docker(
        "exec", container_id, "sh", "-c",
        "cat /sys/fs/cgroup/memory/memory.max_usage_in_bytes 2>/dev/null"
        " || cat /sys/fs/cgroup/memory.peak 2>/dev/null",
        check=False)
    text = result.stdout.strip()
    return int(text) if result.returncode == 0 and text.isdigit() else None


def oom_kills(container_id: str) -> int | None:
    """How many processes the kernel's OOM killer ended in the container's cgroup, or None if unknown."""
    result = docker(
        "exec", container_id, "sh", "-c",
        "cat /sys/fs/cgroup/memory/memory.oom_control 2>/dev/null"
        " || cat /sys/fs/cgroup/memory.events 2>/dev/null",
        check=False)
    for line in result.stdout.splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill" and value.strip().isdigit():
            return int(value)
    return None


async def until_serving(host: str, port: int, timeout: float = 20.0) -> None:
    """Return once the gRPC health service at host:port answers SERVING; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        channel = Channel(host, port)
        try:
            reply = await HealthStub(channel).Check(HealthCheckRequest(), timeout=1)
            if reply.status == HealthCheckResponse.SERVING:
                return
        except (OSError, StreamTerminatedError, asyncio.TimeoutError):
            pass
        finally:
            channel.close()
        assert time.monotonic() < deadline, f"{host}:{port} not SERVING after {timeout:g} s"
        await asyncio.sleep(0.1)


def health(container_id: str) -> dict[str, Any]:
    """The container's ``State.Health`` (Status, FailingStreak, Log), or {} without a check."""
    state = json.loads(docker("inspect", "--format", "{{json .State}}", container_id).stdout)
    return state.get("Health") or {}


def image_exists(image: str) -> bool:
    """Whether the daemon has ``image`` locally."""
    return docker("image", "inspect", image, check=False).returncode == 0


def inspect_image(image: str) -> dict[str, Any]:
    """``docker image inspect`` of one image."""
    return json.loads(docker("image", "inspect", image).stdout)[0]


def run(
    image: str,
    *args: str,
    entrypoint: str | None = None,
    options: Sequence[str] = (),
    timeout: float = CLI_TIMEOUT,
) -> RunResult:
    """Run a throw-away container to completion (``docker run --rm``).

    On timeout the container is force-removed: killing the client alone
    would leave it running.
    """
    name = f"{LABEL}-run-{uuid.uuid4().hex[:12]}"
    cmd = ["run", "--rm", "--name", name, "--label", LABEL]
    if entrypoint is not None:
        cmd += ["--entrypoint", entrypoint]
    try:
        return docker(*cmd, *options, image, *args, timeout=timeout, check=False)
    except DockerError:
        docker("rm", "-f", "-v", name, check=False)
        raise


@dataclass
class Container:
    """A detached container started by a :class:`ContainerSet`."""

    id: str
    name: str

    def inspect(self) -> dict[str, Any]:
        """``docker inspect`` of this container."""
        return json.loads(docker("inspect", self.id).stdout)[0]

    def running(self) -> bool:
        """Whether the container is still running."""
        return bool(self.inspect()["State"]["Running"])

    def exit_code(self) -> int:
        """The exit code of a stopped container."""
        return int(self.inspect()["State"]["ExitCode"])

    def ip_address(self) -> str:
        """The container's address on the default bridge network."""
        settings = self.inspect()["NetworkSettings"]
        address = settings.get("IPAddress") or next(
            (n["IPAddress"] for n in settings.get("Networks", {}).values() if n.get("IPAddress")),
            "",
        )
        if not address:
            raise DockerError(f"container {self.name} has no IP address")
        return address

    def logs(self) -> str:
        """Everything the container wrote to stdout and stderr so far."""
        result = docker("logs", self.id, check=False)
        return result.stdout + result.stderr

    def wait_for_port(self, port: int, timeout: float = 20.0) -> None:
        """Block until the container accepts TCP connections on ``port``."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.running():
                raise ContainerExited(
                    f"container {self.name} exited ({self.exit_code()}) before listening "
                    f"on {port}:\n{self.logs()[-2000:]}")
            try:
                with socket.create_connection((self.ip_address(), port), timeout=1.0):
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise DockerError(
                    f"container {self.name} not listening on {port} after {timeout:g} s:\n"
                    f"{self.logs()[-2000:]}")
            time.sleep(0.1)

    def stop(self, grace: float = 10.0) -> float:
        """``docker stop -t GRACE``: SIGTERM, SIGKILL after ``grace`` s; returns seconds taken."""
        started = time.monotonic()
        docker("stop", "-t", str(int(grace)), self.id, timeout=grace + CLI_TIMEOUT)
        return time.monotonic() - started

    def remove(self) -> None:
        """Force-remove the container; a container already gone is fine."""
        docker("rm", "-f", "-v", self.id, check=False)


@dataclass
class ContainerSet:
    """Containers a test started, all removed by :meth:`remove_all`."""

    session: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    containers: list[Container] = field(default_factory=list)

    def start(
        self,
        image: str,
        *args: str,
        entrypoint: str | None = None,
        options: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> Container:
        """Start a detached container (no ``--rm``, so its exit state stays inspectable)."""
        name = f"{LABEL}-{self.session}-{len(self.containers)}"
        cmd = ["run", "-d", "--name", name, "--label", f"{LABEL}={self.session}"]
        if entrypoint is not None:
            cmd += ["--entrypoint", entrypoint]
        for key, value in (env or {}).items():
            cmd += ["-e", f"{key}={value}"]
        result = docker(*cmd, *options, image, *args)
        container = Container(id=result.stdout.strip(), name=name)
        self.containers.append(container)
        return container

    @property
    def labels(self) -> dict[str, str]:
        """The label every container of this set carries (for services that start their own)."""
        return {LABEL: self.session}

    def listed(self) -> list[str]:
        """Ids of every container, running or not, that carries this set's label."""
        return docker("ps", "-aq", "--filter", f"label={LABEL}={self.session}").stdout.split()

    def remove_all(self) -> None:
        """Force-remove every container of this set, including any not tracked."""
        listed = docker("ps", "-aq", "--filter", f"label={LABEL}={self.session}", check=False)
        ids = set(listed.stdout.split()) | {c.id for c in self.containers}
        if ids:
            docker("rm", "-f", "-v", *sorted(ids), check=False)
        self.containers.clear()
