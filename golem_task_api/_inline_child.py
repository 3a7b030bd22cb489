"""Child-process main of `testutils.InlineTaskApiService`.

Usage: python -m golem_task_api._inline_child requestor|provider PORT, with
one pickled payload on stdin: the parent's sys.path (so the handler classes
import as they did in the parent), then the pickled work dir and handler
objects. Runs `entrypoint` until it shuts down.
"""
from __future__ import annotations

import pickle
import sys


def main() -> None:
    """Unpickle the payload from stdin and serve."""
    path, pickled_args = pickle.load(sys.stdin.buffer)
    sys.stdin.close()
    sys.path[:0] = [p for p in path if p not in sys.path]
    work_dir, requestor_handler, provider_handler, provider_lifecycle_handler = (
        pickle.loads(pickled_args)
    )
    from golem_task_api.server import entrypoint, run

    run(
        entrypoint(
            work_dir,
            sys.argv[1:],
            requestor_handler=requestor_handler,
            provider_handler=provider_handler,
            provider_lifecycle_handler=provider_lifecycle_handler,
        )
    )


if __name__ == "__main__":
    main()
