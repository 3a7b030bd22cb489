"""The app definition a Golem node loads to publish the app."""
from __future__ import annotations

from typing import Any

import engine
from golem_task_api import envs

from tutorial_app import meta

DESCRIPTION = (
    "Proof of work: each subtask searches for a nonce whose SHA-256 digest "
    "beats a difficulty target; the requestor verifies every result."
)
AUTHOR = "Tutorial-App developers"
LICENSE = "GPL-3.0-or-later"
# Providers are paid for time; "brass" is the node's strategy for that market.
MARKET_STRATEGY = "brass"


def app_descriptor() -> dict[str, Any]:
    """The app definition JSON object (``tutorial-app descriptor`` prints it)."""
    return {
        "name": meta.APP_NAME,
        "description": DESCRIPTION,
        "version": meta.VERSION,
        "author": AUTHOR,
        "license": LICENSE,
        "requestor_env": envs.DOCKER_CPU_ENV_ID,
        "requestor_prereq": meta.prerequisites(),
        "market_strategy": MARKET_STRATEGY,
        "max_benchmark_score": engine.BENCHMARK_MAX_SCORE,
    }
