"""Helpers shared by the tutorial_app tests: task dirs, snapshots, forged results."""
from __future__ import annotations

import asyncio
import hashlib
import sys
import threading
import zipfile
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import psutil
import engine
from golem_task_api.client import TaskApiService
from golem_task_api.testutils import InlineTaskApiService, ServiceFactory, SubprocessTaskApiService

from tutorial_app.provider import ProviderHandler, ProviderLifecycle
from tutorial_app.result import parse_result
from tutorial_app.requestor import RequestorHandler
from tutorial_app.store import DB_NAME, TaskStore

T = TypeVar("T")

INPUT_TEXT = "Golem tutorial input, zażółć 🦀\n"
TASK_DIRS = ("task_inputs", "subtask_inputs", "task_outputs", "subtask_outputs")


def make_task_dir(work_dir: Path, task_id: str, text: str = INPUT_TEXT, name: str = "input.txt") -> Path:
    """Lay out a requestor task dir as the node does, with one input file."""
    task_dir = work_dir / task_id
    for sub in TASK_DIRS:
        (task_dir / sub).mkdir(parents=True, exist_ok=True)
    (task_dir / "task_inputs" / name).write_text(text, encoding="utf-8")
    return task_dir


def snapshot(task_dir: Path) -> tuple[object, ...]:
    """Everything observable of a task dir: files with digests, and the store's rows."""
    files = {}
    for path in sorted(task_dir.rglob("*")):
        if path.name.startswith(DB_NAME):
            continue
        rel = str(path.relative_to(task_dir))
        files[rel] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
    rows: object = None
    if (task_dir / DB_NAME).exists():
        store = TaskStore.open(task_dir)
        rows = (store.task(), store.parts(), store.subtasks())
    return files, rows


def write_result(task_dir: Path, subtask_id: str, members: dict[str, bytes] | bytes) -> Path:
    """Place a provider's result for ``subtask_id`` where Verify looks (raw bytes or a ZIP)."""
    out_dir = task_dir / "subtask_outputs" / subtask_id
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{subtask_id}.zip"
    if isinstance(members, bytes):
        path.write_bytes(members)
    else:
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, data in members.items():
                zf.writestr(name, data)
    return path


def subtask_input_text(task_dir: Path, subtask_id: str) -> str:
    """The text the requestor gave ``subtask_id`` to hash."""
    with zipfile.ZipFile(task_dir / "subtask_inputs" / f"{subtask_id}.zip") as zf:
        (name,) = zf.namelist()
        assert name == subtask_id
        return zf.read(name).decode("utf-8")


def sha256_hex(text: str) -> str:
    """The PoW digest of a text, computed here independently of the engine."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def solve(text: str, difficulty: int) -> tuple[str, int]:
    """The seed's sequential search, independent of the engine (small difficulties only)."""
    target = 2 ** (256 - difficulty)
    nonce = 0
    while True:
        digest = sha256_hex(text + str(nonce))
        if int(digest, 16) < target:
            return digest, nonce
        nonce += 1


def miss(text: str, difficulty: int) -> tuple[str, int]:
    """A nonce with a correct digest that misses the target."""
    target = 2 ** (256 - difficulty)
    nonce = 0
    while int(sha256_hex(text + str(nonce)), 16) < target:
        nonce += 1
    return sha256_hex(text + str(nonce)), nonce


# -- services: the app's handlers in a child process, or the real entrypoint --

MODES = ("inline", "subprocess")


def entrypoint_argv(work_dir: Path) -> list[str]:
    """The command a node runs, up to the role and port."""
    return [sys.executable, "-m", "tutorial_app.entrypoint", "--work-dir", str(work_dir)]


def requestor_factory(mode: str) -> ServiceFactory:
    """Start the requestor app: inline handlers or the entrypoint as a subprocess."""
    if mode == "inline":
        return lambda d: InlineTaskApiService(d, requestor_handler=RequestorHandler())
    return lambda d: SubprocessTaskApiService(d, entrypoint_argv(d))


def provider_factory(mode: str) -> ServiceFactory:
    """Start a provider app: inline handlers (with their pool lifecycle) or the entrypoint."""
    if mode == "inline":
        def inline(d: Path) -> TaskApiService:
            lifecycle = ProviderLifecycle()
            return InlineTaskApiService(
                d, provider_handler=ProviderHandler(lifecycle), provider_lifecycle_handler=lifecycle)
        return inline
    return lambda d: SubprocessTaskApiService(d, entrypoint_argv(d))


class LoopThread:
    """An event loop in a thread, so one server and client can serve many sync tests."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        """Run ``coro`` on the loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        """Stop the loop and its thread."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


def children_now() -> set[int]:
    """The pids of this process's live descendants."""
    alive = set()
    for p in psutil.Process().children(recursive=True):
        try:
            if p.status() != psutil.STATUS_ZOMBIE:
                alive.add(p.pid)
        except psutil.Error:
            pass
    return alive


def check_out_dir(out_dir: Path, difficulty: int, expected: int) -> None:
    """Every result in the out dir verifies against the input written beside it."""
    results = sorted((out_dir / "results").glob("*.zip"))
    assert len(results) == expected
    for result in results:
        subtask_id = result.stem
        with zipfile.ZipFile(result) as zf:
            (member,) = zf.namelist()
            assert member == subtask_id
            digest, nonce = parse_result(zf.read(member).decode())
        text = (out_dir / "inputs" / f"{subtask_id}.txt").read_text(encoding="utf-8")
        engine.verify(text, difficulty, digest, nonce)
