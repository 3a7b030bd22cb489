"""The bounds every request is held to, checked before a handler sees it.

Ids become path components and file names; params are JSON the app
walks. Both come from the network, so both are bounded here, in one place:
ids in length and characters, requests in size, JSON in nesting depth.
"""
from __future__ import annotations

import json
from typing import Any

from golem_task_api.dirutils import is_safe_path_component
from golem_task_api.errors import InvalidArgumentError, ResourceExhaustedError

# Room for the app's own prefixes and suffixes within a 255-byte file name.
MAX_ID_BYTES = 128
# A Golem node id is a public key in hex (128 characters); room to spare,
# but not room to store megabytes per subtask.
MAX_NODE_ID_BYTES = 1024
# gRPC's default limit on a received message.
MAX_REQUEST_BYTES = 4 * 1024 * 1024
# Far deeper than any task's params need, far shallower than the recursion limit.
MAX_JSON_DEPTH = 32
# Status messages are cut to this: HTTP/2 header encoding of a long one is slow.
MAX_STATUS_MESSAGE_CHARS = 200
# Ids short enough are echoed in refusals; longer ones only by their length.
_ECHO_ID_CHARS = 64


def check_id(value: str, what: str) -> str:
    """value if it is a usable task or subtask id; InvalidArgumentError naming what otherwise."""
    # Length first, on the encoded size, before anything proportional to it.
    if len(value) > MAX_ID_BYTES or len(value.encode("utf-8", "surrogatepass")) > MAX_ID_BYTES:
        raise InvalidArgumentError(
            f"{what} is {len(value)} characters long; at most {MAX_ID_BYTES} bytes are allowed")
    if not is_safe_path_component(value):
        shown = repr(value) if len(value) <= _ECHO_ID_CHARS else f"of {len(value)} characters"
        raise InvalidArgumentError(
            f"invalid {what} {shown}: it must be non-empty, not '.' or '..', "
            "and hold no '/', '\\' or NUL")
    return value


def check_node_id(value: str) -> str:
    """value if it is a plausible opaque node id (any text up to MAX_NODE_ID_BYTES)."""
    if len(value) > MAX_NODE_ID_BYTES or len(value.encode("utf-8", "surrogatepass")) > MAX_NODE_ID_BYTES:
        raise InvalidArgumentError(
            f"opaque_node_id is {len(value)} characters long; at most {MAX_NODE_ID_BYTES} bytes are allowed")
    return value


def check_request_size(size: int, limit: int = MAX_REQUEST_BYTES) -> None:
    """ResourceExhaustedError when a request of size bytes is over limit."""
    if size > limit:
        raise ResourceExhaustedError(
            f"request of {size} bytes is over the limit of {limit} bytes")


def parse_json_object(text: str, what: str) -> dict[str, Any]:
    """text parsed as a JSON object at most MAX_JSON_DEPTH deep; InvalidArgumentError otherwise."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise InvalidArgumentError(f"{what} is nested too deeply") from None
    except ValueError as exc:
        raise InvalidArgumentError(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidArgumentError(f"{what} must be a JSON object")
    if _depth(value) > MAX_JSON_DEPTH:
        raise InvalidArgumentError(f"{what} is nested too deeply (over {MAX_JSON_DEPTH} levels)")
    return value


def _depth(value: Any) -> int:
    # Iterative: the point is to bound what recursive code would choke on.
    deepest = 0
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > MAX_JSON_DEPTH:
            return deepest
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return deepest
