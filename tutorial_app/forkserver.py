"""Start app servers by forking a process that has already imported the app.

A provider app server serves one request, so `tutorial-app run` starts one
per subtask. A fresh interpreter spends most of its start importing gRPC,
protobuf and the app; at low difficulty that import is most of a subtask's
cost. The fork server (``python -m tutorial_app.forkserver``) imports the
app's entrypoint once, then forks a child per server start, which runs
``tutorial_app.entrypoint.main`` with the argv it was given.

The fork server is single-threaded and runs no event loop, so forking it is
safe. It is the parent of every server it forks: it reaps them, reports
their exit codes, and signals them only while they are unreaped, so a
signal never reaches a recycled pid. Each child leads its own process
group, which the fork server kills after the child ends, so engine workers
cannot outlive their server. When its stdin closes (the node ended, however
it ended) it kills every child it still has and exits.

Protocol: JSON lines. Node to fork server::

    {"op": "start", "id": N, "argv": [...], "env": {...}, "log": PATH}
    {"op": "signal", "pid": PID, "sig": SIGNUM}

Fork server to node: ``{"op": "ready"}`` once, then
``{"op": "started", "id": N, "pid": PID}`` and ``{"op": "exit", "pid": PID, "code": C}``.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import selectors
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from golem_task_api.client import TaskApiService

log = logging.getLogger(__name__)

START_TIMEOUT = 30.0
"""How long the fork server may take to import the app and say it is ready."""
STOP_GRACE_SECONDS = 5.0
"""How long a server gets after SIGTERM before it is killed."""
READER_GRACE_SECONDS = 5.0
"""How long `ForkServer.close` waits for the end of the fork server's output once it exited."""


class ForkServerError(RuntimeError):
    """The fork server could not be started or has gone."""


@dataclass(frozen=True)
class ForkedChild:
    """A server the fork server forked: its pid, and its exit code once reaped."""

    pid: int
    exited: asyncio.Future[int]
    """Resolves to the exit code (negative: killed by that signal)."""


class ForkServer:
    """The node's handle on one fork server process; `close()` ends it and its children."""

    def __init__(self, log_path: Path | None = None) -> None:
        self.log_path = log_path
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._next_id = 0
        self._started: dict[int, asyncio.Future[ForkedChild]] = {}
        # Children not reaped yet; an entry goes when its exit is reported
        # (its ForkedChild keeps the code), so a run of many providers does
        # not grow it.
        self._exits: dict[int, asyncio.Future[int]] = {}

    async def start(self) -> None:
        """Start the fork server and wait until it has imported the app."""
        log_file = open(self.log_path, "ab") if self.log_path is not None else None
        try:
            self._process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tutorial_app.forkserver",
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=log_file,
            )
        finally:
            if log_file is not None:
                log_file.close()
        assert self._process.stdout is not None
        try:
            line = await asyncio.wait_for(self._process.stdout.readline(), START_TIMEOUT)
        except BaseException:
            await self.close()
            raise
        if json.loads(line or b"{}").get("op") != "ready":
            await self.close()
            raise ForkServerError("the fork server exited before it was ready")
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        try:
            while line := await self._process.stdout.readline():
                message = json.loads(line)
                if message["op"] == "started":
                    future = self._started.pop(message["id"])
                    child = ForkedChild(message["pid"], asyncio.get_running_loop().create_future())
                    self._exits[child.pid] = child.exited
                    if not future.done():
                        future.set_result(child)
                elif message["op"] == "exit":
                    exit_future = self._exits.pop(message["pid"], None)
                    if exit_future is not None and not exit_future.done():
                        exit_future.set_result(message["code"])
        finally:
            # The fork server is gone (or this reader is): so are its children,
            # as far as anyone waiting on them can tell.
            started, self._started = self._started, {}
            for future in started.values():
                if not future.done():
                    future.set_exception(ForkServerError("the fork server has gone"))
            exits, self._exits = self._exits, {}
            for exit_future in exits.values():
                if not exit_future.done():
                    exit_future.set_result(-signal.SIGKILL)

    def _send(self, message: dict[str, Any]) -> None:
        if self._process is None or self._process.stdin is None or self._process.returncode is not None:
            raise ForkServerError("the fork server is not running")
        self._process.stdin.write(json.dumps(message).encode() + b"\n")

    async def spawn(self, argv: Sequence[str], env: Mapping[str, str], log_path: Path | None) -> ForkedChild:
        """Fork a child running the entrypoint with ``argv``."""
        self._next_id += 1
        future: asyncio.Future[ForkedChild] = asyncio.get_running_loop().create_future()
        self._started[self._next_id] = future
        self._send({"op": "start", "id": self._next_id, "argv": list(argv), "env": dict(env),
                    "log": str(log_path) if log_path is not None else None})
        return await future

    def signal(self, pid: int, signum: int) -> None:
        """Signal a child the fork server has not reaped yet (else nothing)."""
        if pid in self._exits:
            with contextlib.suppress(ForkServerError):
                self._send({"op": "signal", "pid": pid, "sig": signum})

    async def close(self) -> None:
        """End the fork server; it kills any child still running first."""
        process = self._process
        if process is None:
            return
        if process.stdin is not None:
            process.stdin.close()
        try:
            await asyncio.wait_for(asyncio.shield(process.wait()), STOP_GRACE_SECONDS)
        except asyncio.TimeoutError:
            process.kill()
            await process.wait()
        finally:
            reader, self._reader = self._reader, None
            if reader is not None:
                await _end_reader(reader)


