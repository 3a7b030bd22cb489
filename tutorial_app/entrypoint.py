"""The command a Golem node runs in the app's image.

    python -m tutorial_app.entrypoint requestor|provider PORT [--work-dir DIR]

The work dir defaults to ``/golem/work`` (where the node mounts it). Logs go
to stderr; ``TUTORIAL_APP_LOG_LEVEL`` sets the level (default INFO).
"""
from __future__ import annotations

import argparse
import functools
import os
from collections.abc import Sequence
from pathlib import Path

import golem_task_api as api
from golem_task_api.argv import parse_port
from golem_task_api.logsetup import configure_logging, parse_level
from golem_task_api.ssl import TlsFilesError

from tutorial_app.provider import ProviderHandler, ProviderLifecycle
from tutorial_app.requestor import RequestorHandler
from tutorial_app.settings import SettingError, check_engine_settings
from tutorial_app.workdir import WorkDirError, check_work_dir

DEFAULT_WORK_DIR = Path("/") / api.constants.WORK_DIR
LOG_LEVEL_ENV = "TUTORIAL_APP_LOG_LEVEL"


@functools.cache
def build_parser() -> argparse.ArgumentParser:
    """The entrypoint's command line; built once per process (parsing leaves it as it was).

    The fork server builds it before it forks: every app server it starts
    then parses its argv without building a parser (1.5 ms of CPU each)."""
    parser = argparse.ArgumentParser(
        prog="python -m tutorial_app.entrypoint",
        description="Serve the tutorial app's requestor or provider over the Golem Task API.")
    parser.add_argument("role", choices=("requestor", "provider"), help="which app server to run")
    parser.add_argument("port", type=_port, help="TCP port to listen on (1-65535)")
    parser.add_argument(
        "--work-dir", type=Path, default=DEFAULT_WORK_DIR,
        help=f"the app's work dir (default: {DEFAULT_WORK_DIR})")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the command line, set up logging and serve until shut down."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        check_work_dir(args.work_dir)
    except WorkDirError as exc:
        # One line naming the directory and our uid, before SQLite says "unable to open".
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    level_name = os.environ.get(LOG_LEVEL_ENV, "INFO")
    if parse_level(level_name) is None:
        parser.error(f"{LOG_LEVEL_ENV}={level_name.upper()!r} is not a logging level")
    try:
        check_engine_settings()
    except SettingError as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    configure_logging(level_name)
    try:
        api.run(serve(args.role, args.port, args.work_dir))
    except TlsFilesError as exc:
        # One line naming the file, not a traceback: the operator has a file to fix.
        parser.exit(2, f"{parser.prog}: error: {exc}\n")


async def serve(role: str, port: int, work_dir: Path) -> None:
    """Run one app server in ``work_dir`` until it shuts down."""
    lifecycle = ProviderLifecycle()
    await api.entrypoint(
        work_dir,
        [role, str(port)],
        requestor_handler=RequestorHandler(),
        provider_handler=ProviderHandler(lifecycle),
        provider_lifecycle_handler=lifecycle,
    )


def _port(text: str) -> int:
    try:
        return parse_port(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


if __name__ == "__main__":
    main()
