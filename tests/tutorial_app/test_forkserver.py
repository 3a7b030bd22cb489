"""The fork server: app servers forked from a process that imported the app once."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import psutil
import pytest
from golem_task_api.client import ProviderAppClient
from golem_task_api.testutils import find_free_port

from tutorial_app import forkserver as forkserver_module
from tutorial_app.forkserver import ForkedService, ForkServer


@contextlib.asynccontextmanager
async def running_forkserver(log_path: Path | None = None, fork_here: bool | None = None
                             ) -> AsyncIterator[ForkServer]:
    """A started fork server, closed on the way out."""
    forkserver = ForkServer(log_path, fork_here=fork_here)
    await forkserver.start()
    try:
        yield forkserver
    finally:
        await forkserver.close()


def provider_service(forkserver: ForkServer, tmp_path: Path, log_path: Path | None = None) -> ForkedService:
    """A one-worker provider to be forked, with tmp_path/work as its work dir."""
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    return ForkedService(forkserver, ["--work-dir", str(work)], {"TUTORIAL_APP_WORKERS": "1"}, log_path)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("fork_here", [True, False], ids=["forked from the node", "fresh interpreter"])
def test_forked_provider_serves_and_leaves_nothing_behind(tmp_path: Path, fork_here: bool) -> None:
    async def main() -> None:
        async with running_forkserver(tmp_path / "forkserver.log", fork_here) as forkserver:
            assert forkserver.forked_here == fork_here
            service = provider_service(forkserver, tmp_path, tmp_path / "p.log")
            client = await ProviderAppClient.create(service, port=find_free_port())
            assert service.running() and service.pid is not None
            workers = psutil.Process(service.pid).children(recursive=True)
            assert workers  # the provider's engine pool
            score = await client.run_benchmark()
            assert score > 0
            await client.shutdown(5)
            assert service.returncode == 0
            assert "provider server" in (tmp_path / "p.log").read_text()
            gone, alive = psutil.wait_procs(workers, timeout=5)
            assert not alive

    asyncio.run(main())


@pytest.mark.timeout(60)
def test_closing_the_fork_server_kills_its_servers_and_their_workers(tmp_path: Path) -> None:
    async def main() -> list[psutil.Process]:
        forkserver = ForkServer()
        await forkserver.start()
        service = provider_service(forkserver, tmp_path)
        client = await ProviderAppClient.create(service, port=find_free_port())
        assert service.pid is not None
        tree = [psutil.Process(service.pid), *psutil.Process(service.pid).children(recursive=True)]
        await forkserver.close()  # as when the node dies: nothing it started may stay
        assert not service.running()
        await client.shutdown(1)
        return tree

    tree = asyncio.run(main())
    gone, alive = psutil.wait_procs(tree, timeout=5)
    assert not alive


@pytest.mark.timeout(60)
def test_stop_ends_a_forked_server(tmp_path: Path) -> None:
    async def main() -> None:
        async with running_forkserver() as forkserver:
            service = provider_service(forkserver, tmp_path)
            await service.start("provider " + str(find_free_port()), 0)
            await service.stop()
            assert not service.running() and service.returncode is not None

    asyncio.run(main())


@pytest.mark.timeout(60)
def test_reaped_children_leave_no_entry_behind(tmp_path: Path) -> None:
    async def main() -> None:
        async with running_forkserver() as forkserver:
            services = [provider_service(forkserver, tmp_path) for _ in range(3)]
            for service in services:
                # An unknown role: the child exits at once with a usage error.
                await service.start("no-such-role 1", 0)
            for service in services:
                await service.wait_until_shutdown_complete()
                assert not service.running() and service.returncode not in (None, 0)
            assert forkserver._exits == {}  # one entry per provider would grow for the whole run

    asyncio.run(main())


async def _started_with_reader(reader: Callable[[], Awaitable[None]]) -> ForkServer:
    """A running fork server whose stdout reader is replaced with ``reader``."""
    forkserver = ForkServer()
    await forkserver.start()
    assert forkserver._reader is not None
    forkserver._reader.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await forkserver._reader
    forkserver._reader = asyncio.create_task(reader())
    return forkserver


@pytest.mark.timeout(60)
def test_close_does_not_swallow_its_callers_cancellation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(forkserver_module, "READER_GRACE_SECONDS", 30.0)

    async def main() -> bool:
        forkserver = await _started_with_reader(lambda: asyncio.Event().wait())
        reader = forkserver._reader
        assert reader is not None
        closing = asyncio.create_task(forkserver.close())
        await asyncio.sleep(0.3)  # the process is gone; close waits for the reader
        closing.cancel()
        await asyncio.wait([closing], timeout=10)
        reader.cancel()
        return closing.cancelled()

    assert asyncio.run(main())


@pytest.mark.timeout(60)
def test_close_ends_a_reader_that_does_not_finish(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(forkserver_module, "READER_GRACE_SECONDS", 0.1)

    async def main() -> None:
        forkserver = await _started_with_reader(lambda: asyncio.Event().wait())
        started = time.monotonic()
        # Returns soon: the reader it cancelled itself is no error.
        await asyncio.wait_for(forkserver.close(), 10)
        assert time.monotonic() - started < 5
        assert forkserver._reader is None or forkserver._reader.cancelled()

    asyncio.run(main())


@pytest.mark.timeout(60)
def test_close_logs_a_crashed_reader(caplog: pytest.LogCaptureFixture) -> None:
    async def crash() -> None:
        raise RuntimeError("the reader broke")

    async def main() -> None:
        forkserver = await _started_with_reader(crash)
        await forkserver.close()

    with caplog.at_level(logging.WARNING, logger="tutorial_app.forkserver"):
        asyncio.run(main())
    assert "the reader broke" in caplog.text


@pytest.mark.timeout(30)
def test_by_default_a_single_threaded_node_forks_the_fork_server_and_others_do_not() -> None:
    assert forkserver_module.can_fork_here()
    release = threading.Event()
    other = threading.Thread(target=release.wait)
    other.start()
    try:
        assert not forkserver_module.can_fork_here()
    finally:
        release.set()
        other.join()


@pytest.mark.timeout(60)
def test_a_fork_server_forked_from_the_node_holds_none_of_its_sockets(tmp_path: Path) -> None:
    """The node's sockets stay the node's: a port it closes stops accepting even
    while the fork server and a server it forked run."""
    async def main() -> None:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        async with running_forkserver(fork_here=True) as forkserver:
            service = provider_service(forkserver, tmp_path)
            client = await ProviderAppClient.create(service, port=find_free_port())
            listener.close()
            with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
                probe.connect(("127.0.0.1", port))
            await client.shutdown(5)

    asyncio.run(main())


_REDIRECTED_STDOUT_SCRIPT = """
import asyncio, os, sys, tempfile
from golem_task_api.client import RequestorAppClient
from golem_task_api.testutils import find_free_port
from tutorial_app.forkserver import ForkedService, ForkServer

