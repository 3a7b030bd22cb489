"""Logging set-up for an app's entrypoint: one call, level from the command line."""
from __future__ import annotations

import logging
from collections.abc import Sequence

DEFAULT_LEVEL = logging.INFO
"""The app's log level when the command line names none."""

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class InvalidLogLevelError(ValueError):
    """A log level that is neither a level name nor a number."""


def from_arg(
    log_level_arg: str | int | None = None,
    log_level_default: int = DEFAULT_LEVEL,
    external_loggers: Sequence[str] = ("hpack", "peewee"),
    external_log_level: int = logging.INFO,
) -> None:
    """Log to stderr at ``log_level_arg`` (a name like ``"debug"`` or a number), else the default.

    ``external_loggers`` (chatty libraries: HTTP/2 header coding, SQL) are
    held at ``external_log_level`` so an app's DEBUG stays readable.
    """
    level = log_level_default if log_level_arg is None else _level(log_level_arg)
    logging.basicConfig(level=level, format=_FORMAT)
    logging.getLogger().setLevel(level)
    for name in external_loggers:
        logging.getLogger(name).setLevel(external_log_level)


def _level(arg: str | int) -> int:
    if isinstance(arg, int) and not isinstance(arg, bool):
        return arg
    if isinstance(arg, str):
        text = arg.strip()
        if text.isdigit():
            return int(text)
        level = logging.getLevelName(text.upper())
        if isinstance(level, int):
            return level
    raise InvalidLogLevelError(
        f"log level {arg!r} is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL or a number")


__all__ = ["DEFAULT_LEVEL", "InvalidLogLevelError", "from_arg"]
