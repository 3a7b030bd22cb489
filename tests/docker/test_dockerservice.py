"""DockerTaskApiService on its own: how it runs, publishes, stops and fails."""
from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import dockerutil
from golem_task_api.client import HEALTH_TIMEOUT, RequestorAppClient, ServiceNotReadyError
from golem_task_api.dockerservice import ROLE_LABEL, DockerServiceError, DockerTaskApiService

pytestmark = pytest.mark.docker

ServiceFactory = Callable[[Path], DockerTaskApiService]
APP_PORT = 50005


def test_container_config_logs_and_idempotent_stop(
    tmp_path: Path, image: str, containers: dockerutil.ContainerSet,
) -> None:
    work_dir = tmp_path / "odd, dir"  # a comma must not break the --mount spec
    work_dir.mkdir()
    service = DockerTaskApiService(
        image, work_dir, labels=containers.labels, log_path=tmp_path / "server.log")

    async def scenario() -> tuple[dict, float, float]:
        client = await RequestorAppClient.create(service, APP_PORT)
        try:
            assert service.running()
            assert service.container_id is not None
            config = json.loads(dockerutil.docker("inspect", service.container_id).stdout)[0]
            score = await client.run_benchmark()
            started = time.monotonic()
            await service.stop()
            took = time.monotonic() - started
            await service.stop()  # idempotent
            return config, score, took
        finally:
            await client.shutdown(timeout=1)

    config, score, took = asyncio.run(scenario())
    assert score > 0
    assert config["HostConfig"]["AutoRemove"] is True
    assert config["Config"]["User"] == f"{os.getuid()}:{os.getgid()}"
    assert config["Config"]["Labels"][ROLE_LABEL] == "requestor"
    assert config["Config"]["Cmd"] == ["requestor", str(APP_PORT)]
    (mount,) = config["Mounts"]
    assert (mount["Source"], mount["Destination"]) == (str(work_dir.resolve()), "/golem/work")
    (binding,) = config["HostConfig"]["PortBindings"][f"{APP_PORT}/tcp"]
    # Published on loopback only, on a port the kernel picked.
    assert binding == {"HostIp": "127.0.0.1", "HostPort": ""}
    assert not service.running()
    # `docker stop` sent SIGTERM and the server honoured it well before the SIGKILL.
    assert service.exit_code != 137
    assert took < service.stop_grace
    assert containers.listed() == []
    logs = (tmp_path / "server.log").read_text()
    assert f"requestor server listening on port {APP_PORT}" in logs
    assert "requestor server stopped" in logs


def test_app_that_exits_at_once_fails_start_quickly(
    tmp_path: Path, image: str, containers: dockerutil.ContainerSet,
) -> None:
    # The entrypoint rejects the log level and exits with status 2 at once.
    service = DockerTaskApiService(
        image, tmp_path, labels=containers.labels, env={"TUTORIAL_APP_LOG_LEVEL": "bogus"})

    async def scenario() -> float:
        started = time.monotonic()
        with pytest.raises((DockerServiceError, ServiceNotReadyError)):
            await RequestorAppClient.create(service, APP_PORT)
        return time.monotonic() - started

    took = asyncio.run(scenario())
    # Noticed the container's end, not the health check's timeout.
    assert took < HEALTH_TIMEOUT / 2
    assert not service.running()
    assert service.exit_code in (2, None)  # None: --rm removed it before `docker wait` asked
    assert containers.listed() == []


@pytest.mark.parametrize(
    ("image_name", "make_dir", "complaint"),
    [
        ("tutorial-app:no-such-tag", True, "docker run"),
        (None, False, "is not a directory"),
    ],
)
def test_start_errors_leave_nothing_behind(
    tmp_path: Path, image: str, containers: dockerutil.ContainerSet,
    image_name: str | None, make_dir: bool, complaint: str,
) -> None:
    work_dir = tmp_path / "work"
    if make_dir:
        work_dir.mkdir()
    service = DockerTaskApiService(image_name or image, work_dir, labels=containers.labels)
    with pytest.raises(DockerServiceError, match=complaint):
        asyncio.run(service.start(["requestor", str(APP_PORT)], APP_PORT))
    assert not service.running()
    asyncio.run(service.stop())
    assert containers.listed() == []
    # Docker must not have created the missing work dir (it would be root's).
    assert work_dir.exists() == make_dir


def test_start_twice_is_refused(tmp_path: Path, docker_service: ServiceFactory) -> None:
    service = docker_service(tmp_path)

    async def scenario() -> None:
        await service.start(["provider", str(APP_PORT)], APP_PORT)
        try:
            with pytest.raises(DockerServiceError, match="already started"):
                await service.start(["provider", str(APP_PORT)], APP_PORT)
        finally:
            await service.stop()

    asyncio.run(scenario())
    assert not service.running()
