"""Validation of task params and input files."""
from __future__ import annotations

import errno
import os
import socket
from pathlib import Path

import pytest

from file_races import swap_at_open, to_fifo, to_symlink
from tutorial_app import files, meta, params
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
    (-1, "out of range"), (257, "out of range"), ("3", "integer in \\[0, 256\\], not a string"),
    (3.5, "integer in \\[0, 256\\], not a fraction 3.5"), (True, "integer in \\[0, 256\\], not a boolean"),
    (None, "not null"), (float("nan"), "not a non-finite number nan"), (float("inf"), "non-finite"),
    (256.5, "not a fraction"), (257.0, "out of range"), ([8], "not a list"), ({"v": 8}, "not an object"),
])
def test_bad_difficulty(difficulty: object, words: str) -> None:
    with pytest.raises(InvalidParamsError, match=words):
        parse_task_params({"difficulty": difficulty, "resources": ["a"]}, 2)


@pytest.mark.parametrize("sent, meant", [(16.0, 16), (0.0, 0), (256.0, 256), (16, 16)])
def test_integral_float_difficulty_is_accepted(sent: float, meant: int) -> None:
    # Published requestors send the difficulty as a JSON float.
    task = parse_task_params({"difficulty": sent, "resources": ["a"]}, 2)
    assert task.difficulty == meant and type(task.difficulty) is int


def test_difficulty_check_is_the_engines() -> None:
    # One home for the check: a change there is a change here.
    import engine.pow
    assert params.MAX_DIFFICULTY == engine.pow.MAX_DIFFICULTY
    with pytest.raises(ValueError) as engines:
        engine.pow.parse_difficulty(12.5)
    with pytest.raises(InvalidParamsError) as ours:
        check_difficulty(12.5)
    assert str(ours.value) == str(engines.value)


def test_messages_stay_short_for_deep_or_huge_values() -> None:
    deep: list[object] = []
    for _ in range(100_000):
        deep = [deep]
    for field in ("difficulty", "subtasks_count", "resources"):
        for value in (deep, "x" * 1_000_000, 10**10_000):
            with pytest.raises(InvalidParamsError) as info:
                parse_task_params({"difficulty": 1, "resources": ["a"], field: value}, 2)
            assert len(str(info.value)) < 300
    with pytest.raises(InvalidParamsError) as info:
        parse_task_params({"difficulty": 1, "resources": [deep]}, 2)
    assert len(str(info.value)) < 300


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
    os.mkfifo(tmp_path / "fifo")
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(tmp_path / "sock"))
    for name, words in [("latin.txt", "not UTF-8"), ("dir", "is a directory"), ("missing", "is not in"),
                        ("link", "is a symlink"), ("big.txt", "limit is 10"), ("../ok.txt", "plain"),
                        ("fifo", "is a FIFO"), ("sock", "is a socket")]:
        with pytest.raises(InvalidParamsError, match=words) as info:
            read_input_file(tmp_path, name, max_bytes=10)
        assert str(tmp_path) not in str(info.value)  # no server paths in messages


@pytest.mark.parametrize("swap", ["symlink", "FIFO"])
@pytest.mark.timeout(10)
def test_input_swapped_after_any_check_never_leaks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, swap: str
) -> None:
    """Finding 9: a file replaced between a check and the open is refused, not read."""
    secret = tmp_path / "secret"
    secret.write_text("outside the task dir")
    inputs = tmp_path / "task_inputs"
    inputs.mkdir()
    target = inputs / "input.txt"
    target.write_text("the input")
    swapper = to_symlink(secret) if swap == "symlink" else to_fifo
    swapped = swap_at_open(monkeypatch, target, swapper, params, files)
    with pytest.raises(InvalidParamsError, match=f"is a {swap}, not a regular file"):
        read_input_file(inputs, "input.txt")
    assert swapped == [target]


def test_unreadable_input_is_a_params_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "locked.txt"
    path.write_text("x")
    real_open = os.open

    def denied(name: object, *args: object, **kwargs: object) -> int:
        # chmod 0 would not stop root, so the refusal is simulated where it happens.
        if Path(name) == path:  # type: ignore[arg-type]
            raise PermissionError(errno.EACCES, "Permission denied", str(name))
        return real_open(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(InvalidParamsError, match="cannot be read") as info:
        read_input_file(tmp_path, "locked.txt")
    assert str(tmp_path) not in str(info.value)


def test_file_names_follow_the_runtimes_component_rule() -> None:
    from golem_task_api.dirutils import is_safe_path_component
    for name in ["a", "a.zip", "..", ".", "", "a/b", "a\\b", "a\0b", "x" * 200, "ż" * 100]:
        try:
            check_file_name("x", name)
            accepted = True
        except InvalidParamsError:
            accepted = False
        if accepted:
            assert is_safe_path_component(name), name
    with pytest.raises(InvalidParamsError, match="201 bytes; the limit is 200"):
        check_file_name("x", "x" * 201)
