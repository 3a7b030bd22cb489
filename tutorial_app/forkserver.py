"""Start app servers by forking a process that has already imported the app.

A provider app server serves one request, so `tutorial-app run` starts one
per subtask. A fresh interpreter spends most of its start importing gRPC,
protobuf and the app; at low difficulty that import is most of a subtask's
cost. The fork server (``python -m tutorial_app.forkserver``) imports the
app's entrypoint once, then forks a child per server start, which runs
``tutorial_app.entrypoint.main`` with the argv it was given.

The fork server is single-threaded and runs no event loop, so forking it is
safe. A node that is itself single-threaded, which is every node at the
moment it opens its servers, forks the fork server from itself rather than
starting an interpreter: it has imported the app already, so the fork
server is ready in milliseconds instead of after a whole import, and the
requestor, forked from it, answers its first call that much sooner. The
child forgets the node's state that must not be shared (its file
descriptors, its event loop's signal wiring, its log handlers) before it
serves. It is the parent of every server it forks: it reaps them, reports
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
import threading
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine import descriptors
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

    def __init__(self, log_path: Path | None = None, fork_here: bool | None = None) -> None:
        """``fork_here``: fork the fork server from this process (True), start it as
        a fresh interpreter (False), or fork whenever that is safe (None)."""
        self.log_path = log_path
        self.fork_here = fork_here
        self.forked_here = False
        self._process: asyncio.subprocess.Process | _ForkedHere | None = None
        self._reader: asyncio.Task[None] | None = None
        self._next_id = 0
        self._started: dict[int, asyncio.Future[ForkedChild]] = {}
        # Children not reaped yet; an entry goes when its exit is reported
        # (its ForkedChild keeps the code), so a run of many providers does
        # not grow it.
        self._exits: dict[int, asyncio.Future[int]] = {}

    async def start(self) -> None:
        """Start the fork server and wait until it has imported the app."""
        fork_here = can_fork_here() if self.fork_here is None else self.fork_here
        if fork_here:
            self._process = await _ForkedHere.start(self.log_path)
            self.forked_here = True
        else:
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


def can_fork_here() -> bool:
    """True when this process may fork the fork server from itself: it has no
    other thread (whose locks a child would inherit held) and Linux pidfds
    tell the event loop when the child ends."""
    return threading.active_count() == 1 and hasattr(os, "pidfd_open") and hasattr(signal, "pidfd_send_signal")


class _ForkedHere:
    """A fork server forked from this process: the part of
    `asyncio.subprocess.Process` that `ForkServer` uses, on pipes and a pidfd."""

    def __init__(self, pid: int, pidfd: int, stdin: asyncio.StreamWriter,
                 stdout: asyncio.StreamReader) -> None:
        self.pid = pid
        self.stdin = stdin
        self.stdout = stdout
        self.returncode: int | None = None
        self._pidfd = pidfd
        self._loop = asyncio.get_running_loop()
        self._exited: asyncio.Future[int] = self._loop.create_future()
        self._loop.add_reader(pidfd, self._reap)

    @classmethod
    async def start(cls, log_path: Path | None) -> _ForkedHere:
        loop = asyncio.get_running_loop()
        _preload()  # here, once per node: then no child imports anything
        log_fd = os.open(log_path if log_path is not None else os.devnull,
                         os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        in_r, in_w = os.pipe()
        out_r, out_w = os.pipe()
        owned = [out_r, in_w]  # the parent's ends, until a transport owns them
        pid = pidfd = -1
        read_transport: asyncio.BaseTransport | None = None
        try:
            try:
                pid = os.fork()
                if pid == 0:
                    _forked_here_main(in_r, out_w, log_fd)  # never returns
            finally:
                for fd in (log_fd, in_r, out_w):
                    os.close(fd)
            pidfd = os.pidfd_open(pid)
            stdout = asyncio.StreamReader()
            owned.remove(out_r)
            read_file = os.fdopen(out_r, "rb", 0)
            try:
                read_transport, _ = await loop.connect_read_pipe(
                    lambda: asyncio.StreamReaderProtocol(stdout), read_file)
            except BaseException:
                read_file.close()
                raise
            owned.remove(in_w)
            write_file = os.fdopen(in_w, "wb", 0)
            try:
                transport, protocol = await loop.connect_write_pipe(
                    lambda: asyncio.StreamReaderProtocol(asyncio.StreamReader()), write_file)
            except BaseException:
                write_file.close()
                raise
        except BaseException:
            for fd in owned:
                os.close(fd)
            if read_transport is not None:
                read_transport.close()
            if pid > 0:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)  # not reaped yet: the pid is still its
                os.waitpid(pid, 0)
            if pidfd >= 0:
                os.close(pidfd)
            raise
        return cls(pid, pidfd, asyncio.StreamWriter(transport, protocol, None, loop), stdout)

    def _reap(self) -> None:
        pid, status = os.waitpid(self.pid, os.WNOHANG)
        if pid == 0:
            return
        self._loop.remove_reader(self._pidfd)
        os.close(self._pidfd)
        self.returncode = os.waitstatus_to_exitcode(status)
        if not self._exited.done():
            self._exited.set_result(self.returncode)

    async def wait(self) -> int:
        return await asyncio.shield(self._exited)

    def kill(self) -> None:
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)


# The node's standard streams as the child inherited them, kept referenced:
# collected, they would flush what the node had buffered into other files.
_inherited_streams: list[Any] = []


def forget_node_descriptors(keep: int | None) -> None:
    """In a process forked from the node: let go of every descriptor above 2 but
    ``keep``, without freeing its number (see `engine.descriptors`)."""
    descriptors.release(descriptors.inherited([keep]))


def _forked_here_main(stdin_fd: int, stdout_fd: int, log_fd: int) -> None:
    """The child side of `_ForkedHere.start`: forget the node, then serve."""
    code = 1
    try:
        os.dup2(stdin_fd, 0)
        os.dup2(stdout_fd, 1)
        os.dup2(log_fd, 2)
        # The node's sockets, its loop's selector and self-pipe, its servers'
        # logs: none is the fork server's, and any held open here would keep
        # a connection or a pipe alive after the node closed it.
        import multiprocessing.process
        import multiprocessing.resource_tracker
        tracker = multiprocessing.resource_tracker._resource_tracker  # type: ignore[attr-defined]
        # The node's resource tracker serves the engine pools forked from here too.
        forget_node_descriptors(keep=tracker._fd if tracker._fd is not None and tracker._fd > 2 else None)
        signal.set_wakeup_fd(-1)
        for signum in (signal.SIGTERM, signal.SIGCHLD, signal.SIGHUP):
            signal.signal(signum, signal.SIG_DFL)
        asyncio.events._set_running_loop(None)
        asyncio.set_event_loop(None)
        # The node's sys.std* may not be on descriptors 0-2 at all (a test
        # runner's capture files, just closed): the protocol must use these.
        _inherited_streams.extend((sys.stdin, sys.stdout, sys.stderr))
        sys.stdin = open(0, "r", closefd=False)
        sys.stdout = open(1, "w", closefd=False)
        sys.stderr = open(2, "w", buffering=1, closefd=False)
        for logger in [logging.root, *logging.root.manager.loggerDict.values()]:
            if isinstance(logger, logging.Logger):
                logger.handlers.clear()
        logging.root.setLevel(logging.WARNING)
        # The node's worker processes are not this process's children.
        multiprocessing.process._children.clear()  # type: ignore[attr-defined]
        _serve()
        code = 0
    except BaseException:
        with contextlib.suppress(Exception):
            traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


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
    # No multiprocessing resource tracker is started here: the engine pools
    # of forked servers fork their workers and name no semaphore, so none
    # needs one. Started here, it would cost every run an interpreter's
    # start, and hold the protocol pipe (its stdout) open past our exit.
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
    and the pool's multiprocessing machinery, the event loop; load the native kernels
    and build (and use) the entrypoint's parser."""
    import concurrent.futures.thread  # noqa: F401  (the run_in_executor pool)
    import multiprocessing.popen_spawn_posix  # noqa: F401
    import multiprocessing.sharedctypes  # noqa: F401
    import multiprocessing.synchronize  # noqa: F401

    import engine
    import engine.inprocess  # noqa: F401
    import engine.supervisor  # noqa: F401
    import tutorial_app.entrypoint
    # Parsed once too: argparse compiles its patterns at the first parse.
    tutorial_app.entrypoint.build_parser().parse_args(["provider", "1", "--work-dir", os.curdir])
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
