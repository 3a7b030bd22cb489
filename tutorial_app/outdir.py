"""The out dir of a run: results, the exact inputs they answer, and summary.json.

One out dir holds one run. A directory that already holds a run's results is
refused before anything starts, so a second run never replaces (or mixes
with) the first one's results.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from tutorial_app.files import write_atomically
from tutorial_app.report import RunReport

SUMMARY = "summary.json"
RESULTS = "results"
INPUTS = "inputs"


class OutDirError(ValueError):
    """The out dir cannot take this run's results."""


def check_out_dir(out: Path) -> None:
    """`OutDirError` unless ``out`` can take a new run: missing, or holding no earlier run."""
    if out.exists() and not out.is_dir():
        raise OutDirError(f"--out {out} exists and is not a directory")
    earlier = [name for name in (SUMMARY, RESULTS, INPUTS) if (out / name).exists()]
    if earlier:
        raise OutDirError(
            f"--out {out} already holds a run ({', '.join(earlier)}); its results are kept:"
            " give another --out, or move it away")
    # Fail before any work, not at the first result: a container's bind-mounted
    # out dir is often owned by another uid.
    absolute = out.absolute()
    existing = next(p for p in (absolute, *absolute.parents) if p.exists())
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutDirError(f"--out {out}: {existing} is not writable by uid {os.getuid()}")


class OutDir:
    """Where one run's results go; created on first use."""

    def __init__(self, path: Path) -> None:
        self.path = path.absolute()

    def save_result(self, subtask_id: str, result_zip: Path, text: str) -> None:
        """Keep a verified result and the exact text it answers."""
        results = self.path / RESULTS
        inputs = self.path / INPUTS
        results.mkdir(parents=True, exist_ok=True)
        inputs.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(result_zip, results / f"{subtask_id}.zip")
        write_atomically(inputs / f"{subtask_id}.txt", text.encode("utf-8"), durable=False)

    def write_summary(self, report: RunReport) -> Path:
        """Write summary.json (replacing this run's earlier one in one rename)."""
        self.path.mkdir(parents=True, exist_ok=True)
        target = self.path / SUMMARY
        write_atomically(target, (json.dumps(report.to_json(), indent=2) + "\n").encode(), durable=False)
        return target

