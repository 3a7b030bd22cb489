"""Requestor semantics, calling the handler's synchronous functions directly."""
from __future__ import annotations

import threading
import zipfile
from pathlib import Path

import pytest
from golem_task_api.enums import VerifyResult
from golem_task_api.errors import AlreadyExistsError, NotFoundError

from app_testing import (
    INPUT_TEXT, make_task_dir, miss, snapshot, solve, subtask_input_text, write_result,
)
from tutorial_app import meta, requestor
from tutorial_app.store import DB_NAME

DIFFICULTY = 6
PARAMS = {"difficulty": DIFFICULTY, "resources": ["input.txt"]}


@pytest.fixture
def task_dir(tmp_path: Path) -> Path:
    task_dir = make_task_dir(tmp_path, "task-1")
    requestor.create_task(task_dir, 3, dict(PARAMS))
    return task_dir


def _good_result(task_dir: Path, sid: str) -> Path:
    digest, nonce = solve(subtask_input_text(task_dir, sid), DIFFICULTY)
    return write_result(task_dir, sid, {sid: f"{digest} {nonce}".encode()})


def test_create_task_answers_env_image_and_memory(tmp_path: Path) -> None:
    task = requestor.create_task(make_task_dir(tmp_path, "t"), 2, dict(PARAMS))
    assert task.env_id == "docker_cpu"
    assert task.prerequisites == {"image": "tutorial-app", "tag": meta.VERSION}
    assert task.inf_requirements.min_memory_mib == meta.MIN_MEMORY_MIB


def test_each_part_is_input_plus_its_own_salt(task_dir: Path) -> None:
    texts = []
    for sid in ("a", "b", "c"):
        subtask = requestor.next_subtask(task_dir, sid, "node-1")
        assert subtask is not None
        assert subtask.params == {"difficulty": DIFFICULTY, "resources": [f"{sid}.zip"]}
        assert subtask.resources == [f"{sid}.zip"]
        texts.append(subtask_input_text(task_dir, sid))
    assert all(t.startswith(INPUT_TEXT) and len(t) > len(INPUT_TEXT) for t in texts)
    assert len({t[len(INPUT_TEXT):] for t in texts}) == 3
    assert requestor.next_subtask(task_dir, "d", "node-1") is None
    assert not (task_dir / "subtask_inputs" / "d.zip").exists()
    assert not requestor.has_pending_subtasks(task_dir)


def test_whole_task_leaves_exactly_the_results_in_task_outputs(task_dir: Path) -> None:
    sids = ["a", "b", "c"]
    results = {}
    for sid in sids:
        requestor.next_subtask(task_dir, sid, "n")
        results[sid] = _good_result(task_dir, sid).read_bytes()
        assert requestor.verify(task_dir, sid) == (VerifyResult.SUCCESS, None)
    outputs = task_dir / "task_outputs"
    assert {p.name: p.read_bytes() for p in outputs.iterdir()} == {f"{s}.zip": results[s] for s in sids}
    assert not requestor.has_pending_subtasks(task_dir)
    # A repeated Verify answers the same and changes nothing.
    before = snapshot(task_dir)
    assert requestor.verify(task_dir, "a") == (VerifyResult.SUCCESS, None)
    assert snapshot(task_dir) == before


def test_result_under_another_name_is_accepted_when_alone(task_dir: Path) -> None:
    requestor.next_subtask(task_dir, "a", "n")
    path = _good_result(task_dir, "a")
    path.rename(path.with_name("result.zip"))
    assert requestor.verify(task_dir, "a") == (VerifyResult.SUCCESS, None)
    assert [p.name for p in (task_dir / "task_outputs").iterdir()] == ["a.zip"]


def test_verify_before_result_awaits_data_and_changes_nothing(task_dir: Path) -> None:
    requestor.next_subtask(task_dir, "a", "n")
    before = snapshot(task_dir)
    result, reason = requestor.verify(task_dir, "a")
    assert result is VerifyResult.AWAITING_DATA and "no result file" in reason
    assert snapshot(task_dir) == before


def _bad_results(text: str) -> dict[str, tuple[bytes | dict[str, bytes], str]]:
    good_digest, good_nonce = solve(text, DIFFICULTY)
    missed_digest, missed_nonce = miss(text, DIFFICULTY)
    forged = "0" * 64
    return {
        "not a zip": (b"definitely not a zip", "not a ZIP"),
        "empty zip": ({}, "no file"),
        "two members": ({"a": b"1", "b": b"2"}, "2 files"),
        "huge unpacked": ({"a": b"0" * (meta.MAX_RESULT_BYTES + 1)}, "limit"),
        "not utf-8": ({"a": b"\xff\xfe"}, "not UTF-8"),
        "not digest nonce": ({"a": b"hello world"}, "is not '<64 hex digits>"),
        "forged digest": ({"a": f"{forged} {good_nonce}".encode()}, "digest"),
        "misses target": ({"a": f"{missed_digest} {missed_nonce}".encode()}, "target"),
        "right digest wrong nonce": ({"a": f"{good_digest} {good_nonce + 1}".encode()}, "digest"),
    }


