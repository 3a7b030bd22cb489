"""Mutual TLS: the node's cert is required when the app's work dir holds the files."""
from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest
from grpclib.client import Channel
from grpclib.exceptions import StreamTerminatedError
from grpclib.health.v1.health_grpc import HealthStub
from grpclib.health.v1.health_pb2 import HealthCheckRequest, HealthCheckResponse

from golem_task_api import constants
from golem_task_api.ssl import create_client_ssl_context, create_server_ssl_context
from golem_task_api.client import RequestorAppClient
from golem_task_api.testutils import InlineTaskApiService, find_free_port

from gta_certs import TlsFiles
from gta_fakes import FakeRequestorHandler


# How a refused handshake surfaces in grpclib's client: the TLS alert, or
# the connection dropping before HTTP/2 gets going.
REFUSED = (ssl.SSLError, ConnectionError, StreamTerminatedError)


async def _health(port: int, context: ssl.SSLContext | None) -> int:
    channel = Channel("127.0.0.1", port, ssl=context)
    try:
        reply = await HealthStub(channel).Check(HealthCheckRequest(service=""), timeout=5)
        return reply.status
    finally:
        channel.close()


def _anonymous_client_context(server_cert_dir: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(server_cert_dir / constants.SERVER_CERT_FILE))
    context.check_hostname = False
    context.set_alpn_protocols(["h2"])
    return context


@pytest.mark.timeout(90)
def test_mutual_tls_accepts_the_node_and_refuses_others(tls_files: TlsFiles) -> None:
    async def scenario() -> None:
        port = find_free_port()
        service = InlineTaskApiService(tls_files.app_dir, requestor_handler=FakeRequestorHandler())
        client = await RequestorAppClient.create(
            service, port, ssl_context=create_client_ssl_context(tls_files.node_dir, tls_files.node_dir)
        )
        try:
            assert await client.run_benchmark() == pytest.approx(42.5)
            stranger = create_client_ssl_context(tls_files.stranger_dir, tls_files.stranger_dir)
            for refused in (None, _anonymous_client_context(tls_files.node_dir), stranger):
                with pytest.raises(REFUSED):
                    await _health(port, refused)
            # Refusals did not hurt the server.
            assert await client.run_benchmark() == pytest.approx(42.5)
        finally:
            await client.shutdown()
        assert service.exitcode == 0

    asyncio.run(scenario())


def test_plaintext_when_the_files_are_absent(tls_files: TlsFiles, tmp_path: Path) -> None:
    for name in (constants.SERVER_KEY_FILE, constants.SERVER_CERT_FILE, constants.CLIENT_CERT_FILE):
        (tls_files.app_dir / name).unlink()
    assert create_server_ssl_context(tls_files.app_dir) is None

    async def scenario() -> None:
        port = find_free_port()
        service = InlineTaskApiService(tls_files.app_dir, requestor_handler=FakeRequestorHandler())
        client = await RequestorAppClient.create(service, port)
        try:
            assert await _health(port, None) == HealthCheckResponse.SERVING
        finally:
            await client.shutdown()

    asyncio.run(scenario())


def test_server_context_requires_client_cert_and_offers_h2(tls_files: TlsFiles) -> None:
    context = create_server_ssl_context(tls_files.app_dir)
    assert context is not None
    assert context.verify_mode is ssl.CERT_REQUIRED
    client = create_client_ssl_context(tls_files.node_dir, tls_files.node_dir)
    assert client.check_hostname is False and client.verify_mode is ssl.CERT_REQUIRED


def test_contexts_drop_x509_strict_that_newer_pythons_turn_on(
    tls_files: TlsFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Python 3.13's create_default_context sets VERIFY_X509_STRICT, which
    # rejects many self-signed certs (no key identifiers, ...) like the ones a
    # node generates; the pinned cert is the whole trust decision here.
    plain = ssl.create_default_context

    def strict(*args: object, **kwargs: object) -> ssl.SSLContext:
        context = plain(*args, **kwargs)  # type: ignore[arg-type]
        context.verify_flags |= ssl.VERIFY_X509_STRICT
        return context

    monkeypatch.setattr(ssl, "create_default_context", strict)
    server = create_server_ssl_context(tls_files.app_dir)
    client = create_client_ssl_context(tls_files.node_dir, tls_files.node_dir)
    assert server is not None
    assert not server.verify_flags & ssl.VERIFY_X509_STRICT
    assert not client.verify_flags & ssl.VERIFY_X509_STRICT
