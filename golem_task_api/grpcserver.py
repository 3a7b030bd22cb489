"""Our override of grpclib's Server: the one module touching its private parts.

grpclib's close() stops listening and cancels calls but leaves accepted
connections open; they would then be torn down by the loop closing
(ResourceWarning) instead of being closed after their last reply went out.
This server remembers its open connections and closes them when it stops.
"""
from __future__ import annotations

import asyncio
from typing import Any, Sequence

from grpclib.server import Server


class ConnectionClosingServer(Server):
    """A grpclib Server that also closes its client connections when it stops."""

    def __init__(self, handlers: Sequence[Any]) -> None:
        super().__init__(handlers)
        self._transports: set[asyncio.BaseTransport] = set()

    def _protocol_factory(self) -> Any:
        protocol = super()._protocol_factory()
        made = protocol.connection_made

        def connection_made(transport: asyncio.BaseTransport) -> None:
            self._transports.add(transport)
            made(transport)

        # Per instance: the loop looks the callback up on the protocol object.
        setattr(protocol, "connection_made", connection_made)
        return protocol

    async def close_connections(self) -> None:
        """Close every accepted connection (flushing what was written) and let the loop run it."""
        for transport in self._transports:
            if not transport.is_closing():
                transport.close()
        self._transports.clear()
        await asyncio.sleep(0)
