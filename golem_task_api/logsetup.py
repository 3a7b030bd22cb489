"""Logging set-up of an app server process."""
from __future__ import annotations

import logging
import os
import sys
from typing import Optional

from golem_task_api import constants

log = logging.getLogger("golem_task_api.server")

LOG_FORMAT = "%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"


def parse_level(name: str) -> Optional[int]:
    """The logging level called name (any case), or None when there is none."""
    level = logging.getLevelName(name.strip().upper())
    return level if isinstance(level, int) else None


def configure_logging(level_name: Optional[str] = None) -> None:
    """Log to stderr unless the app already set logging up.

    The level is level_name, else $GOLEM_TASK_API_LOG_LEVEL, else INFO.
    """
    root = logging.getLogger()
    if root.handlers:
        return
    if level_name is None:
        level_name = os.environ.get(constants.LOG_LEVEL_ENV_VAR, "INFO")
    level = parse_level(level_name)
    logging.basicConfig(stream=sys.stderr, level=level or logging.INFO, format=LOG_FORMAT)
    if level is None:
        log.warning("unknown log level %r; using INFO", level_name)
