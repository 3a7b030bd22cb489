"""Ids of the environments a task can ask providers to run it in."""
from __future__ import annotations

DOCKER_CPU_ENV_ID = "docker_cpu"
DOCKER_GPU_ENV_ID = "docker_gpu"
