"""The image's HEALTHCHECK asks the app server's gRPC health service.

Docker's own schedule (every 10 s) is shortened with --health-interval so
the tests see several probes in a few seconds; the command is the image's.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import dockerutil
from golem_task_api.dockerservice import CONTAINER_WORK_DIR, NodeSettings
from golem_task_api.testutils import find_free_port

pytestmark = pytest.mark.docker

FAST_PROBES = ["--health-interval", "1s", "--health-timeout", "5s", "--health-retries", "1"]
# The first probe comes one interval after the start; a busy CI box adds a few seconds.
HEALTH_DEADLINE_SECONDS = 20.0


def _until(container: dockerutil.Container, done: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The container's health state once ``done`` holds for it."""
    deadline = time.monotonic() + HEALTH_DEADLINE_SECONDS
    while True:
        health = dockerutil.health(container.id)
        if done(health):
            return health
        assert time.monotonic() < deadline, (health, container.logs()[-2000:])
        time.sleep(0.2)


def test_image_declares_a_healthcheck(image: str) -> None:
    """The image itself carries the check (a node or compose needs no flag for it)."""
    check = dockerutil.inspect_image(image)["Config"]["Healthcheck"]
    assert check["Test"][0] == "CMD"
    assert "healthcheck.py" in " ".join(check["Test"])


@pytest.mark.timeout(60)
@pytest.mark.parametrize("role", ["requestor", "provider"])
def test_app_server_under_node_settings_becomes_healthy(
    tmp_path: Path, image: str, containers: dockerutil.ContainerSet, node_uid: int, role: str,
) -> None:
    """Healthy once the server answers SERVING; three probes later a provider still waits for its request.

    A provider ends after its one request: the probes must not count as one.
    """
    dockerutil.hand_over(tmp_path, node_uid)
    port = find_free_port()
    container = containers.start(
        image, role, str(port),
        options=["--mount", f"type=bind,source={tmp_path},target={CONTAINER_WORK_DIR}",
                 *NodeSettings(cpus=1, uid=node_uid).run_options(port), *FAST_PROBES])
    _until(container, lambda h: h.get("Status") == "healthy")
    health = _until(container, lambda h: len(h.get("Log") or []) >= 3)
    assert [probe["ExitCode"] for probe in health["Log"]] == [0] * len(health["Log"]), health
    assert health["Status"] == "healthy"
    assert container.running()


@pytest.mark.timeout(60)
def test_a_container_serving_no_app_is_unhealthy(image: str, containers: dockerutil.ContainerSet) -> None:
    """PID 1 is no app server (here `sleep`): the check fails and says why, it does not pass blindly."""
    container = containers.start(image, "30", entrypoint="sleep", options=FAST_PROBES)
    health = _until(container, lambda h: h.get("Status") == "unhealthy")
    assert health["Log"][-1]["ExitCode"] != 0
    assert "serves no app" in health["Log"][-1]["Output"]
