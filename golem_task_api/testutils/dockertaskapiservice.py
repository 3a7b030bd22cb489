"""App servers in Docker containers started as a Golem node starts them.

The published testutils surface: :class:`DockerTaskApiService` for
``TaskLifecycleUtil``-driven tests, and three plain functions for tests that
manage a container themselves. All of it is built on
:mod:`golem_task_api.dockerservice` in node mode, so an app's test suite
exercises its image under the node's settings (numeric uid, pinned CPUs,
memory limit, dropped capabilities), not under friendlier ones.

Docker is driven through the ``docker`` client, so no Docker SDK is needed.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from golem_task_api.client import command_argv
from golem_task_api.dockerservice import (
    NODE_DIAL_HOST,
    DockerServiceError,
    NodeSettings,
    run_arguments,
)
from golem_task_api.dockerservice import DockerTaskApiService as _NodeService

# Quick client calls (run, inspect, stop's bookkeeping) finish well within this.
CLI_TIMEOUT = 60.0
# Containers started by run_docker_container carry this label (value: the role).
RUN_LABEL = "golem-task-api.testutils"


class DockerTaskApiService(_NodeService):
    """A ``TaskApiService`` running ``image`` in node mode on ``work_dir``.

    ``vm_name`` names the docker-machine VM that runs the daemon where the
    host cannot reach containers directly (macOS, Windows); on Linux it is
    not used. ``settings`` defaults to ``NodeSettings()``; ``options`` are
    :class:`golem_task_api.dockerservice.DockerTaskApiService` keywords.
    """

    def __init__(
        self,
        image: str,
        work_dir: Path,
        vm_name: Optional[str] = "default",
        *,
        settings: Optional[NodeSettings] = None,
        **options: Any,
    ) -> None:
        super().__init__(image, work_dir, node=settings or NodeSettings(), **options)
        self.vm_name = vm_name

    async def start(self, command: str | Sequence[str], port: int) -> tuple[str, int]:
        host, host_port = await super().start(command, port)
        vm_host = _docker_machine_ip(self.vm_name)
        return (vm_host or host), host_port


@dataclass
class DockerContainer:
    """A detached container started by :func:`run_docker_container`; its owner removes it."""

    id: str
    name: str

    def status(self) -> str:
        """Docker's state of the container ("running", "exited", ...), or "removed"."""
        result = _docker("container", "inspect", "--format", "{{.State.Status}}", self.id, check=False)
        return result.stdout.strip() if result.returncode == 0 else "removed"

    def logs(self) -> str:
        """Everything the app wrote to stdout and stderr so far."""
        result = _docker("logs", self.id, check=False)
        return result.stdout + result.stderr

    def stop(self, timeout: int = 5) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds; a stopped container is fine."""
        _docker("stop", "--time", str(timeout), self.id, timeout=timeout + CLI_TIMEOUT, check=False)

    def remove(self) -> None:
        """Force-remove the container (stopping it first if it runs); idempotent."""
        _docker("rm", "--force", self.id, check=False)

    def __enter__(self) -> "DockerContainer":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.remove()


def is_docker_available() -> bool:
    """Whether a ``docker`` client is on PATH and a daemon answers it."""
    if shutil.which("docker") is None:
        return False
    try:
        result = _docker("version", "--format", "{{.Server.Version}}", timeout=15, check=False)
    except DockerServiceError:
        return False
    return result.returncode == 0


def run_docker_container(
    image: str,
    work_dir: Path,
    command: str | Sequence[str],
    port: int,
    settings: Optional[NodeSettings] = None,
) -> DockerContainer:
    """Start ``image`` detached in node mode, serving ``command`` ("provider 50006") on ``port``.

    The container is not removed when it ends, so its exit state can be
    inspected: remove it with :meth:`DockerContainer.remove` (or use it as a
    context manager).
    """
    work_dir = Path(work_dir).resolve()
    if not work_dir.is_dir():
        # Docker would create a missing bind-mount source, owned by root.
        raise DockerServiceError(f"work dir {work_dir} is not a directory")
    argv = command_argv(command)
    name = f"golem-task-api-{uuid.uuid4().hex[:12]}"
    args = run_arguments(
        image, work_dir, argv, port, name=name,
        labels={RUN_LABEL: argv[0] if argv else ""},
        node=settings or NodeSettings(), remove=False,
    )
    try:
        result = _docker(*args, check=False)
    except DockerServiceError:
        _docker("rm", "--force", name, check=False)
        raise
    if result.returncode != 0:
        _docker("rm", "--force", name, check=False)
        raise DockerServiceError(f"docker run {image} failed ({result.returncode}): {result.stderr.strip()}")
    return DockerContainer(id=result.stdout.strip(), name=name)


def get_docker_container_port_mapping(
    container_id: str, port: int, vm_name: Optional[str] = "default",
) -> tuple[str, int]:
    """The (host, port) a client on this machine dials to reach the container's ``port``.

    A published port is dialled on the loopback (or the docker-machine VM's
    address where one runs the daemon); an unpublished one on Linux at the
    container's bridge address.
    """
    result = _docker("container", "inspect", container_id, check=False)
    if result.returncode != 0:
        raise DockerServiceError(f"no container {container_id}: {result.stderr.strip()}")
    info = json.loads(result.stdout)[0]
    bindings = (info.get("NetworkSettings", {}).get("Ports") or {}).get(f"{port}/tcp") or []
    for binding in bindings:
        host_port = str(binding.get("HostPort", ""))
        if not host_port.isdigit():
            continue
        vm_host = _docker_machine_ip(vm_name)
        if vm_host:
            return vm_host, int(host_port)
        address = binding.get("HostIp") or ""
        return (NODE_DIAL_HOST if address in ("", "0.0.0.0", "::") else address), int(host_port)
    if sys.platform.startswith("linux"):
        for network in (info.get("NetworkSettings", {}).get("Networks") or {}).values():
            if network.get("IPAddress"):
                return network["IPAddress"], port
    raise DockerServiceError(f"container {container_id} neither publishes nor exposes port {port}")


def _docker_machine_ip(vm_name: Optional[str]) -> Optional[str]:
    # Only where containers live in a docker-machine VM: never on Linux.
    if not vm_name or sys.platform.startswith("linux") or shutil.which("docker-machine") is None:
        return None
    try:
        result = subprocess.run(
            ["docker-machine", "ip", vm_name], capture_output=True, text=True,
            timeout=CLI_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        return None
    if result.returncode != 0:
        return None
    return result.stdout.strip() or None


def _docker(*args: str, timeout: float = CLI_TIMEOUT, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        result = subprocess.run(
            ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DockerServiceError(f"`docker {' '.join(args[:2])}` failed: {exc}") from exc
    if check and result.returncode != 0:
        raise DockerServiceError(f"`docker {' '.join(args[:2])}` exited {result.returncode}: {result.stderr.strip()}")
    return result


__all__ = [
    "DockerContainer",
    "DockerTaskApiService",
    "get_docker_container_port_mapping",
    "is_docker_available",
    "run_docker_container",
]
