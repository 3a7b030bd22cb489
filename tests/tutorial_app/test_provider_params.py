"""The provider's reading of subtask params."""
from __future__ import annotations

from pathlib import Path

import pytest

from tutorial_app.params import InvalidParamsError
from tutorial_app.provider import parse_subtask_params


def test_ours_and_seed_style(tmp_path: Path) -> None:
    assert parse_subtask_params({"difficulty": 3, "resources": ["s.zip"]}, tmp_path) == (3, "s.zip")
    (tmp_path / "only.zip").write_bytes(b"")
    assert parse_subtask_params({"difficulty": 3}, tmp_path) == (3, "only.zip")


@pytest.mark.parametrize("sent, meant", [(16.0, 16), (0.0, 0), (256.0, 256)])
def test_integral_float_difficulty_from_a_published_requestor(tmp_path: Path, sent: float, meant: int) -> None:
    difficulty, resource = parse_subtask_params({"difficulty": sent, "resources": ["s.zip"]}, tmp_path)
    assert (difficulty, resource) == (meant, "s.zip") and type(difficulty) is int


@pytest.mark.parametrize("params, words", [
    ([], "JSON object"), ({}, "lack difficulty"), ({"difficulty": 300}, "out of range"),
    ({"difficulty": "1"}, "integer"), ({"difficulty": 1, "resources": []}, "exactly one"),
    ({"difficulty": 16.5}, "not a fraction 16.5"), ({"difficulty": float("nan")}, "non-finite"),
    ({"difficulty": True}, "not a boolean"), ({"difficulty": float("-inf")}, "non-finite"),
    ({"difficulty": 1, "resources": ["../a.zip"]}, "plain file name"),
    ({"difficulty": 1}, "holds 0 files"),
])
def test_bad(tmp_path: Path, params: object, words: str) -> None:
    with pytest.raises(InvalidParamsError, match=words):
        parse_subtask_params(params, tmp_path / "missing")
