"""The app's published facts agree with the package metadata."""
from __future__ import annotations

import importlib.metadata

from tutorial_app import meta


def test_version_matches_package_and_tag() -> None:
    assert meta.VERSION == importlib.metadata.version("tutorial-app")
    assert meta.prerequisites() == {"image": "tutorial-app", "tag": meta.VERSION}
    assert meta.MIN_MEMORY_MIB > 0
