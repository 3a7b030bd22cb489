"""What a run did, in one record: the table a person reads and the JSON a machine reads.

`summary.json` in the out dir and ``tutorial-app run --json`` are the same
document (`RunReport.to_json`), written whether the run finished, failed or
was interrupted; only a run whose every subtask verified says ``"ok": true``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tutorial_app.progress import format_rate

TABLE_WIDTH = 80
_ID_CHARS = 12
_DIGEST_CHARS = 24


@dataclass(frozen=True)
class SubtaskResult:
    """One verified subtask, enough to re-verify it without our code."""

    subtask_id: str
    input: str
    nonce: int
    digest: str
    seconds: float


@dataclass
class RunReport:
    """What a run did; ``ok`` only when every subtask verified and nothing went wrong."""

    ok: bool
    task_id: str
    difficulty: int
    subtasks_total: int
    out_dir: Path
    seconds: float
    hashes: int = 0
    """Nonces the providers reported trying, all subtasks together (failed ones too)."""
    subtasks: list[SubtaskResult] = field(default_factory=list)
    """In the order they verified: the table's order too."""
    failures: list[str] = field(default_factory=list)
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The summary: summary.json and ``tutorial-app run --json`` alike."""
        return {
            "ok": self.ok,
            "task_id": self.task_id,
            "difficulty": self.difficulty,
            "subtasks_total": self.subtasks_total,
            "subtasks_verified": len(self.subtasks),
            "out_dir": str(self.out_dir.absolute()),
            "seconds": round(self.seconds, 3),
            "hashes": self.hashes,
            "subtasks": [asdict(s) for s in self.subtasks],
            "failures": self.failures,
            "error": self.error,
        }


def _short(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[: chars - 1] + "…"


def format_table(report: RunReport) -> list[str]:
    """The results table and totals, each line at most `TABLE_WIDTH` columns."""
    header = ("subtask", "nonce", "digest", "seconds")
    rows = [(_short(r.subtask_id, _ID_CHARS), str(r.nonce), _short(r.digest, _DIGEST_CHARS),
             f"{r.seconds:.2f}") for r in report.subtasks]
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h)
              for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    rate = report.hashes / report.seconds if report.seconds > 0 else 0.0
    lines.append("")
    lines.append(f"{len(report.subtasks)}/{report.subtasks_total} subtasks verified in "
                 f"{report.seconds:.1f} s ({report.hashes} nonces tried, {format_rate(rate)})")
    if report.subtasks:
        lines.append("full ids, digests and inputs: summary.json in the out dir")
    lines.append(f"out dir: {report.out_dir.absolute()}")
    if report.failures:
        lines.append(f"{len(report.failures)} attempt(s) failed and were re-issued "
                     "(in full: summary.json):")
        # A failure quotes its provider's log tail (hundreds of characters):
        # the table shows the start of it, summary.json the whole text.
        lines += [_short(f"  {failure}", TABLE_WIDTH) for failure in report.failures]
    return lines
