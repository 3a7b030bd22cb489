"""apputils.start_logging: levels from the command line, quiet libraries."""
from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from golem_task_api.apputils import start_logging


@pytest.fixture(autouse=True)
def _restore_levels() -> Iterator[None]:
    names = ["", "hpack", "peewee", "chatty"]
    before = {n: logging.getLogger(n).level for n in names}
    yield
    for n, level in before.items():
        logging.getLogger(n).setLevel(level)


def test_level_from_argument_and_external_loggers() -> None:
    start_logging.from_arg("debug")
    assert logging.getLogger().level == logging.DEBUG
    assert logging.getLogger("hpack").level == logging.INFO
    assert logging.getLogger("peewee").level == logging.INFO
    start_logging.from_arg("15", external_loggers=["chatty"], external_log_level=logging.ERROR)
    assert logging.getLogger().level == 15
    assert logging.getLogger("chatty").level == logging.ERROR


def test_default_level() -> None:
    assert start_logging.DEFAULT_LEVEL == logging.INFO
    start_logging.from_arg(None, log_level_default=logging.WARNING)
    assert logging.getLogger().level == logging.WARNING


def test_unknown_level_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="loud"):
        start_logging.from_arg("loud")
