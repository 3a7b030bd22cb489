"""golem_task_api.testutils.dockertaskapiservice: the published surface, in node mode."""
from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

import dockerutil
from golem_task_api.client import RequestorAppClient
from golem_task_api.testutils import find_free_port
from golem_task_api.testutils.dockertaskapiservice import (
    DockerTaskApiService,
    get_docker_container_port_mapping,
    is_docker_available,
    run_docker_container,
)

pytestmark = pytest.mark.docker


def test_docker_is_available() -> None:
    """The docker-marked tests run only where a daemon answers, so here it must say so."""
    assert is_docker_available() is True


def test_service_takes_the_published_arguments_and_runs_as_a_node(
    tmp_path: Path, image: str, containers: dockerutil.ContainerSet,
) -> None:
    """``DockerTaskApiService(image, work_dir)`` serves a requestor, as this uid, on every CPU."""
    service = DockerTaskApiService(image, tmp_path, labels=containers.labels)
    port = find_free_port()

    async def scenario() -> tuple[float, dict]:
        client = await RequestorAppClient.create(service, port)
        try:
            assert service.container_id is not None
            info = dockerutil.Container(service.container_id, service.name or "").inspect()
            return await client.run_benchmark(), info
        finally:
            await client.shutdown(timeout=5)

    score, info = asyncio.run(scenario())
    assert score > 0
    assert info["Config"]["User"] == str(os.getuid())
    assert info["HostConfig"]["CpusetCpus"] == ",".join(str(c) for c in range(os.cpu_count() or 1))
    assert service.vm_name == "default"
    assert service.exit_code == 0
    assert containers.listed() == []


def test_run_container_and_its_port_mapping(tmp_path: Path, image: str) -> None:
    """run_docker_container serves the command; the mapping it reports answers the health check."""
    port = find_free_port()
    with run_docker_container(image, tmp_path, f"provider {port}", port) as container:
        assert get_docker_container_port_mapping(container.id, port) == ("127.0.0.1", port)
        asyncio.run(dockerutil.until_serving("127.0.0.1", port))
        container.stop(timeout=5)
        assert container.status() == "exited"
    assert container.status() == "removed"
