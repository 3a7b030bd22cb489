"""A provider app server whose Compute answers a result path that is not a
file (missing, or a directory): the node must treat it as a failed subtask.

Usage: python lying_provider.py missing|directory --work-dir DIR provider PORT
"""
from __future__ import annotations

import sys
from pathlib import Path

import golem_task_api as api


class LyingProvider(api.ProviderAppHandler):
    def __init__(self, how: str) -> None:
        self.how = how

    async def compute(self, task_work_dir: Path, subtask_id: str, subtask_params: dict) -> Path:
        if self.how == "directory":
            (task_work_dir / "result-dir").mkdir()
            return Path("result-dir")
        return Path("no-such-result.zip")

    async def run_benchmark(self, work_dir: Path) -> float:
        return 1.0


if __name__ == "__main__":
    how, work_dir = sys.argv[1], Path(sys.argv[3])
    api.run(api.entrypoint(work_dir, sys.argv[4:], provider_handler=LyingProvider(how)))