async def main(work):
    forkserver = ForkServer(fork_here=True)
    await forkserver.start()
    try:
        service = ForkedService(forkserver, ["--work-dir", work], {})
        client = await RequestorAppClient.create(service, port=find_free_port())
        await client.shutdown(5)
    finally:
        await forkserver.close()

real_stdout = sys.stdout
sys.stdout = tempfile.TemporaryFile("w+")  # as a test runner's capture does
asyncio.run(main(sys.argv[1]))
real_stdout.write("served")
"""


@pytest.mark.timeout(60)
def test_a_node_whose_stdout_is_not_descriptor_1_still_forks_a_working_fork_server(tmp_path: Path) -> None:
    """The fork server speaks on descriptor 1, whatever the node's sys.stdout was."""
    done = subprocess.run([sys.executable, "-c", _REDIRECTED_STDOUT_SCRIPT, str(tmp_path)],
                          capture_output=True, text=True, timeout=50)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "served"


@pytest.mark.timeout(30)
@pytest.mark.parametrize("failing", ["pidfd_open", "connect_write_pipe"])
def test_a_fork_here_that_fails_half_way_leaves_no_process_and_no_descriptor(
    monkeypatch: pytest.MonkeyPatch, failing: str,
) -> None:
    me = psutil.Process()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        fds = me.num_fds()
        before = {c.pid for c in me.children()}  # e.g. the session's resource tracker

        def fail(*args: object, **kwargs: object) -> None:
            raise OSError(24, "injected: too many open files")

        if failing == "pidfd_open":
            monkeypatch.setattr(forkserver_module.os, "pidfd_open", fail)
        else:
            monkeypatch.setattr(loop, "connect_write_pipe", fail)
        with pytest.raises(OSError, match="injected"):
            await ForkServer(fork_here=True).start()
        await asyncio.sleep(0.01)  # a closed transport lets go of its pipe on the next loop pass
        assert [c for c in me.children()
                if c.pid not in before and c.status() != psutil.STATUS_ZOMBIE] == []
        assert me.num_fds() == fds

    asyncio.run(main())


