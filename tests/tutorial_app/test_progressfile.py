"""Live progress between provider and node: the file, the meter, the bar."""
from __future__ import annotations

import io
import os
import threading
import time
from pathlib import Path

import pytest

from tutorial_app.meter import WorkMeter
from tutorial_app.progress import LINE_WIDTH, ProgressBar, RunProgress, format_duration
from tutorial_app.progressfile import (
    ProgressReporter, SearchProgress, progress_path, read_progress, write_progress,
)
from tutorial_app.report import TABLE_WIDTH, RunReport, SubtaskResult, format_table


def test_progress_round_trip_and_no_temp_left(tmp_path: Path) -> None:
    path = progress_path(tmp_path, "s1")
    write_progress(path, SearchProgress(123, 0.5, False))
    assert read_progress(path) == SearchProgress(123, 0.5, False)
    assert [p.name for p in tmp_path.iterdir()] == ["s1.progress"]


@pytest.mark.parametrize("content", [b"", b"{", b"[]", b'{"hashes": -1, "seconds": 1}',
                                     b'{"hashes": "9", "seconds": 1}', b'{"hashes": 1}',
                                     b'{"hashes": 1, "seconds": 1, "x": "' + b"a" * 5000 + b'"}'])
def test_untrusted_progress_counts_as_none(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "s.progress"
    path.write_bytes(content)
    assert read_progress(path) is None


def test_reporter_throttles_but_always_writes_the_final_count(tmp_path: Path) -> None:
    reporter = ProgressReporter(tmp_path / "s.progress", interval=60)
    reporter.update(1, 0.1)
    reporter.update(2, 0.2)
    assert read_progress(tmp_path / "s.progress") == SearchProgress(1, 0.1, False)
    reporter.finish(3, 0.3)
    assert read_progress(tmp_path / "s.progress") == SearchProgress(3, 0.3, True)


def test_meter_sums_providers_and_rates_over_its_window(tmp_path: Path) -> None:
    meter = WorkMeter(window=10)
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    meter.watch("s1", a)
    meter.watch("s2", b)
    assert meter.sample() == 0.0
    time.sleep(0.2)
    write_progress(progress_path(a, "s1"), SearchProgress(1000, 1.0, False))
    write_progress(progress_path(b, "s2"), SearchProgress(3000, 1.0, False))
    rate = meter.sample()
    assert meter.hashes == 4000
    assert 4000 / 1.0 < rate < 4000 / 0.15  # both providers, over the time since the first sample
    assert meter.provider_rate() == pytest.approx(2000)
    write_progress(progress_path(a, "s1"), SearchProgress(1500, 1.5, True))
    assert meter.finish("s1") == 1500
    meter.sample()
    assert meter.hashes == 4500


def test_bar_fits_80_columns_and_shows_rate_and_eta() -> None:
    stream = io.StringIO()
    bar = ProgressBar(100_000, stream)
    bar.update(RunProgress(99_999, 100_000, 123.4e6, 12345.0, "retrying: " + "x" * 100))
    line = stream.getvalue().strip()
    assert len(line) <= LINE_WIDTH
    assert "99999/100000 verified" in line and "123.4 MH/s" in line and "ETA 3:25:45" in line


def test_durations_for_people() -> None:
    assert format_duration(65) == "01:05"
    assert format_duration(3 * 86400) == "3 days"
    assert format_duration(2**256 / 1e7).endswith("years")


def test_table_fits_80_columns() -> None:
    sub = SubtaskResult("f" * 32, "text", 123456789012, "0" * 64, 12.5)
    report = RunReport(True, "t" * 32, 30, 1, Path("/tmp/out"), 12.5, 10**9, [sub], [])
    lines = format_table(report)
    assert max(map(len, lines)) <= 80
    assert "123456789012" in lines[2]


def _read_in_thread(path: Path) -> tuple[threading.Thread, list[SearchProgress | None]]:
    out: list[SearchProgress | None] = []
    thread = threading.Thread(target=lambda: out.append(read_progress(path)), daemon=True)
    thread.start()
    thread.join(2)
    return thread, out


def test_a_fifo_progress_file_is_no_report_and_does_not_block(tmp_path: Path) -> None:
    path = tmp_path / "s.progress"
    os.mkfifo(path)
    thread, out = _read_in_thread(path)
    if thread.is_alive():  # blocked in open(): unblock it before failing
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        thread.join(2)
        pytest.fail("read_progress blocked on a FIFO")
    assert out == [None]


def test_a_symlinked_progress_file_is_not_followed(tmp_path: Path) -> None:
    real = tmp_path / "real"
    write_progress(real, SearchProgress(5, 1.0, False))
    (tmp_path / "s.progress").symlink_to(real)
    assert read_progress(tmp_path / "s.progress") is None


def test_long_failures_are_cut_to_the_table_width_and_kept_whole_in_the_summary() -> None:
    failure = "3e78f7ea: provider 0 failed: the connection broke; its log ends: " + "x" * 400
    report = RunReport(ok=True, task_id="t", difficulty=4, subtasks_total=1, out_dir=Path("out"),
                       seconds=1.0, failures=[failure, "short one"])
    lines = format_table(report)
    assert max(len(line) for line in lines) <= TABLE_WIDTH
    assert "  short one" in lines
    (cut,) = [line for line in lines if "provider 0 failed" in line]
    assert cut.endswith("…") and failure.startswith(cut.strip()[:-1])
    assert report.to_json()["failures"][0] == failure
