"""Where app servers run: remote servers given up quickly, provider dirs never wiped."""
from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import pytest
from golem_task_api.testutils import find_free_port

from tutorial_app.pool import ProviderPool, ProviderStartError
from tutorial_app.servers import (
    ConnectedService, ForeignDirectoryError, RemoteServers, check_provider_dir, clear_own_entries,
)

SUBTASK = "0123456789abcdef0123456789abcdef"


def test_unreachable_remote_provider_is_given_up_quickly_and_clearly(tmp_path: Path) -> None:
    port = find_free_port()  # nothing listens there
    servers = RemoteServers(("127.0.0.1", find_free_port()), tmp_path / "r", ("127.0.0.1", port),
                            tmp_path / "p", connect_timeout=1.0)
    pool = ProviderPool(servers, ahead=1)

    async def main() -> None:
        with pytest.raises(ProviderStartError) as caught:
            await pool.acquire()
        assert f"nothing accepted a connection at 127.0.0.1:{port} within 1 s" in str(caught.value)
        await pool.close(1.0)

    started = time.monotonic()
    asyncio.run(main())
    assert time.monotonic() - started < 5


def test_connected_service_never_connects_synchronously(monkeypatch: pytest.MonkeyPatch) -> None:
    def blocking_connect(*args: object, **kwargs: object) -> None:
        raise AssertionError("a synchronous connect blocks the event loop")

    monkeypatch.setattr(socket, "create_connection", blocking_connect)

    async def main() -> None:
        accepted: list[int] = []

        async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted.append(1)
            writer.close()

        server = await asyncio.start_server(on_client, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        service = ConnectedService(("127.0.0.1", port), stop_timeout=0.5)
        assert await service.start("provider 1", port) == ("127.0.0.1", port)
        # The loop stays responsive while the service probes.
        began = time.monotonic()
        while not accepted:
            await asyncio.sleep(0.01)
            assert time.monotonic() - began < 5
        assert service.running()
        server.close()
        await server.wait_closed()
        await service.stop()

    asyncio.run(main())


def test_connected_service_accepts_command_as_list_or_string() -> None:
    async def main() -> None:
        for command in (["provider", "5"], "provider 5"):
            service = ConnectedService(("127.0.0.1", 5), connect_timeout=0.2)
            assert await service.start(command, 5) == ("127.0.0.1", 5)
            await service.stop()

    asyncio.run(main())


def test_provider_dir_keeps_foreign_files(tmp_path: Path) -> None:
    work = tmp_path / "work"
    (work / "subtask_inputs").mkdir(parents=True)
    (work / "subtask_inputs" / f"{SUBTASK}.zip").write_bytes(b"ours")
    (work / f"{SUBTASK}.zip").write_bytes(b"a result")
    (work / f"{SUBTASK}.progress").write_text("{}")
    (work / "task_api_client.key").write_text("tls")
    check_provider_dir(work)  # only what the node and our provider make
    clear_own_entries(work)
    assert sorted(p.name for p in work.rglob("*")) == ["subtask_inputs", "task_api_client.key"]

    (work / "notes.txt").write_text("the user's")
    with pytest.raises(ForeignDirectoryError, match="notes.txt"):
        clear_own_entries(work)
    assert (work / "notes.txt").read_text() == "the user's"
    assert (work / "task_api_client.key").exists()


def test_provider_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_text("x")
    with pytest.raises(ForeignDirectoryError, match="not a directory"):
        check_provider_dir(path)


REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(90)
def test_remote_pair_through_shared_dirs_keeps_foreign_files_out(tmp_path: Path, input_file: Path) -> None:
    """The compose layout without Docker: servers someone else (re)starts, shared work dirs."""
    import os
    import signal
    import subprocess
    import sys

    from tutorial_app.node import TaskRun
    from app_testing import check_out_dir

    requestor_dir, provider_dir = tmp_path / "requestor", tmp_path / "provider"
    requestor_dir.mkdir()
    provider_dir.mkdir()
    (provider_dir / "task_api_client.crt").write_text("the node's TLS file")
    rport, pport = find_free_port(), find_free_port()
    serve = ["sh", str(REPO / "scripts" / "docker-compose-serve.sh"), sys.executable, "-m",
             "tutorial_app.entrypoint"]
    procs = [
        subprocess.Popen([*serve, "--work-dir", str(requestor_dir), "requestor", str(rport)],
                         start_new_session=True, stderr=subprocess.DEVNULL),
        subprocess.Popen([*serve, "--work-dir", str(provider_dir), "provider", str(pport)],
                         start_new_session=True, stderr=subprocess.DEVNULL),
    ]
    try:
        servers = RemoteServers(("127.0.0.1", rport), requestor_dir, ("127.0.0.1", pport), provider_dir)
        run = TaskRun(servers, input_file, difficulty=6, subtasks=3, providers=1, out_dir=tmp_path / "out")
        asyncio.run(run.run())
        report = run.report()
        assert report.ok, (report.error, report.failures)
        check_out_dir(tmp_path / "out", 6, 3)
        # Between lives the node tidied only its own files; the TLS file stays.
        assert (provider_dir / "task_api_client.crt").read_text() == "the node's TLS file"
        assert check_provider_dir(provider_dir) is None
    finally:
        for proc in procs:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
