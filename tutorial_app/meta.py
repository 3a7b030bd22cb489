"""Facts about the app that a Golem node sees: name, version, image, limits.

The limits, for the README to cite (each constant's docstring says where it
applies)::

    MAX_INPUT_BYTES               4 MiB     task input file (CreateTask)
    MAX_PARTS                     100,000   parts (subtasks) of one task
    MAX_SUBTASK_INPUT_BYTES       4 MiB + 95 B   subtask input text (Compute)
    MAX_SUBTASK_INPUT_FILE_BYTES  that + 64 KiB  subtask input ZIP (Compute)
    MAX_RESULT_BYTES              4 KiB     result text (Verify)
    MAX_RESULT_FILE_BYTES         64 KiB    result ZIP (Verify)

A result's nonce may have any number of digits the result text can hold
(about 4,000); names and ids are bounded by `tutorial_app.params.MAX_NAME_BYTES`.
"""
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
"""Largest task input file accepted: 4 MiB (4,194,304 bytes).

CreateTask refuses a larger ``resources`` file with INVALID_ARGUMENT. The
text is stored once per task and hashed by every provider, once per part.
"""

SALT_BYTES = 16
"""Random bytes per part's salt (written as hex, so twice as many characters).

That is the salt's least length: the requestor lengthens it by up to 63
characters so every nonce's digits fit one final SHA-256 block
(`engine.layout.one_block_salt_length`)."""

MAX_SALT_CHARS = 2 * SALT_BYTES + 63
"""Longest salt the requestor writes: the random hex plus the one-block shaping."""

MAX_SUBTASK_INPUT_BYTES = MAX_INPUT_BYTES + MAX_SALT_CHARS
"""Largest subtask input text a provider unpacks: the task input plus a salt."""

MAX_SUBTASK_INPUT_FILE_BYTES = MAX_SUBTASK_INPUT_BYTES + 64 * 1024
"""Largest subtask input ZIP a provider reads: the text stored plus ZIP overhead."""

MAX_RESULT_BYTES = 4096
"""Largest result text a requestor unpacks: 4 KiB; a real one is ~90 bytes.

It is also the only bound on the nonce's digits (`tutorial_app.result`).
"""

MAX_RESULT_FILE_BYTES = 64 * 1024
"""Largest result ZIP a requestor reads; a real one is ~250 bytes."""

MAX_PARTS = 100_000
"""Most parts (subtasks) one task may have: 100,000.

CreateTask refuses a larger ``subtasks_count`` (or ``max_subtasks_count``
when no count is given) with INVALID_ARGUMENT; it bounds the store's size
and what the app promises the node.
"""


def prerequisites() -> dict[str, str]:
    """The Docker prerequisites JSON object of CreateTask: image and tag."""
    return {"image": DOCKER_IMAGE, "tag": DOCKER_TAG}
