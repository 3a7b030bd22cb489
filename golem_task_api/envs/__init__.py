"""Environments a task can run in, and `Task` records naming them.

`create_docker_cpu_task` / `create_docker_gpu_task` build the reply of an
app's `create_task`: the env id plus `{"image": ..., "tag": ...}` as the
prerequisites every provider must satisfy.
"""
from __future__ import annotations

from golem_task_api.envs import constants
from golem_task_api.envs.constants import DOCKER_CPU_ENV_ID, DOCKER_GPU_ENV_ID
from golem_task_api.structs import Infrastructure, Task

__all__ = [
    "DOCKER_CPU_ENV_ID",
    "DOCKER_GPU_ENV_ID",
    "constants",
    "create_docker_cpu_task",
    "create_docker_gpu_task",
]


def _docker_task(env_id: str, image: str, tag: str, inf: Infrastructure) -> Task:
    return Task(env_id=env_id, prerequisites={"image": image, "tag": tag}, inf_requirements=inf)


def create_docker_cpu_task(image: str, tag: str, inf: Infrastructure) -> Task:
    """A task run by providers in the Docker CPU environment from image:tag."""
    return _docker_task(DOCKER_CPU_ENV_ID, image, tag, inf)


def create_docker_gpu_task(image: str, tag: str, inf: Infrastructure) -> Task:
    """A task run by providers in the Docker GPU environment from image:tag."""
    return _docker_task(DOCKER_GPU_ENV_ID, image, tag, inf)
