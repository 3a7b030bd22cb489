"""Workers forked from a single-threaded caller: fast, and holding nothing of their parent's."""
from __future__ import annotations

import asyncio
import os
import signal
import socket
import threading

import psutil
import pytest

from engine import Supervisor, WorkerCrashed, reference_search
from engine.supervisor import START_METHOD, pool_start_method


def _refused(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(2)
        try:
            probe.connect(("127.0.0.1", port))
        except ConnectionRefusedError:
            return True
        return False


@pytest.mark.timeout(30)
def test_a_single_threaded_caller_forks_its_workers_and_the_law_holds() -> None:
    assert pool_start_method() == "fork"
    with Supervisor(2) as supervisor:
        solution = supervisor.search("forked workers", 12)
        assert supervisor.start_method == "fork"
        assert (solution.digest, solution.nonce) == reference_search("forked workers", 12)


@pytest.mark.timeout(30)
def test_with_another_thread_running_workers_are_spawned() -> None:
    release = threading.Event()
    other = threading.Thread(target=release.wait)
    other.start()
    try:
        assert pool_start_method() == START_METHOD == "spawn"
        with Supervisor(1) as supervisor:
            supervisor.start()
            assert supervisor.start_method == "spawn"
    finally:
        release.set()
        other.join()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("proc", [True, False], ids=["/proc", "no /proc"])
def test_forked_workers_do_not_hold_the_parents_sockets(monkeypatch: pytest.MonkeyPatch, proc: bool) -> None:
    """A listening socket the parent closes must stop accepting: an app server's
    port (or a connection it closed) held open by its workers would not."""
    if not proc:  # the forked workers inherit the patch
        import engine.worker

        real_listdir = os.listdir

        def no_proc(path: str) -> list[str]:
            if path == "/proc/self/fd":
                raise FileNotFoundError(2, "No such file or directory", path)
            return real_listdir(path)

        monkeypatch.setattr(engine.worker.os, "listdir", no_proc)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    with Supervisor(2) as supervisor:
        supervisor.search("sockets", 4)  # the workers are up and have forgotten
        assert supervisor.start_method == "fork"
        listener.close()
        assert _refused(port)
        for pid in supervisor.pids():
            assert all(c.laddr == () or c.laddr.port != port
                       for c in psutil.Process(pid).net_connections("tcp"))


@pytest.mark.timeout(30)
def test_a_signal_to_a_forked_worker_does_not_reach_the_parents_event_loop() -> None:
    """A worker forked from inside a running loop inherits its signal wake-up
    pipe; a SIGTERM sent to the worker must end the worker, not the parent."""
    async def main() -> list[int]:
        loop = asyncio.get_running_loop()
        heard: list[int] = []
        loop.add_signal_handler(signal.SIGTERM, heard.append, signal.SIGTERM)
        try:
            with Supervisor(1) as supervisor:
                supervisor.start()
                assert supervisor.start_method == "fork"
                await asyncio.to_thread(supervisor.search, "signals", 2)
                (pid,) = supervisor.pids()
                worker = psutil.Process(pid)
                worker.send_signal(signal.SIGTERM)
                assert worker.wait(5) == -signal.SIGTERM
                await asyncio.sleep(0.2)  # time for a stray wake-up to be read
                with pytest.raises(WorkerCrashed):
                    await asyncio.to_thread(supervisor.search, "after the signal", 30)
        finally:
            loop.remove_signal_handler(signal.SIGTERM)
        return heard

    assert asyncio.run(main()) == []
