"""`InlineTaskApiService`: an app's handler objects served in a forked child.

The child is forked, not spawned: it gets the very handler objects, so
`unittest.mock` objects, closures and lambdas work as handlers (pickling
could not carry them). The child dies with its parent, always: the kernel
kills it when the parent dies (PR_SET_PDEATHSIG), and a watcher thread
ends it when the pipe only the parent holds closes (covering what the
death signal misses, e.g. a parent that dies between fork and prctl).
"""
from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
import sys
import threading
import traceback
from pathlib import Path
from typing import Optional, Sequence, Union

from golem_task_api.client import TaskApiService, command_argv
from golem_task_api.loop import run
from golem_task_api.handlers import AppLifecycleHandler, ProviderAppHandler, RequestorAppHandler
from golem_task_api.services import LOCAL_HOST, STOP_GRACE_SECONDS, descendants_of, kill_all

# How often the parent looks whether the child ended (a forked child has no
# asyncio transport to await).
_POLL_SECONDS = 0.02
# linux/prctl.h
_PR_SET_PDEATHSIG = 1

# Parent ends of the death pipes of children still running: a later child
# must close them, or its copy would keep an earlier child's pipe open.
_death_pipes: set[int] = set()


class InlineTaskApiService(TaskApiService):
    """Runs `golem_task_api.entrypoint.main` with the given handlers in a forked child."""

    def __init__(
        self,
        work_dir: Path,
        requestor_handler: Optional[RequestorAppHandler] = None,
        requestor_lifecycle_handler: Optional[AppLifecycleHandler] = None,
        provider_handler: Optional[ProviderAppHandler] = None,
        provider_lifecycle_handler: Optional[AppLifecycleHandler] = None,
    ) -> None:
        self.work_dir = Path(work_dir)
        self.requestor_handler = requestor_handler
        self.requestor_lifecycle_handler = requestor_lifecycle_handler
        self.provider_handler = provider_handler
        self.provider_lifecycle_handler = provider_lifecycle_handler
        self._pid: Optional[int] = None
        self._returncode: Optional[int] = None
        self._death_pipe: Optional[int] = None

    async def start(self, command: Union[str, Sequence[str]], port: int) -> tuple[str, int]:
        """Fork the child serving command ("requestor 50005" or its words)."""
        if self._pid is not None:
            raise RuntimeError("service already started")
        argv = command_argv(command)
        parent_pid = os.getpid()
        read_end, write_end = os.pipe()
        # Unflushed parent output would otherwise be written twice.
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            os.close(write_end)
            for fd in list(_death_pipes):
                _close_quietly(fd)
            self._child_main(parent_pid, read_end, argv)
        os.close(read_end)
        self._pid = pid
        self._death_pipe = write_end
        _death_pipes.add(write_end)
        return LOCAL_HOST, port

    def _child_main(self, parent_pid: int, death_pipe: int, argv: list[str]) -> None:
        code = 1
        try:
            _die_with_parent(parent_pid, death_pipe)
            _detach_from_parent()
            run(self._serve(argv))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:  # the child must reach os._exit, whatever happened
            traceback.print_exc()
        finally:
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except Exception:
                    pass
            # Never return into the parent's stack (its test runner, its loop).
            os._exit(code)

    async def _serve(self, argv: list[str]) -> None:
        from golem_task_api.entrypoint import main

        await main(
            self.work_dir,
            argv,
            requestor_handler=self.requestor_handler,
            requestor_lifecycle_handler=self.requestor_lifecycle_handler,
            provider_handler=self.provider_handler,
            provider_lifecycle_handler=self.provider_lifecycle_handler,
        )

    @property
    def pid(self) -> Optional[int]:
        """The child's process id once started."""
        return self._pid

    @property
    def returncode(self) -> Optional[int]:
        """The child's exit code (negative: killed by that signal) once it ended."""
        self._reap(block=False)
        return self._returncode

    exitcode = returncode

    def running(self) -> bool:
        """True while the child is alive."""
        return self._pid is not None and self.returncode is None

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL after STOP_GRACE_SECONDS; idempotent."""
        if not self.running():
            return
        assert self._pid is not None
        descendants = descendants_of(self._pid)
        try:
            _signal(self._pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(self.wait_until_shutdown_complete(), STOP_GRACE_SECONDS)
            except asyncio.TimeoutError:
                _signal(self._pid, signal.SIGKILL)
                await self.wait_until_shutdown_complete()
        except BaseException:
            # Cancelled mid-stop: the child must not outlive this call.
            _signal(self._pid, signal.SIGKILL)
            self._reap(block=True)
            raise
        finally:
            kill_all(descendants)

    async def wait_until_shutdown_complete(self) -> None:
        """Return once the child has ended (and is reaped)."""
        while self._pid is not None and not self._reap(block=False):
            await asyncio.sleep(_POLL_SECONDS)

    def _reap(self, block: bool) -> bool:
        """True once the child ended; collects its exit status."""
        if self._returncode is not None:
            return True
        if self._pid is None:
            return False
        try:
            pid, status = os.waitpid(self._pid, 0 if block else os.WNOHANG)
        except ChildProcessError:
            # Reaped by someone else: the status is lost.
            pid, status = self._pid, 0
        if pid == 0:
            return False
        self._returncode = os.waitstatus_to_exitcode(status)
        if self._death_pipe is not None:
            _death_pipes.discard(self._death_pipe)
            _close_quietly(self._death_pipe)
            self._death_pipe = None
        return True


def _die_with_parent(parent_pid: int, death_pipe: int) -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: the pipe watch alone
    if os.getppid() != parent_pid:
        os._exit(1)  # the parent died before the death signal was armed

    def watch() -> None:
        try:
            while os.read(death_pipe, 1):
                pass
        except OSError:
            pass
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="parent-death-watch", daemon=True).start()


def _detach_from_parent() -> None:
    # Forked from inside the parent's running loop: the copy of that state
    # would make asyncio.run refuse to start, and the parent's signal wake-up
    # fd would receive our signals.
    asyncio.events._set_running_loop(None)
    asyncio.set_event_loop(None)
    try:
        signal.set_wakeup_fd(-1)
    except ValueError:
        pass
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)
    # The parent's handlers write into its own buffers (a test runner's log
    # capture) that nobody reads from the child: the server logs to stderr.
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _close_quietly(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass
