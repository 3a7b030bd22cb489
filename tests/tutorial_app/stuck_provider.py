"""A provider app server whose compute never finishes: a stand-in for a
provider that dies mid-subtask (the test kills it once compute has started).

Usage: python stuck_provider.py --work-dir DIR provider PORT
"""
from __future__ import annotations

import sys
import threading
from pathlib import Path

import golem_task_api as api

STARTED_MARKER = "compute-started"


class StuckProvider(api.ProviderAppHandler):
    async def compute(self, task_work_dir: Path, subtask_id: str, subtask_params: dict) -> Path:
        (task_work_dir / STARTED_MARKER).write_text(subtask_id)
        await api.threading.Executor.run(threading.Event().wait)
        raise AssertionError("unreachable")

    async def run_benchmark(self, work_dir: Path) -> float:
        return 1.0


if __name__ == "__main__":
    work_dir = Path(sys.argv[2])
    api.run(api.entrypoint(work_dir, sys.argv[3:], provider_handler=StuckProvider()))
