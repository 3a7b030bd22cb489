"""The requestor side of the app: task state, subtask inputs, verification.

Each RPC is one store transaction (see `tutorial_app.store`), run in a
thread so the event loop keeps serving. A rejected call raises before its
transaction commits, so it changes nothing:

- bad params or names: `ValueError` (INVALID_ARGUMENT);
- a task never created, an unknown subtask id: `NotFoundError`;
- CreateTask again with other params, a subtask id already handed out to
  another node: `AlreadyExistsError`.

Retries are safe. A node that lost a reply calls again with the same
arguments and gets the same answer: CreateTask with the same params, and
NextSubtask with the same subtask id from the same node (the node-chosen
subtask id is the idempotency key; the input ZIP is written again if it is
gone).

Crash consistency: every file effect is ordered against its transaction's
commit so that a kill at any instant leaves a state a restart recovers
from. Files are created before the commit (a subtask's input ZIP, a
verified result in task_outputs) and deleted after it (results of
discarded or aborted subtasks). What a killed call can leave behind, temp
files, inputs of subtasks never committed, results of subtasks not
verified, is swept by the first mutating call of each process on the task
(`_sweep`), under the store's write lock.

A result that cannot be accepted is not an error but a FAILURE verdict with
a reason; its part is computable again. Verifying a subtask that was
discarded or aborted (or belongs to an aborted task) answers FAILURE with a
reason and changes nothing, so a late or repeated Verify from the node is
always safe. Verifying an already verified subtask answers SUCCESS again.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import re
import secrets
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import engine
from engine.layout import one_block_salt_length
import golem_task_api as api
from golem_task_api.enums import VerifyResult
from golem_task_api.errors import AlreadyExistsError, FailedPreconditionError, NotFoundError

from tutorial_app import meta
from tutorial_app.archive import read_file_bounded, read_text_zip, write_text_zip
from tutorial_app.files import write_atomically
from tutorial_app.params import check_file_name, parse_task_params, read_input_file
from tutorial_app.result import parse_result
from tutorial_app.store import (
    Assignment, DuplicateSubtaskError, Outcome, StoreError, TaskExistsError,
    TaskNotCreatedError, TaskStore, UnknownSubtaskError, Verdict, crash_point,
)

log = logging.getLogger(__name__)

REQUESTOR_BENCHMARK_SECONDS = 0.5
"""How long the requestor's benchmark hashes (one core: it only verifies)."""

_OUTCOMES = {
    Outcome.SUCCESS: VerifyResult.SUCCESS,
    Outcome.FAILURE: VerifyResult.FAILURE,
    Outcome.AWAITING_DATA: VerifyResult.AWAITING_DATA,
}


class RequestorHandler(api.RequestorAppHandler):
    """The requestor app: splits a task into salted parts and verifies their proofs."""

    async def create_task(
        self, task_work_dir: Path, max_subtasks_count: int, task_params: dict[str, Any],
    ) -> api.structs.Task:
        """Validate the params and input file, then store the task with one salt per part."""
        return await asyncio.to_thread(create_task, task_work_dir, max_subtasks_count, task_params)

    async def next_subtask(
        self, task_work_dir: Path, subtask_id: str, opaque_node_id: str,
    ) -> api.structs.Subtask | None:
        """Hand the lowest pending part to ``subtask_id``; None when no part is pending."""
        return await asyncio.to_thread(next_subtask, task_work_dir, subtask_id, opaque_node_id)

    async def verify(
        self, task_work_dir: Path, subtask_id: str,
    ) -> tuple[VerifyResult, str | None]:
        """Check the result in ``subtask_outputs/{subtask_id}/`` against our own input copy."""
        return await asyncio.to_thread(verify, task_work_dir, subtask_id)

    async def discard_subtasks(self, task_work_dir: Path, subtask_ids: list[str]) -> list[str]:
        """Discard results: their parts are computed again; returns the ids discarded."""
        return await asyncio.to_thread(discard_subtasks, task_work_dir, subtask_ids)

    async def has_pending_subtasks(self, task_work_dir: Path) -> bool:
        """True iff NextSubtask would now hand out a part."""
        return await asyncio.to_thread(has_pending_subtasks, task_work_dir)

    async def abort_task(self, task_work_dir: Path) -> None:
        """Stop handing out parts; verified results stay in task_outputs."""
        await asyncio.to_thread(abort_task, task_work_dir)

    async def abort_subtask(self, task_work_dir: Path, subtask_id: str) -> None:
        """The subtask will not come back: its part is computable again."""
        await asyncio.to_thread(abort_subtask, task_work_dir, subtask_id)

    async def run_benchmark(self, work_dir: Path) -> float:
        """Score this machine's verification speed (one core)."""
        score = await api.threading.Executor.run(
            engine.benchmark, REQUESTOR_BENCHMARK_SECONDS, workers=1)
        if score is None:
            raise FailedPreconditionError("benchmark not run (the requestor is shutting down)")
        return score


