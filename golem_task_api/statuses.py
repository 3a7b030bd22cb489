"""The one place where exceptions become gRPC statuses.

Every RPC of both servicers runs through `serve_unary`: it receives the
request, runs the call and sends either the reply or the status its
exception maps to (`status_for`); the server logs the failure and keeps
serving.
"""
from __future__ import annotations

import asyncio
import errno
import logging
import re
from typing import Any, Awaitable, Callable

from grpclib.const import Status
from grpclib.server import Stream

from golem_task_api.bounds import MAX_REQUEST_BYTES, MAX_STATUS_MESSAGE_CHARS
from golem_task_api.errors import (
    AlreadyExistsError,
    FailedPreconditionError,
    NotFoundError,
    ResourceExhaustedError,
)
from golem_task_api.grpcserver import receive_request

log = logging.getLogger("golem_task_api.server")



# Errnos that say the server ran out of something, not that it is broken.
_EXHAUSTED_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EMFILE, errno.ENFILE, errno.ENOMEM}
# Errnos a client causes by the names it chooses (ids are path components).
_CLIENT_NAME_ERRNOS = {errno.ENAMETOOLONG, errno.ENOTDIR, errno.EISDIR, errno.EEXIST}

# The directories of an absolute path inside a message: a status must not
# tell the caller where the server keeps its files.
_DIRECTORIES = re.compile(r"(?<![\w.])/(?:[^/\s'\":]+/)+")
# Messages are cut to this before the regex runs, so its cost stays bounded.
_SCRUB_CHARS = 4 * MAX_STATUS_MESSAGE_CHARS


def status_for(exc: BaseException) -> Status:
    """The gRPC status an exception of a call is reported with."""
    if isinstance(exc, NotFoundError):
        return Status.NOT_FOUND
    if isinstance(exc, AlreadyExistsError):
        return Status.ALREADY_EXISTS
    if isinstance(exc, FailedPreconditionError):
        return Status.FAILED_PRECONDITION
    if isinstance(exc, (ResourceExhaustedError, MemoryError)):
        return Status.RESOURCE_EXHAUSTED
    if isinstance(exc, ValueError):
        return Status.INVALID_ARGUMENT
    if isinstance(exc, OSError):
        if exc.errno in _EXHAUSTED_ERRNOS:
            return Status.RESOURCE_EXHAUSTED
        if exc.errno == errno.ENOENT:
            return Status.NOT_FOUND
        if exc.errno in _CLIENT_NAME_ERRNOS:
            return Status.INVALID_ARGUMENT
    return Status.INTERNAL


def client_message(exc: BaseException) -> str:
    """What the caller is told about exc: short, and without the server's paths."""
    if isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror
        if exc.filename is not None:
            name = str(exc.filename)[-_SCRUB_CHARS:].rstrip("/").rsplit("/", 1)[-1]
            text = f"{text}: {name!r}"
    else:
        text = str(exc)[:_SCRUB_CHARS] or type(exc).__name__
    text = _DIRECTORIES.sub("", text)
    if len(text) > MAX_STATUS_MESSAGE_CHARS:
        text = text[: MAX_STATUS_MESSAGE_CHARS - 3] + "..."
    return text


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
    """Receive one bounded request, run func, send its reply or the mapped error status."""
    in_flight.enter()
    try:
        try:
            request = await receive_request(stream, MAX_REQUEST_BYTES)
            reply = await func(request)
        except Exception as exc:  # the one place errors become statuses
            status = status_for(exc)
            message = client_message(exc)
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