@pytest.mark.parametrize("case", list(_bad_results("x")))
def test_bad_result_fails_with_reason_and_part_is_computed_again(task_dir: Path, case: str) -> None:
    requestor.next_subtask(task_dir, "a", "n")
    text = subtask_input_text(task_dir, "a")
    content, words = _bad_results(text)[case]
    write_result(task_dir, "a", content)
    result, reason = requestor.verify(task_dir, "a")
    assert result is VerifyResult.FAILURE
    assert words.lower() in reason.lower()
    assert list((task_dir / "task_outputs").iterdir()) == []
    # The part is computable again, with the same text to hash.
    assert requestor.has_pending_subtasks(task_dir)
    requestor.next_subtask(task_dir, "a2", "n")
    assert subtask_input_text(task_dir, "a2") == text
    # The failed subtask keeps its verdict; asking again changes nothing.
    before = snapshot(task_dir)
    again, _ = requestor.verify(task_dir, "a")
    assert again is VerifyResult.FAILURE and snapshot(task_dir) == before


def test_result_hashed_from_providers_copy_is_not_trusted(task_dir: Path) -> None:
    """The requestor recomputes from its own input, whatever the provider hashed."""
    requestor.next_subtask(task_dir, "a", "n")
    digest, nonce = solve("some other text", DIFFICULTY)
    write_result(task_dir, "a", {"a": f"{digest} {nonce}".encode()})
    assert requestor.verify(task_dir, "a")[0] is VerifyResult.FAILURE


def test_two_files_in_outputs_without_the_expected_name(task_dir: Path) -> None:
    requestor.next_subtask(task_dir, "a", "n")
    out = task_dir / "subtask_outputs" / "a"
    out.mkdir()
    (out / "x.zip").write_bytes(b"1")
    (out / "y.zip").write_bytes(b"2")
    result, reason = requestor.verify(task_dir, "a")
    assert result is VerifyResult.FAILURE and "2 files" in reason


def test_discard_all_then_one_and_recompute(task_dir: Path) -> None:
    for sid in ("a", "b", "c"):
        requestor.next_subtask(task_dir, sid, "n")
        _good_result(task_dir, sid)
        requestor.verify(task_dir, sid)
    assert requestor.discard_subtasks(task_dir, ["a", "b", "c"]) == ["a", "b", "c"]
    assert list((task_dir / "task_outputs").iterdir()) == []
    assert requestor.has_pending_subtasks(task_dir)
    new = ["d", "e", "f"]
    for sid in new:
        requestor.next_subtask(task_dir, sid, "n")
        _good_result(task_dir, sid)
        assert requestor.verify(task_dir, sid)[0] is VerifyResult.SUCCESS
    assert requestor.discard_subtasks(task_dir, ["e"]) == ["e"]
    assert sorted(p.name for p in (task_dir / "task_outputs").iterdir()) == ["d.zip", "f.zip"]
    requestor.next_subtask(task_dir, "g", "n")
    _good_result(task_dir, "g")
    assert requestor.verify(task_dir, "g")[0] is VerifyResult.SUCCESS
    assert sorted(p.name for p in (task_dir / "task_outputs").iterdir()) == ["d.zip", "f.zip", "g.zip"]
    assert not requestor.has_pending_subtasks(task_dir)


def test_result_of_discarded_subtask_fails_and_changes_nothing(task_dir: Path) -> None:
    requestor.next_subtask(task_dir, "a", "n")
    requestor.discard_subtasks(task_dir, ["a"])
    _good_result(task_dir, "a")
    before = snapshot(task_dir)
    result, reason = requestor.verify(task_dir, "a")
    assert result is VerifyResult.FAILURE and "discarded" in reason
    assert snapshot(task_dir) == before


def test_abort_subtask_makes_part_computable(task_dir: Path) -> None:
    requestor.next_subtask(task_dir, "a", "n")
    text = subtask_input_text(task_dir, "a")
    for sid in ("b", "c"):
        requestor.next_subtask(task_dir, sid, "n")
    assert not requestor.has_pending_subtasks(task_dir)
    requestor.abort_subtask(task_dir, "a")
    assert requestor.has_pending_subtasks(task_dir)
    requestor.next_subtask(task_dir, "a2", "n")
    assert subtask_input_text(task_dir, "a2") == text
    _good_result(task_dir, "a")
    assert requestor.verify(task_dir, "a")[0] is VerifyResult.FAILURE


def test_abort_task_leaves_nothing_pending(task_dir: Path) -> None:
    requestor.next_subtask(task_dir, "a", "n")
    _good_result(task_dir, "a")
    requestor.verify(task_dir, "a")
    requestor.next_subtask(task_dir, "b", "n")
    requestor.abort_task(task_dir)
    requestor.abort_task(task_dir)
    assert not requestor.has_pending_subtasks(task_dir)
    assert requestor.next_subtask(task_dir, "c", "n") is None
    _good_result(task_dir, "b")
    result, reason = requestor.verify(task_dir, "b")
    assert result is VerifyResult.FAILURE and "aborted" in reason
    assert [p.name for p in (task_dir / "task_outputs").iterdir()] == ["a.zip"]


