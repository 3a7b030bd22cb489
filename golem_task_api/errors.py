"""Exceptions handlers raise to choose the gRPC status of a failed call.

The server maps them once, at the gRPC boundary: NotFoundError -> NOT_FOUND,
AlreadyExistsError -> ALREADY_EXISTS, FailedPreconditionError ->
FAILED_PRECONDITION, any ValueError -> INVALID_ARGUMENT, anything else ->
INTERNAL.
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
