"""The command line of an app server: `requestor|provider [PORT]`."""
from __future__ import annotations

from typing import Sequence

from golem_task_api import constants

ROLES = ("requestor", "provider")


def parse_port(text: str, allow_zero: bool = False) -> int:
    """A TCP port number from text; ValueError naming the text otherwise."""
    try:
        port = int(str(text).strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a port number") from None
    lowest = 0 if allow_zero else 1
    if not lowest <= port <= 65535:
        raise ValueError(f"{port} is not a port number ({lowest}-65535)")
    return port


def default_port(role: str) -> int:
    """The port a role listens on when none is given."""
    if role == "requestor":
        return constants.DEFAULT_REQUESTOR_PORT
    return constants.DEFAULT_PROVIDER_PORT


def parse_argv(argv: Sequence[str]) -> tuple[str, int]:
    """Split `[requestor|provider, PORT]` into the role and the port number."""
    args = [str(a) for a in argv]
    if not args or args[0] not in ROLES:
        raise ValueError(f"usage: requestor|provider [PORT]; got {args!r}")
    role = args[0]
    if len(args) > 2:
        raise ValueError(f"usage: {role} [PORT]; got {args!r}")
    port = parse_port(args[1], allow_zero=True) if len(args) == 2 else default_port(role)
    return role, port
