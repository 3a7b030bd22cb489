"""Fixtures shared by the tutorial_app tests (helpers live in app_testing.py)."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app_testing import INPUT_TEXT


@pytest.fixture(autouse=True)
def _few_workers(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """One engine worker per pool keeps the suite fast on a shared 2-core box."""
    monkeypatch.setenv("TUTORIAL_APP_WORKERS", "1")
    yield


@pytest.fixture
def input_file(tmp_path: Path) -> Path:
    """A UTF-8 input file outside any work dir."""
    path = tmp_path / "input.txt"
    path.write_text(INPUT_TEXT, encoding="utf-8")
    return path