def _in_a_forked_child(child: Callable[[], None], timeout: float = 10.0) -> int:
    """Run ``child`` in a plain fork of this process; its exit code (1 if it raised)."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            child()
            code = 0
        finally:
            os._exit(code)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reaped, status = os.waitpid(pid, os.WNOHANG)
        if reaped:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    raise AssertionError("the forked child did not end")


@pytest.mark.timeout(30)
def test_an_object_of_the_node_collected_in_the_fork_server_closes_none_of_its_descriptors() -> None:
    """The node's Python objects come along in the fork. Collected there, one
    closes its descriptor number: that number must not have become one of the
    fork server's own. Seen: a provider's event loop lost its epoll fd to an
    mmap of the node's multiprocessing heap, and every provider crashed."""
    node_socket = socket.socket()
    number = node_socket.fileno()

    def child() -> None:
        forkserver_module.forget_node_descriptors(keep=None)
        mine = [os.open(os.devnull, os.O_RDONLY) for _ in range(number + 1)]
        node_socket.close()  # as its collection would
        for fd in mine:
            os.fstat(fd)  # raises EBADF if the node's object closed it

    try:
        assert _in_a_forked_child(child) == 0
    finally:
        node_socket.close()


_AFTER_AN_ENGINE_SEARCH_SCRIPT = """
import asyncio, sys
from pathlib import Path
import engine
from golem_task_api.client import ProviderAppClient
from golem_task_api.testutils import find_free_port
from tutorial_app.forkserver import ForkedService, ForkServer

async def main(work):
    forkserver = ForkServer(fork_here=True)
    await forkserver.start()
    try:
        env = {"TUTORIAL_APP_WORKERS": "1", "TUTORIAL_APP_POOL_START": "eager"}
        for i in range(3):
            (work / str(i)).mkdir()
            service = ForkedService(forkserver, ["--work-dir", str(work / str(i))], env)
            client = await ProviderAppClient.create(service, port=find_free_port(), health_timeout=10)
            await client.shutdown(5)
            assert service.returncode == 0, service.returncode
    finally:
        await forkserver.close()

engine.benchmark(0.05)  # as bench.e2e does: the node's own pool leaves its arena behind
asyncio.run(main(Path(sys.argv[1])))
print("served")
"""


@pytest.mark.timeout(60)
def test_providers_forked_after_the_node_ran_an_engine_search_start_their_pools(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", _AFTER_AN_ENGINE_SEARCH_SCRIPT, str(tmp_path)],
                          capture_output=True, text=True, timeout=50)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "served"
