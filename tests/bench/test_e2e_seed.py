"""bench.e2e --seed: the same work in every run of a rep, so versions compare pair by pair."""
from __future__ import annotations

from pathlib import Path

import pytest

import tutorial_app.requestor
from bench.e2e import one_run, seeded_salts


def _needed(tmp_path: Path, seed: int | None) -> int:
    with seeded_salts(seed):
        _, needed, _ = one_run(tmp_path, difficulty=12, subtasks=4)
    return needed


@pytest.mark.timeout(60)
def test_a_seed_fixes_the_work_of_a_run_and_another_seed_changes_it(tmp_path: Path) -> None:
    first, again, other = _needed(tmp_path, 3), _needed(tmp_path, 3), _needed(tmp_path, 4)
    assert first == again
    assert other != first


@pytest.mark.timeout(60)
def test_without_a_seed_salts_stay_random(tmp_path: Path) -> None:
    real = tutorial_app.requestor.secrets
    assert _needed(tmp_path, None) != _needed(tmp_path, None)
    with seeded_salts(5):
        assert tutorial_app.requestor.secrets is not real
    assert tutorial_app.requestor.secrets is real
