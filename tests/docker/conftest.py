"""Fixtures for the image tests: skip, with the reason shown, when Docker is not usable.

The image under test is ``tutorial-app:<project version>`` (override with
``TUTORIAL_APP_IMAGE``); ``scripts/docker-ci-base.sh`` builds it.
"""
from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pytest

import dockerutil
from golem_task_api.dockerservice import NODE_MEM_LIMIT_MB, DockerTaskApiService, NodeSettings

SCRIPT = "scripts/docker-ci-base.sh"


def image_name() -> str:
    """The image the tests run: TUTORIAL_APP_IMAGE, else tutorial-app:<version>."""
    override = os.environ.get("TUTORIAL_APP_IMAGE")
    if override:
        return override
    try:
        return f"tutorial-app:{version('tutorial-app')}"
    except PackageNotFoundError:
        return "tutorial-app:latest"


@functools.cache
def _skip_reason() -> str | None:
    """Why docker tests cannot run here, or None; asked once per session."""
    problem = dockerutil.daemon_problem()
    if problem is not None:
        return f"{problem} (start one with {SCRIPT})"
    image = image_name()
    if not dockerutil.image_exists(image):
        return f"image {image} not built (build it with {SCRIPT})"
    return None


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip ``docker``-marked tests with a visible reason when Docker is unusable."""
    if item.get_closest_marker("docker") is None:
        return
    reason = _skip_reason()
    if reason is not None:
        pytest.skip(reason)


@pytest.fixture(scope="session")
def image() -> str:
    """The name of the image under test."""
    return image_name()


@pytest.fixture
def containers() -> Iterator[dockerutil.ContainerSet]:
    """Start detached containers; every one is force-removed after the test."""
    started = dockerutil.ContainerSet()
    try:
        yield started
    finally:
        started.remove_all()


@pytest.fixture
def docker_service(image: str, containers: dockerutil.ContainerSet) -> Iterator[Callable[[Path], DockerTaskApiService]]:
    """Make DockerTaskApiServices of the image, labelled so leftovers are found and removed.

    One engine worker per provider keeps the 2-core CI box responsive.
    """
    def factory(work_dir: Path) -> DockerTaskApiService:
        return DockerTaskApiService(
            image, work_dir, labels=containers.labels, env={"TUTORIAL_APP_WORKERS": "1"},
        )

    yield factory


# The uid a simulated node runs its containers as when the tests run as
# root: neither root nor the image's default user (1000), so nothing works
# by accident of ownership.
FOREIGN_UID = 4321


@pytest.fixture(scope="session")
def node_uid() -> int:
    """The uid the simulated Golem node runs containers as: ours, or FOREIGN_UID as root."""
    return FOREIGN_UID if os.getuid() == 0 else os.getuid()


@pytest.fixture
def node_service(
    image: str, containers: dockerutil.ContainerSet, node_uid: int,
) -> Callable[..., DockerTaskApiService]:
    """Make node-mode services of the image: ``factory(work_dir, cpus=1, mem_limit_mb=1024, uid=node_uid, **options)``.

    One pinned CPU unless a test asks for more keeps the 2-core CI box
    responsive; no TUTORIAL_APP_* variables, since a node sets none. The
    work dir and what is in it is handed over to the uid first, as a node's
    shared dir belongs to the node's uid.
    """
    def factory(work_dir: Path, cpus: int = 1, mem_limit_mb: int = NODE_MEM_LIMIT_MB,
                uid: int = node_uid, **options: Any) -> DockerTaskApiService:
        dockerutil.hand_over(Path(work_dir), uid)
        settings = NodeSettings(cpus=cpus, mem_limit_mb=mem_limit_mb, uid=uid)
        return DockerTaskApiService.as_node(image, work_dir, settings, labels=containers.labels, **options)

    return factory