async def _end_reader(reader: asyncio.Task[None]) -> None:
    """Let the reader finish (the fork server exited: its output ends), or cancel it.

    Only the cancellation made here is absorbed, and a crashed reader is
    logged; the caller's own cancellation always propagates.
    """
    if not reader.done():
        # asyncio.wait neither cancels the reader on timeout nor hides the caller's cancellation.
        await asyncio.wait([reader], timeout=READER_GRACE_SECONDS)
    if not reader.done():
        reader.cancel()
        try:
            await reader
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # the caller was cancelled too
            return
    if not reader.cancelled() and reader.exception() is not None:
        log.warning("the fork server's output reader failed: %r", reader.exception())


class ForkedService(TaskApiService):
    """An app server forked by a `ForkServer`: ``entrypoint.main([*args, role, port])``."""

    def __init__(
        self,
        forkserver: ForkServer,
        args: Sequence[str],
        env: Mapping[str, str] | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.forkserver = forkserver
        self.args = list(args)
        self.env = dict(env or {})
        self.log_path = log_path
        self.pid: int | None = None
        self._child: ForkedChild | None = None

    async def start(self, command: Sequence[str] | str, port: int) -> tuple[str, int]:
        if self.pid is not None:
            raise RuntimeError("service already started")
        words = command.split() if isinstance(command, str) else list(command)
        self._child = await self.forkserver.spawn([*self.args, *words], self.env, self.log_path)
        self.pid = self._child.pid
        return "127.0.0.1", port

    @property
    def returncode(self) -> int | None:
        """The exit code once the server ended (negative: killed by that signal)."""
        if self._child is None:
            return None
        exited = self._child.exited
        return exited.result() if exited.done() else None

    def running(self) -> bool:
        return self._child is not None and not self._child.exited.done()

    async def stop(self) -> None:
        if not self.running():
            return
        assert self.pid is not None and self._child is not None
        exited = self._child.exited
        try:
            self.forkserver.signal(self.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(asyncio.shield(exited), STOP_GRACE_SECONDS)
            except asyncio.TimeoutError:
                self.forkserver.signal(self.pid, signal.SIGKILL)
                await exited
        except BaseException:
            # Cancelled mid-stop: end it anyway rather than leave it running.
            self.forkserver.signal(self.pid, signal.SIGKILL)
            raise

    async def wait_until_shutdown_complete(self) -> None:
        if self._child is not None:
            await asyncio.shield(self._child.exited)


# -- the fork server process itself --

def _serve() -> None:
    # Ctrl-C belongs to the node, which stops the servers in order.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _preload()
    # One tracker for every child's engine pool, started before any fork.
    import multiprocessing.resource_tracker
    multiprocessing.resource_tracker.ensure_running()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    out = sys.stdout.buffer
    children: set[int] = set()

    def tell(message: dict[str, Any]) -> None:
        out.write(json.dumps(message).encode() + b"\n")
        out.flush()

    tell({"op": "ready"})
    selector = selectors.DefaultSelector()
    selector.register(sys.stdin.fileno(), selectors.EVENT_READ, "stdin")
    selector.register(wake_r, selectors.EVENT_READ, "wake")
    pending = b""
    open_ = True
    while open_ or children:
        for key, _ in selector.select(timeout=1.0 if open_ else 0.1):
            if key.data == "wake":
                os.read(wake_r, 512)
            elif open_:
                chunk = os.read(sys.stdin.fileno(), 65536)
                if not chunk:
                    open_ = False
                    selector.unregister(sys.stdin.fileno())
                    for pid in children:  # the node has gone: nothing may outlive it
                        _kill_group(pid)
                    continue
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    request = json.loads(line)
                    if request["op"] == "start":
                        pid = _fork(request, [wake_r, wake_w, sys.stdin.fileno()])
                        children.add(pid)
                        tell({"op": "started", "id": request["id"], "pid": pid})
                    elif request["op"] == "signal" and request["pid"] in children:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(request["pid"], request["sig"])
        for pid in list(children):
            reaped, status = os.waitpid(pid, os.WNOHANG)
            if reaped:
                children.discard(pid)
                _kill_group(pid)  # engine workers the server left behind
                tell({"op": "exit", "pid": pid, "code": os.waitstatus_to_exitcode(status)})


def _preload() -> None:
    """Import, once, what every server's life would import again: the app, the engine
    and the pool's multiprocessing machinery, the event loop; load the native kernels."""
    import concurrent.futures.thread  # noqa: F401  (the run_in_executor pool)
    import multiprocessing.popen_spawn_posix  # noqa: F401
    import multiprocessing.sharedctypes  # noqa: F401
    import multiprocessing.synchronize  # noqa: F401

    import engine
    import engine.supervisor  # noqa: F401
    import tutorial_app.entrypoint  # noqa: F401
    engine.available_kernels()
    with contextlib.suppress(ImportError):
        import uvloop  # noqa: F401


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _fork(request: dict[str, Any], close_fds: list[int]) -> int:
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        os.setpgid(0, 0)
        signal.set_wakeup_fd(-1)
        for signum in (signal.SIGCHLD, signal.SIGINT):
            signal.signal(signum, signal.SIG_DFL)
        for fd in close_fds:
            os.close(fd)
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        # Never the fork server's stdout: that pipe carries the protocol.
        log_path = request["log"] or os.devnull
        log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.environ.update(request["env"])
        from tutorial_app import entrypoint
        sys.argv = ["tutorial_app.entrypoint", *request["argv"]]
        entrypoint.main(request["argv"])
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        import traceback
        traceback.print_exc()
    finally:
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)


if __name__ == "__main__":
    _serve()