def shaped_salt(input_text: str) -> str:
    """A part's random hex salt, long enough that input + salt + any nonce up to 10**12
    needs one final SHA-256 block: about twice the providers' speed on some inputs."""
    length = one_block_salt_length(len(input_text.encode("utf-8")), 2 * meta.SALT_BYTES)
    return secrets.token_hex((length + 1) // 2)[:length]


def create_task(task_work_dir: Path, max_subtasks_count: int, task_params: Any) -> api.structs.Task:
    """CreateTask, synchronously."""
    params = parse_task_params(task_params, max_subtasks_count)
    input_text = read_input_file(task_work_dir / api.constants.TASK_INPUTS_DIR, params.resource)
    salts = [shaped_salt(input_text) for _ in range(params.subtasks_count)]
    # What makes two CreateTask calls the same task: a retry must match it.
    request = json.dumps({
        **dataclasses.asdict(params),
        "input_sha256": hashlib.sha256(input_text.encode("utf-8")).hexdigest(),
    }, sort_keys=True)
    with _api_errors():
        TaskStore.create(
            task_work_dir, difficulty=params.difficulty, resource=params.resource,
            input_text=input_text, salts=salts, request=request)
    log.info("task %s: %d parts at difficulty %d from %s", task_work_dir.name,
             params.subtasks_count, params.difficulty, params.resource)
    return api.structs.Task(
        env_id=api.envs.DOCKER_CPU_ENV_ID,
        prerequisites=meta.prerequisites(),
        inf_requirements=api.structs.Infrastructure(min_memory_mib=meta.MIN_MEMORY_MIB),
    )


def next_subtask(task_work_dir: Path, subtask_id: str, opaque_node_id: str) -> api.structs.Subtask | None:
    """NextSubtask, synchronously: writes ``subtask_inputs/{subtask_id}.zip``."""
    check_file_name("subtask id", subtask_id)
    zip_name = f"{subtask_id}.zip"
    inputs_dir = task_work_dir / api.constants.SUBTASK_INPUTS_DIR

    def write_input(assignment: Assignment) -> None:
        target = inputs_dir / zip_name
        if assignment.retry and target.is_file():
            return
        inputs_dir.mkdir(exist_ok=True)
        crash_point("input zip: before write")
        write_text_zip(target, subtask_id, assignment.input_text)
        crash_point("input zip: written")

    with _api_errors():
        assignment = _store(task_work_dir).assign(subtask_id, opaque_node_id, prepare=write_input)
    if assignment is None:
        log.info("task %s: no part pending for subtask %s", task_work_dir.name, subtask_id)
        return None
    log.info("task %s: part %d -> subtask %s (node %s)", task_work_dir.name,
             assignment.part, subtask_id, opaque_node_id)
    return api.structs.Subtask(
        params={"difficulty": assignment.difficulty, "resources": [zip_name]},
        resources=[zip_name],
    )


def verify(task_work_dir: Path, subtask_id: str) -> tuple[VerifyResult, str | None]:
    """Verify, synchronously."""
    check_file_name("subtask id", subtask_id)
    outputs_dir = task_work_dir / api.constants.SUBTASK_OUTPUTS_DIR / subtask_id
    merged = task_work_dir / api.constants.TASK_OUTPUTS_DIR / f"{subtask_id}.zip"
    verified: list[bytes] = []

    def judge(assignment: Assignment) -> Verdict:
        result_file = _find_result(outputs_dir, subtask_id)
        if isinstance(result_file, Verdict):
            return result_file
        try:
            # Read once: the bytes checked are the bytes merged.
            data = read_file_bounded(result_file, meta.MAX_RESULT_FILE_BYTES)
            member = read_text_zip(data, meta.MAX_RESULT_BYTES, name=subtask_id, label=result_file.name)
            digest, nonce = parse_result(member.text)
            engine.verify(assignment.input_text, assignment.difficulty, digest, nonce)
        except ValueError as exc:  # ArchiveError, ResultFormatError and engine's verdicts
            return Verdict(Outcome.FAILURE, f"rejected {result_file.name}: {exc}")
        verified.append(data)
        return Verdict(Outcome.SUCCESS)

    def merge(_: Assignment) -> None:
        merged.parent.mkdir(exist_ok=True)
        # The temp file in the task dir: a kill mid-write leaves nothing in task_outputs/.
        write_atomically(merged, verified[0], temp_dir=task_work_dir,
                         before_replace=lambda: crash_point("merge: temp written"))
        crash_point("merge: replaced")

    with _api_errors():
        verdict = _store(task_work_dir).settle(subtask_id, judge, on_success=merge)
    if verdict.outcome is Outcome.FAILURE:
        # After the commit: a Verify killed after merging may have left this result.
        _unmerge(task_work_dir)(subtask_id)
    log.info("task %s: subtask %s verified: %s%s", task_work_dir.name, subtask_id,
             verdict.outcome.value, f" ({verdict.reason})" if verdict.reason else "")
    return _OUTCOMES[verdict.outcome], verdict.reason


def discard_subtasks(task_work_dir: Path, subtask_ids: list[str]) -> list[str]:
    """DiscardSubtasks, synchronously: also removes the results from task_outputs."""
    for sid in subtask_ids:
        check_file_name("subtask id", sid)
    with _api_errors():
        discarded = _store(task_work_dir).discard(subtask_ids, on_discard=_unmerge(task_work_dir))
    log.info("task %s: discarded %s", task_work_dir.name, discarded)
    return discarded


def has_pending_subtasks(task_work_dir: Path) -> bool:
    """HasPendingSubtasks, synchronously."""
    with _api_errors():
        # A read: no sweep (it needs the write lock).
        return TaskStore.open(task_work_dir).has_pending()


def abort_task(task_work_dir: Path) -> None:
    """AbortTask, synchronously: results of the aborted subtasks leave task_outputs."""
    with _api_errors():
        aborted = _store(task_work_dir).abort_task(on_abort=_unmerge(task_work_dir))
    log.info("task %s: aborted (subtasks %s)", task_work_dir.name, aborted)


def abort_subtask(task_work_dir: Path, subtask_id: str) -> None:
    """AbortSubtask, synchronously."""
    check_file_name("subtask id", subtask_id)
    with _api_errors():
        changed = _store(task_work_dir).abort_subtask(subtask_id, on_abort=_unmerge(task_work_dir))
    log.info("task %s: subtask %s aborted%s", task_work_dir.name, subtask_id,
             "" if changed else " (it was not in progress; nothing changed)")


_swept: set[str] = set()
_swept_lock = threading.Lock()

# Temp files of our atomic writes (".<name>.<random>.tmp") and of the old
# store (".tutorial_app.sqlite3.<uuid>.tmp" with its -wal/-shm).
_TEMP_NAME = re.compile(r"\..+\.tmp(-wal|-shm|-journal)?")


def _store(task_work_dir: Path) -> TaskStore:
    """The task's store, swept of what killed calls left once per process (a restart)."""
    store = TaskStore.open(task_work_dir)
    key = os.fspath(task_work_dir)
    with _swept_lock:
        if key in _swept:
            return store
    store.recover(_sweep(Path(key)))
    with _swept_lock:
        _swept.add(key)
    return store


def _forget_swept() -> None:
    """Sweep again on the next call, as a restarted process would (for tests)."""
    with _swept_lock:
        _swept.clear()


def _sweep(task_work_dir: Path) -> Callable[[set[str], set[str]], None]:
    """Remove what killed calls left: our temp files, inputs of subtasks never
    committed, results in task_outputs of subtasks not verified."""
    inputs = task_work_dir / api.constants.SUBTASK_INPUTS_DIR
    outputs = task_work_dir / api.constants.TASK_OUTPUTS_DIR

    def sweep(known: set[str], verified: set[str]) -> None:
        removed = []
        for directory in (task_work_dir, inputs, outputs):
            for entry in _files(directory):
                name = entry.name
                stem = name[:-4] if name.endswith(".zip") else None
                if (_TEMP_NAME.fullmatch(name)
                        or (directory == inputs and stem is not None and stem not in known)
                        or (directory == outputs and stem in known and stem not in verified)):
                    _remove(Path(entry.path))
                    removed.append(f"{directory.name}/{name}")
        if removed:
            log.info("task %s: removed what interrupted calls left: %s",
                     task_work_dir.name, ", ".join(removed[:20]))

    return sweep


def _files(directory: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(directory) as entries:
            return [e for e in entries if e.is_file(follow_symlinks=False)]
    except (FileNotFoundError, NotADirectoryError):
        return []


def _remove(path: Path) -> None:
    """Unlink ``path`` if there; after a commit, a failure is only logged (the next sweep
    removes the file, and the call itself did succeed)."""
    crash_point(f"unlink {path.parent.name}: before")
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        log.warning("cannot remove %s: %s", path.name, exc.strerror or exc)
    crash_point(f"unlink {path.parent.name}: after")


def _unmerge(task_work_dir: Path) -> Callable[[str], None]:
    """Take a subtask's result out of task_outputs (there only if verified, or merged by a
    Verify that crashed before its commit); the store calls it after the commit."""
    outputs = task_work_dir / api.constants.TASK_OUTPUTS_DIR

    def remove(subtask_id: str) -> None:
        _remove(outputs / f"{subtask_id}.zip")

    return remove


def _find_result(outputs_dir: Path, subtask_id: str) -> Path | Verdict:
    """The result file of a subtask, or the verdict when there is none to read.

    No file yet is AWAITING_DATA; files that cannot be the result are a FAILURE.

    The seed's providers name it ``{subtask_id}.zip``; a provider naming it
    otherwise is accepted when it is the only file there.
    """
    expected = outputs_dir / f"{subtask_id}.zip"
    if expected.is_file() and not expected.is_symlink():
        return expected
    try:
        files = sorted(outputs_dir.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        files = []
    where = f"subtask_outputs/{subtask_id}/"
    if not files:
        return Verdict(Outcome.AWAITING_DATA, f"no result file in {where} yet")
    if len(files) > 1:
        return Verdict(Outcome.FAILURE, f"{where} holds {len(files)} files and none is"
                       f" {subtask_id}.zip; expected one result file")
    only = files[0]
    if only.is_symlink() or not only.is_file():
        return Verdict(Outcome.FAILURE, f"{where}{only.name} is not a regular file")
    return only



@contextlib.contextmanager
def _api_errors() -> Iterator[None]:
    """Translate the store's errors into the Task API's (mapped to gRPC statuses once)."""
    try:
        yield
    except (TaskNotCreatedError, UnknownSubtaskError) as exc:
        raise NotFoundError(str(exc)) from exc
    except (TaskExistsError, DuplicateSubtaskError) as exc:
        raise AlreadyExistsError(str(exc)) from exc
    except StoreError as exc:
        raise FailedPreconditionError(str(exc)) from exc
