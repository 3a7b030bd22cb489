"""Production `TaskApiService`s that run an app server as a local process.

The local runner (`tutorial-app run`) and the test helpers start app servers
through these; `golem_task_api.dockerservice` runs them in containers.
"""
from __future__ import annotations

import asyncio
import os
import signal
import socket
from pathlib import Path
from typing import Mapping, Optional, Sequence, Union

import psutil

from golem_task_api.client import TaskApiService, command_argv

# How long stop() waits after SIGTERM before it kills the process.
STOP_GRACE_SECONDS = 5.0

# Where a local server is dialled.
LOCAL_HOST = "127.0.0.1"


def find_free_port() -> int:
    """A TCP port that was free a moment ago (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCAL_HOST, 0))
        return int(sock.getsockname()[1])


class SubprocessTaskApiService(TaskApiService):
    """Runs `[*argv_prefix, *command words]` as a subprocess (a real app entrypoint).

    stop() sends SIGTERM and kills the process if it has not ended after
    STOP_GRACE_SECONDS; helpers the server started are killed with it.
    """

    def __init__(
        self,
        work_dir: Path,
        argv_prefix: Sequence[str],
        env: Optional[Mapping[str, str]] = None,
        log_path: Optional[Path] = None,
    ) -> None:
        self.work_dir = Path(work_dir)
        self.argv_prefix = list(argv_prefix)
        # Added to (not replacing) this process's environment.
        self.env = dict(env or {})
        # The server's stdout and stderr go there instead of ours when given.
        self.log_path = log_path
        self._process: Optional[asyncio.subprocess.Process] = None

    async def start(self, command: Union[str, Sequence[str]], port: int) -> tuple[str, int]:
        """Start the server with command ("requestor 50005" or its words)."""
        if self._process is not None:
            raise RuntimeError("service already started")
        log = open(self.log_path, "ab") if self.log_path is not None else None
        try:
            self._process = await asyncio.create_subprocess_exec(
                *self.argv_prefix,
                *command_argv(command),
                env={**os.environ, **self.env} if self.env else None,
                stdout=log,
                stderr=log,
            )
        finally:
            if log is not None:
                log.close()  # the child holds its own copy
        return LOCAL_HOST, port

    @property
    def returncode(self) -> Optional[int]:
        """The process's exit code once it ended."""
        return None if self._process is None else self._process.returncode

    @property
    def pid(self) -> Optional[int]:
        """The process id once started."""
        return None if self._process is None else self._process.pid

    def running(self) -> bool:
        """True while the server process is alive."""
        return self._process is not None and self._process.returncode is None

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL after STOP_GRACE_SECONDS; idempotent."""
        process = self._process
        if process is None or process.returncode is not None:
            return
        # Taken before the server ends: afterwards its helpers are orphans we cannot find.
        descendants = descendants_of(process.pid)
        try:
            try:
                process.send_signal(signal.SIGTERM)
                await asyncio.wait_for(process.wait(), STOP_GRACE_SECONDS)
            except ProcessLookupError:
                pass
            except asyncio.TimeoutError:
                process.kill()
            await process.wait()
        except BaseException:
            # Cancelled (or failed) mid-stop: end it anyway rather than leave it
            # running, and reap it so its transport closes with it.
            if process.returncode is None:
                try:
                    process.kill()
                except ProcessLookupError:
                    pass
            await asyncio.shield(process.wait())
            raise
        finally:
            kill_all(descendants)

    async def wait_until_shutdown_complete(self) -> None:
        """Return once the server process has ended."""
        if self._process is not None:
            await self._process.wait()


def descendants_of(pid: int) -> list[psutil.Process]:
    """Every live descendant of pid (empty when pid is gone)."""
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def kill_all(processes: list[psutil.Process]) -> None:
    """SIGKILL each process still alive (psutil checks the pid was not reused)."""
    for child in processes:
        try:
            child.kill()
        except psutil.Error:
            pass
