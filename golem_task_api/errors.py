"""Exceptions handlers raise to choose the gRPC status of a failed call.

The server maps them once, at the gRPC boundary (`golem_task_api.statuses`):
NotFoundError -> NOT_FOUND, AlreadyExistsError -> ALREADY_EXISTS,
FailedPreconditionError -> FAILED_PRECONDITION, ResourceExhaustedError ->
RESOURCE_EXHAUSTED, any ValueError (InvalidArgumentError among them) ->
INVALID_ARGUMENT, client-caused OS errors by errno, anything else -> INTERNAL.
"""
from __future__ import annotations


class TaskApiError(Exception):
    """Base of the Task API's own errors."""


class NotFoundError(TaskApiError, LookupError):
    """The task or subtask named in the request does not exist."""


class AlreadyExistsError(TaskApiError):
    """The task or subtask to create already exists."""


class FailedPreconditionError(TaskApiError):
    """The call is valid but not in the current state (e.g. task aborted)."""


class InvalidArgumentError(TaskApiError, ValueError):
    """The request itself is wrong (a bad id, malformed JSON or protobuf)."""


class ResourceExhaustedError(TaskApiError):
    """The request is too large, or the server ran out of a resource serving it."""