def test_unknown_task(tmp_path: Path) -> None:
    task_dir = make_task_dir(tmp_path, "never-created")
    for call in (
        lambda: requestor.next_subtask(task_dir, "a", "n"),
        lambda: requestor.verify(task_dir, "a"),
        lambda: requestor.discard_subtasks(task_dir, ["a"]),
        lambda: requestor.has_pending_subtasks(task_dir),
        lambda: requestor.abort_task(task_dir),
        lambda: requestor.abort_subtask(task_dir, "a"),
    ):
        with pytest.raises(NotFoundError, match="no task was created"):
            call()
    assert not (task_dir / DB_NAME).exists()


def test_unknown_subtask(task_dir: Path) -> None:
    requestor.next_subtask(task_dir, "a", "n")
    before = snapshot(task_dir)
    for call in (
        lambda: requestor.verify(task_dir, "zzz"),
        lambda: requestor.discard_subtasks(task_dir, ["a", "zzz"]),
        lambda: requestor.abort_subtask(task_dir, "zzz"),
    ):
        with pytest.raises(NotFoundError, match="zzz"):
            call()
    assert snapshot(task_dir) == before


def test_repeated_subtask_id(task_dir: Path) -> None:
    requestor.next_subtask(task_dir, "a", "n")
    before = snapshot(task_dir)
    with pytest.raises(AlreadyExistsError, match="already handed out"):
        requestor.next_subtask(task_dir, "a", "n2")
    assert snapshot(task_dir) == before


def test_create_task_twice(task_dir: Path) -> None:
    """A second CreateTask for the task is refused unless it is a retry of the first
    (same params: see test_requestor_recovery)."""
    before = snapshot(task_dir)
    with pytest.raises(AlreadyExistsError):
        requestor.create_task(task_dir, 4, dict(PARAMS))
    assert snapshot(task_dir) == before


@pytest.mark.parametrize("sid", ["../x", "a/b", "..", "", "/abs", "a" * 300, "é" * 101])
def test_unsafe_subtask_id_is_invalid(task_dir: Path, sid: str) -> None:
    before = snapshot(task_dir)
    for call in (
        lambda: requestor.next_subtask(task_dir, sid, "n"),
        lambda: requestor.verify(task_dir, sid),
        lambda: requestor.discard_subtasks(task_dir, [sid]),
        lambda: requestor.abort_subtask(task_dir, sid),
    ):
        with pytest.raises(ValueError):
            call()
    assert snapshot(task_dir) == before


def _bad_resource_dir(tmp_path: Path, case: str) -> tuple[Path, dict]:
    task_dir = make_task_dir(tmp_path, "t")
    inputs = task_dir / "task_inputs"
    if case == "directory":
        (inputs / "sub").mkdir()
        return task_dir, {"difficulty": 4, "resources": ["sub"]}
    if case == "not utf-8":
        (inputs / "latin.txt").write_bytes(b"caf\xe9")
        return task_dir, {"difficulty": 4, "resources": ["latin.txt"]}
    names = {"absent": "missing.txt", "escapes": "../input.txt", "absolute": str(inputs / "input.txt")}
    return task_dir, {"difficulty": 4, "resources": [names[case]]}


@pytest.mark.parametrize("case", ["directory", "not utf-8", "absent", "escapes", "absolute"])
def test_bad_resource_creates_nothing(tmp_path: Path, case: str) -> None:
    task_dir, params = _bad_resource_dir(tmp_path, case)
    before = snapshot(task_dir)
    with pytest.raises(ValueError):
        requestor.create_task(task_dir, 2, params)
    assert snapshot(task_dir) == before and not (task_dir / DB_NAME).exists()


def test_concurrent_next_subtask_hands_each_part_once(tmp_path: Path) -> None:
    task_dir = make_task_dir(tmp_path, "t")
    requestor.create_task(task_dir, 12, {"difficulty": 1, "resources": ["input.txt"]})
    got: list[str] = []
    lock = threading.Lock()

    def node(k: int) -> None:
        for i in range(6):
            if requestor.next_subtask(task_dir, f"n{k}-{i}", f"node{k}") is not None:
                with lock:
                    got.append(subtask_input_text(task_dir, f"n{k}-{i}"))

    threads = [threading.Thread(target=node, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 12 and len(set(got)) == 12


def test_input_zip_holds_one_member_named_after_subtask(task_dir: Path) -> None:
    requestor.next_subtask(task_dir, "abc", "n")
    with zipfile.ZipFile(task_dir / "subtask_inputs" / "abc.zip") as zf:
        assert zf.namelist() == ["abc"]


def test_longest_accepted_subtask_id_works_end_to_end(task_dir: Path) -> None:
    sid = "a" * 200  # its input ZIP's temporary name is longer still
    assert requestor.next_subtask(task_dir, sid, "n") is not None
    _good_result(task_dir, sid)
    assert requestor.verify(task_dir, sid) == (VerifyResult.SUCCESS, None)
    assert (task_dir / "task_outputs" / f"{sid}.zip").is_file()
