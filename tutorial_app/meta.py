"""Facts about the app that a Golem node sees: name, version, image, limits."""
from __future__ import annotations

APP_NAME = "tutorial-app"
"""The app's name, as published in its descriptor."""

VERSION = "0.1.0"
"""The package version; kept equal to pyproject's (a test checks it)."""

DOCKER_IMAGE = "tutorial-app"
"""The Docker image providers run (the CreateTask prerequisites)."""

DOCKER_TAG = VERSION
"""The image tag: one image per app version."""

MIN_MEMORY_MIB = 256.0
"""Minimum memory a provider must offer, in MiB (CreateTask inf_requirements)."""

MAX_INPUT_BYTES = 4 * 1024 * 1024
"""Largest task input file accepted, in bytes (it is hashed once per part)."""

SALT_BYTES = 16
"""Random bytes per part's salt (written as hex, so twice as many characters)."""

MAX_SUBTASK_INPUT_BYTES = MAX_INPUT_BYTES + 2 * SALT_BYTES
"""Largest subtask input text a provider unpacks: the task input plus a salt."""

MAX_SUBTASK_INPUT_FILE_BYTES = MAX_SUBTASK_INPUT_BYTES + 64 * 1024
"""Largest subtask input ZIP a provider reads: the text stored plus ZIP overhead."""

MAX_RESULT_BYTES = 4096
"""Largest result text a requestor unpacks; a real one is ~90 bytes."""

MAX_RESULT_FILE_BYTES = 64 * 1024
"""Largest result ZIP a requestor reads; a real one is ~250 bytes."""

MAX_PARTS = 100_000
"""Most parts one task may have; bounds the store and the node's promises."""


def prerequisites() -> dict[str, str]:
    """The Docker prerequisites JSON object of CreateTask: image and tag."""
    return {"image": DOCKER_IMAGE, "tag": DOCKER_TAG}
