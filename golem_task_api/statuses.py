"""The one place where exceptions become gRPC statuses.

Every RPC of both servicers runs through `serve_unary`: it receives the
request, runs the call and sends either the reply or the status its
exception maps to (`status_for`); the server logs the failure and keeps
serving.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable

from grpclib.const import Status
from grpclib.server import Stream

from golem_task_api.errors import AlreadyExistsError, FailedPreconditionError, NotFoundError

log = logging.getLogger("golem_task_api.server")


def status_for(exc: BaseException) -> Status:
    """The gRPC status a handler exception is reported with."""
    if isinstance(exc, NotFoundError):
        return Status.NOT_FOUND
    if isinstance(exc, AlreadyExistsError):
        return Status.ALREADY_EXISTS
    if isinstance(exc, FailedPreconditionError):
        return Status.FAILED_PRECONDITION
    if isinstance(exc, ValueError):
        return Status.INVALID_ARGUMENT
    return Status.INTERNAL


class InFlight:
    """Counts running calls so shutdown can let them finish first."""

    def __init__(self) -> None:
        self._count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> None:
        """A call started."""
        self._count += 1
        self._idle.clear()

    def leave(self) -> None:
        """A call ended."""
        self._count -= 1
        if self._count == 0:
            self._idle.set()

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until no call runs; False when timeout passed first."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False


async def serve_unary(
    stream: Stream[Any, Any],
    method: str,
    in_flight: InFlight,
    func: Callable[[Any], Awaitable[Any]],
) -> None:
    """Receive one request, run func, send its reply or the mapped error status."""
    in_flight.enter()
    try:
        request = await stream.recv_message()
        try:
            reply = await func(request)
        except Exception as exc:  # the one place handler errors become statuses
            status = status_for(exc)
            message = str(exc) or type(exc).__name__
            if status is Status.INTERNAL:
                log.exception("%s failed", method)
            else:
                log.warning("%s failed: %s: %s", method, status.name, message)
            await stream.send_trailing_metadata(status=status, status_message=message)
            return
        await stream.send_message(reply)
        # Sent here, not by grpclib after return, so "call done" means "reply written".
        await stream.send_trailing_metadata()
    finally:
        in_flight.leave()
