"""task_outputs stays exactly the verified results across crashes inside Verify."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from golem_task_api.enums import VerifyResult

from app_testing import make_task_dir, solve, subtask_input_text, write_result
from tutorial_app import requestor

DIFFICULTY = 4
PARAMS = {"difficulty": DIFFICULTY, "resources": ["input.txt"]}
HERE = Path(__file__).parent


class Killed(BaseException):
    """Stands in for a SIGKILL: nothing after it in the call runs."""


@pytest.fixture
def task_dir(tmp_path: Path) -> Path:
    task_dir = make_task_dir(tmp_path, "task-1")
    requestor.create_task(task_dir, 2, dict(PARAMS))
    return task_dir


def _good_result(task_dir: Path, sid: str) -> None:
    digest, nonce = solve(subtask_input_text(task_dir, sid), DIFFICULTY)
    write_result(task_dir, sid, {sid: f"{digest} {nonce}".encode()})


def _outputs(task_dir: Path) -> list[str]:
    return sorted(p.name for p in (task_dir / "task_outputs").iterdir())


def _crash_after_merge(monkeypatch: pytest.MonkeyPatch, task_dir: Path, sid: str) -> None:
    """Verify ``sid`` but die after its result reached task_outputs, before the commit."""
    real = requestor.write_atomically

    def write_then_die(target: Path, data: bytes, **kwargs: object) -> None:
        real(target, data, **kwargs)
        raise Killed

    monkeypatch.setattr(requestor, "write_atomically", write_then_die)
    with pytest.raises(Killed):
        requestor.verify(task_dir, sid)
    monkeypatch.setattr(requestor, "write_atomically", real)
    assert f"{sid}.zip" in _outputs(task_dir)  # on disk, but not committed


def _finish(task_dir: Path, sids: list[str]) -> None:
    for sid in sids:
        assert requestor.next_subtask(task_dir, sid, "n") is not None
        _good_result(task_dir, sid)
        assert requestor.verify(task_dir, sid) == (VerifyResult.SUCCESS, None)


def test_abort_subtask_after_crash_in_verify_leaves_no_stale_result(
    task_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    requestor.next_subtask(task_dir, "a", "n")
    _good_result(task_dir, "a")
    _crash_after_merge(monkeypatch, task_dir, "a")
    # The restarted node gives up on "a" instead of verifying it again.
    requestor.abort_subtask(task_dir, "a")
    _finish(task_dir, ["a2", "b"])
    assert _outputs(task_dir) == ["a2.zip", "b.zip"]


def test_failed_reverify_after_crash_leaves_no_stale_result(
    task_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    requestor.next_subtask(task_dir, "a", "n")
    _good_result(task_dir, "a")
    _crash_after_merge(monkeypatch, task_dir, "a")
    # The result the node offers on the retry is a different, bad one.
    write_result(task_dir, "a", {"a": b"0" * 64 + b" 1"})
    assert requestor.verify(task_dir, "a")[0] is VerifyResult.FAILURE
    assert _outputs(task_dir) == []
    _finish(task_dir, ["a2", "b"])
    assert _outputs(task_dir) == ["a2.zip", "b.zip"]


def test_abort_task_after_crash_in_verify_keeps_only_verified(
    task_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    _finish(task_dir, ["a"])
    requestor.next_subtask(task_dir, "b", "n")
    _good_result(task_dir, "b")
    _crash_after_merge(monkeypatch, task_dir, "b")
    requestor.abort_task(task_dir)
    assert _outputs(task_dir) == ["a.zip"]


_KILL_IN_MERGE = """
import os, signal, sys
from pathlib import Path
from tutorial_app import requestor
# The result's bytes are written, not yet renamed into place: die there.
requestor.os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)
requestor.verify(Path(sys.argv[1]), sys.argv[2])
"""


@pytest.mark.timeout(30)
def test_sigkill_while_writing_the_result_leaves_nothing_else_in_task_outputs(task_dir: Path) -> None:
    requestor.next_subtask(task_dir, "a", "n")
    _good_result(task_dir, "a")
    done = subprocess.run([sys.executable, "-c", _KILL_IN_MERGE, str(task_dir), "a"],
                          cwd=HERE, capture_output=True, timeout=20)
    assert done.returncode == -9, done.stderr
    # Restarted: the node verifies again and carries on.
    assert requestor.verify(task_dir, "a") == (VerifyResult.SUCCESS, None)
    _finish(task_dir, ["b"])
    assert _outputs(task_dir) == ["a.zip", "b.zip"]
