"""Our override of grpclib's server: the one module touching grpclib's private parts.

- `receive_request` reads a unary request with a size bound: grpclib reads
  whatever length the client announces, and a protobuf that does not
  decode becomes a clear error rather than grpclib's own status.
- `ConnectionClosingServer` knows its open connections: it forgets closed
  ones at once, closes connections idle for `IDLE_TIMEOUT_SECONDS`, keeps at
  most `max_connections` open (making room by closing the longest-idle one),
  and closes them all when it stops (grpclib's close() leaves accepted
  connections open until the loop closes).
"""
from __future__ import annotations

import asyncio
import logging
import resource
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

from google.protobuf.message import DecodeError
from grpclib.server import Server, Stream

from golem_task_api.bounds import check_request_size
from golem_task_api.errors import InvalidArgumentError

log = logging.getLogger("golem_task_api.server")

# A connection with no call running and no byte received for this long is closed.
IDLE_TIMEOUT_SECONDS = 60.0
# How often idle connections are looked for.
SWEEP_INTERVAL_SECONDS = 1.0
# At most this many connections, and never more than a quarter of the file
# descriptors the process may open: the rest serve the app's own files.
MAX_CONNECTIONS = 256
# How long an unauthenticated TLS handshake may take.
TLS_HANDSHAKE_TIMEOUT_SECONDS = 10.0

_PREFIX = struct.Struct(">?I")  # gRPC message framing: compressed flag, length


def connection_limit() -> int:
    """How many connections a server of this process keeps open at most."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(4, min(MAX_CONNECTIONS, soft // 4))


async def receive_request(stream: Stream[Any, Any], max_bytes: int) -> Any:
    """The one request message of a unary call, at most max_bytes long."""
    inner = getattr(stream, "_stream", None)
    if inner is None:  # not a grpclib stream (a test double): nothing to bound
        return await stream.recv_message()
    prefix = await inner.recv_data(_PREFIX.size)
    if len(prefix) < _PREFIX.size:
        raise InvalidArgumentError("the call carries no request message")
    compressed, length = _PREFIX.unpack(prefix)
    if compressed:
        raise InvalidArgumentError("compressed requests are not supported")
    # Refused before reading it: the client's flow control holds the rest.
    check_request_size(length, max_bytes)
    data = await inner.recv_data(length)
    if len(data) != length:
        raise InvalidArgumentError("the request message was cut short")
    try:
        message = stream._codec.decode(data, stream._recv_type)
    except DecodeError:
        raise InvalidArgumentError("the request is not a valid protobuf message") from None
    message, = await stream._dispatch.recv_message(message)
    stream._messages_received += 1
    inner.connection.messages_received += 1
    return message


@dataclass(eq=False)
class _Connection:
    transport: asyncio.BaseTransport
    protocol: Any
    last_active: float = field(default_factory=time.monotonic)

    def busy(self) -> bool:
        tasks = getattr(self.protocol.handler, "_tasks", {})
        return any(not task.done() for task in tasks.values())

    def idle_for(self, now: float) -> float:
        return 0.0 if self.busy() else now - self.last_active


class ConnectionClosingServer(Server):
    """A grpclib Server that bounds its connections and closes them when it stops."""

    def __init__(self, handlers: Sequence[Any], max_connections: Optional[int] = None) -> None:
        super().__init__(handlers)
        self.max_connections = max_connections or connection_limit()
        self._connections: dict[asyncio.BaseTransport, _Connection] = {}
        self._sweeper: Optional[asyncio.Task[None]] = None

    def sockets(self) -> list[socket.socket]:
        """The listening sockets, once started."""
        return list(self._server.sockets) if self._server is not None else []

    @property
    def open_connections(self) -> int:
        """How many accepted connections are open now."""
        return len(self._connections)

    def _protocol_factory(self) -> Any:
        protocol = super()._protocol_factory()
        made, received, lost = (
            protocol.connection_made, protocol.data_received, protocol.connection_lost)
        record: list[_Connection] = []

        def connection_made(transport: asyncio.BaseTransport) -> None:
            self._make_room()
            connection = _Connection(transport, protocol)
            record.append(connection)
            self._connections[transport] = connection
            made(transport)

        def data_received(data: bytes) -> None:
            if record:
                record[0].last_active = time.monotonic()
            received(data)

        def connection_lost(exc: Optional[BaseException]) -> None:
            if record:
                self._connections.pop(record[0].transport, None)
            lost(exc)

        # Per instance: the loop looks the callbacks up on the protocol object.
        setattr(protocol, "connection_made", connection_made)
        setattr(protocol, "data_received", data_received)
        setattr(protocol, "connection_lost", connection_lost)
        return protocol

    def _make_room(self) -> None:
        """Before accepting one more: close the longest-idle connection when at the limit."""
        if len(self._connections) < self.max_connections:
            return
        now = time.monotonic()
        idle = [c for c in self._connections.values() if not c.busy()]
        if not idle:
            return  # every connection is serving a call: none is closed for a newcomer
        oldest = max(idle, key=lambda c: c.idle_for(now))
        log.info("%d connections open; closing the one idle longest", len(self._connections))
        self._close(oldest)

    def _close(self, connection: _Connection) -> None:
        self._connections.pop(connection.transport, None)
        if not connection.transport.is_closing():
            connection.transport.close()

    async def start(
        self,
        host: Optional[str] = None,
        port: Optional[int] = None,
        *,
        ssl: Optional[Any] = None,
        backlog: int = 100,
    ) -> None:
        """Listen on host:port (all interfaces for None), and start closing idle connections.

        As grpclib's start, plus a bound on TLS handshakes: a connection that
        never completes one holds a file only TLS_HANDSHAKE_TIMEOUT_SECONDS.
        """
        if self._server is not None:
            raise RuntimeError("server already started")
        self._server = await self._loop.create_server(
            self._protocol_factory, host, port, backlog=backlog, ssl=ssl,
            ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT_SECONDS if ssl is not None else None,
        )
        self._server_closed_fut = self._loop.create_future()
        self._sweeper = asyncio.create_task(self._sweep_idle())

    async def _sweep_idle(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL_SECONDS)
            now = time.monotonic()
            for connection in list(self._connections.values()):
                if connection.idle_for(now) > IDLE_TIMEOUT_SECONDS:
                    self._close(connection)

    def close(self) -> None:
        """Stop listening and sweeping; running calls are cancelled by grpclib."""
        if self._sweeper is not None:
            self._sweeper.cancel()
        super().close()

    async def close_connections(self) -> None:
        """Close every accepted connection (flushing what was written) and let the loop run it."""
        for connection in list(self._connections.values()):
            self._close(connection)
        self._connections.clear()
        if self._sweeper is not None:
            await asyncio.gather(self._sweeper, return_exceptions=True)
            self._sweeper = None
        await asyncio.sleep(0)
