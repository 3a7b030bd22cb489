"""A provider app server whose Compute answers a result the node must refuse
as a failed subtask: a path that is not a file (missing, or a directory), a
file over the result size limit (huge), or a small regular file (plain) that
a test swaps for something else just before the node opens it.

Usage: python lying_provider.py missing|directory|huge|plain|nested --work-dir DIR provider PORT
"""
from __future__ import annotations

import sys
from pathlib import Path

import golem_task_api as api

from tutorial_app.meta import MAX_RESULT_FILE_BYTES


class LyingProvider(api.ProviderAppHandler):
    def __init__(self, how: str) -> None:
        self.how = how

    async def compute(self, task_work_dir: Path, subtask_id: str, subtask_params: dict) -> Path:
        if self.how == "directory":
            (task_work_dir / "result-dir").mkdir()
            return Path("result-dir")
        if self.how == "huge":
            (task_work_dir / "huge.zip").write_bytes(b"\0" * (MAX_RESULT_FILE_BYTES + 1))
            return Path("huge.zip")
        if self.how == "nested":
            (task_work_dir / "out").mkdir()
            (task_work_dir / "out" / "result.zip").write_bytes(b"not a zip")
            return Path("out/result.zip")
        if self.how == "plain":
            (task_work_dir / "result.zip").write_bytes(b"not a zip")
            return Path("result.zip")
        return Path("no-such-result.zip")

    async def run_benchmark(self, work_dir: Path) -> float:
        return 1.0


if __name__ == "__main__":
    how, work_dir = sys.argv[1], Path(sys.argv[3])
    api.run(api.entrypoint(work_dir, sys.argv[4:], provider_handler=LyingProvider(how)))
