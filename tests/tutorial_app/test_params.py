"""Validation of task params and input files."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tutorial_app import meta
from tutorial_app.params import (
    InvalidParamsError, TaskParams, check_difficulty, check_file_name, parse_task_params,
    read_input_file,
)


def test_defaults_and_values() -> None:
    assert parse_task_params({"difficulty": 8, "resources": ["in.txt"]}, 4) == TaskParams(8, 4, "in.txt")
    assert parse_task_params(
        {"difficulty": 0, "subtasks_count": 2, "resources": ["a"], "extra": 1}, 4
    ) == TaskParams(0, 2, "a")
    assert parse_task_params({"difficulty": 256, "subtasks_count": None, "resources": ["a"]}, 1).subtasks_count == 1


@pytest.mark.parametrize("difficulty, words", [
    (-1, "out of range"), (257, "out of range"), ("3", "integer, not a string"),
    (3.0, "integer, not a number"), (True, "integer, not a boolean"), (None, "integer, not null"),
])
def test_bad_difficulty(difficulty: object, words: str) -> None:
    with pytest.raises(InvalidParamsError, match=words):
        parse_task_params({"difficulty": difficulty, "resources": ["a"]}, 2)


def test_missing_difficulty() -> None:
    with pytest.raises(InvalidParamsError, match="difficulty is required"):
        parse_task_params({"resources": ["a"]}, 2)


@pytest.mark.parametrize("count", [0, -1, 3, 1.0, "2", False])
def test_bad_subtasks_count(count: object) -> None:
    with pytest.raises(InvalidParamsError, match="subtasks_count"):
        parse_task_params({"difficulty": 1, "subtasks_count": count, "resources": ["a"]}, 2)


def test_bad_max_subtasks_count_and_part_cap() -> None:
    with pytest.raises(InvalidParamsError, match="max_subtasks_count"):
        parse_task_params({"difficulty": 1, "resources": ["a"]}, 0)
    with pytest.raises(InvalidParamsError, match="more than this app supports"):
        parse_task_params({"difficulty": 1, "resources": ["a"]}, meta.MAX_PARTS + 1)


@pytest.mark.parametrize("raw, words", [
    ([1], "JSON object"),
    ({"difficulty": 1}, "resources is required"),
    ({"difficulty": 1, "resources": []}, "exactly one"),
    ({"difficulty": 1, "resources": ["a", "b"]}, "exactly one"),
    ({"difficulty": 1, "resources": "a"}, "list"),
    ({"difficulty": 1, "resources": [3]}, "string"),
    ({"difficulty": 1, "resources": ["../x"]}, "plain file name"),
    ({"difficulty": 1, "resources": ["/etc/passwd"]}, "plain file name"),
    ({"difficulty": 1, "resources": ["a\\b"]}, "plain file name"),
    ({"difficulty": 1, "resources": [".."]}, "not a file name"),
    ({"difficulty": 1, "resources": [""]}, "not a file name"),
])
def test_bad_resources(raw: object, words: str) -> None:
    with pytest.raises(InvalidParamsError, match=words):
        parse_task_params(raw, 2)


def test_check_helpers_return_value() -> None:
    assert check_difficulty(17) == 17
    assert check_file_name("x", "a.zip") == "a.zip"


def test_read_input_file(tmp_path: Path) -> None:
    (tmp_path / "ok.txt").write_bytes("zażółć\r\n".encode())
    assert read_input_file(tmp_path, "ok.txt") == "zażółć\r\n"
    (tmp_path / "latin.txt").write_bytes(b"caf\xe9")
    (tmp_path / "dir").mkdir()
    (tmp_path / "big.txt").write_bytes(b"x" * 11)
    os.symlink("/etc/hostname", tmp_path / "link")
    for name, words in [("latin.txt", "not UTF-8"), ("dir", "a directory"), ("missing", "is not in"),
                        ("link", "not a regular file"), ("big.txt", "limit is 10"), ("../ok.txt", "plain")]:
        with pytest.raises(InvalidParamsError, match=words):
            read_input_file(tmp_path, name, max_bytes=10)
