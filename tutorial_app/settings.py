"""The app's environment settings, checked in one place before any server or run starts.

A bad setting is the operator's mistake, found at start-up and reported as
one line naming it. Checked later, inside a handler, the same ValueError
would reach a node as INVALID_ARGUMENT: a client blamed for the server's
configuration.
"""
from __future__ import annotations

import os

import engine
from engine.cores import workers_override
from tutorial_app.provider import pool_start_policy

KERNEL_ENV = "TUTORIAL_APP_KERNEL"


class SettingError(Exception):
    """An environment setting the app cannot work with (the message names it)."""


def check_engine_settings() -> None:
    """Check TUTORIAL_APP_WORKERS, TUTORIAL_APP_KERNEL and TUTORIAL_APP_POOL_START."""
    try:
        # The setting only: what memory allows is the pool's to weigh (and
        # warn about) when it starts, and reading the cgroup files here would
        # cost every app server's start for nothing.
        workers_override()
    except ValueError as exc:
        raise SettingError(str(exc)) from None
    try:
        engine.default_kernel()
    except ValueError as exc:
        raise SettingError(f"{KERNEL_ENV}={os.environ.get(KERNEL_ENV, '')!r}: {exc}") from None
    try:
        pool_start_policy()
    except ValueError as exc:
        raise SettingError(str(exc)) from None
