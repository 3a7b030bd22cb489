"""The `tutorial-app` command as a user runs it: a real process tree."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

import engine
from golem_task_api import envs
from tutorial_app import meta

from app_testing import check_out_dir

CLI = [sys.executable, "-m", "tutorial_app.cli"]


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.timeout(90)
def test_run_json_summary_verifies(tmp_path: Path, input_file: Path) -> None:
    out = tmp_path / "out"
    done = cli("run", str(input_file), "--difficulty", "10", "--subtasks", "3",
               "--providers", "2", "--out", str(out), "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["ok"] is True
    assert len(summary["subtasks"]) == 3
    text = input_file.read_text(encoding="utf-8")
    for sub in summary["subtasks"]:
        assert set(sub) >= {"subtask_id", "input", "nonce", "digest", "seconds"}
        assert sub["input"].startswith(text) and sub["input"] != text
        engine.verify(sub["input"], 10, sub["digest"], sub["nonce"])
    check_out_dir(out, 10, 3)


@pytest.mark.timeout(90)
def test_run_prints_progress_and_table(tmp_path: Path, input_file: Path) -> None:
    done = cli("run", str(input_file), "-d", "8", "-n", "2", "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert "2/2 verified" in done.stderr
    assert "subtask" in done.stdout and "nonce" in done.stdout and "digest" in done.stdout
    assert "2/2 subtasks verified" in done.stdout
    assert str((tmp_path / "out").resolve()) in done.stdout
    assert max(len(line) for line in done.stdout.splitlines()) <= 80
    assert max(len(line) for line in done.stderr.splitlines()) <= 80


@pytest.mark.timeout(60)
@pytest.mark.parametrize("signum, again, pool_start", [
    (signal.SIGINT, False, "eager"), (signal.SIGTERM, False, "eager"), (signal.SIGINT, True, "eager"),
    (signal.SIGINT, False, "none")], ids=["INT", "TERM", "INT-twice", "INT-threads"])
def test_interrupt_stops_every_process(
        tmp_path: Path, input_file: Path, signum: int, again: bool, pool_start: str) -> None:
    # Difficulty 256 never finishes: the run only ends through the signal.
    runner = subprocess.Popen(
        [*CLI, "run", str(input_file), "-d", "256", "-n", "2", "-p", "2", "-w", "2",
         "--out", str(tmp_path / "out")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "TUTORIAL_APP_POOL_START": pool_start, "TMPDIR": str(tmp_path)},
    )
    try:
        tree = psutil.Process(runner.pid)
        deadline = time.monotonic() + 30
        # The fork server, the requestor and 2 providers; with pools, each
        # provider's 2 engine workers too (by default they search on threads).
        while len(tree.children(recursive=True)) < (8 if pool_start == "eager" else 4) or (
                pool_start == "none" and len(list(tmp_path.glob("*/providers/*/*.progress"))) < 2):
            assert runner.poll() is None, runner.communicate()
            assert time.monotonic() < deadline, "the run never got to computing"
            time.sleep(0.05)
        time.sleep(0.3)  # let both computes start
        descendants = tree.children(recursive=True)
        runner.send_signal(signum)
        if again:
            # An impatient user presses Ctrl-C again while the servers shut down.
            time.sleep(0.05)
            runner.send_signal(signum)
        stdout, stderr = runner.communicate(timeout=20)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.communicate()
    assert runner.returncode == 128 + signum, stderr
    assert "every app server was stopped" in stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["ok"] is False
    assert summary["error"].startswith(f"interrupted by {signal.Signals(signum).name}")
    gone, alive = psutil.wait_procs(descendants, timeout=5)
    for survivor in alive:  # do not let a failure here leak into later tests
        survivor.kill()
    assert not alive, [p.cmdline() for p in alive]


def test_descriptor_is_the_app_definition() -> None:
    done = cli("descriptor")
    assert done.returncode == 0, done.stderr
    descriptor = json.loads(done.stdout)
    assert descriptor["name"] == meta.APP_NAME
    assert descriptor["version"] == meta.VERSION
    assert descriptor["requestor_env"] == envs.DOCKER_CPU_ENV_ID == "docker_cpu"
    assert descriptor["requestor_prereq"] == {"image": meta.DOCKER_IMAGE, "tag": meta.DOCKER_TAG}
    assert descriptor["market_strategy"] == "brass"
    assert descriptor["max_benchmark_score"] == engine.BENCHMARK_MAX_SCORE > 0
    for field in ("description", "author", "license"):
        assert isinstance(descriptor[field], str) and descriptor[field]


@pytest.mark.timeout(30)
def test_benchmark_prints_a_score_within_the_maximum() -> None:
    done = cli("benchmark", "--workers", "1")
    assert done.returncode == 0, done.stderr
    number, unit = done.stdout.split()
    assert unit == "MH/s"
    assert 0 < float(number) <= engine.BENCHMARK_MAX_SCORE


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "{missing}", "-d", "8"], "is not a readable file"),
        (["run", "{binary}", "-d", "8"], "is not UTF-8"),
        (["run", "{input}", "-d", "257"], "must be in [0, 256]"),
        (["run", "{input}", "-d", "x"], "whole number"),
        (["run", "{input}"], "--difficulty"),
        (["run", "{input}", "-d", "8", "-n", "0"], "at least 1"),
        (["run", "{input}", "-d", "8", "--requestor", "localhost:5"], "go together"),
        (["run", "{input}", "-d", "8", "--provider", "nohost"], "HOST:PORT"),
        (["run", "{input}", "-d", "8", "--out", "{input}"], "not a directory"),
        (["frobnicate"], "invalid choice"),
        (["run", "{input}", "-d", "8", "-w", "5000"], "-w: workers must be a positive integer up to"),
        (["run", "{input}", "-d", "8", "-w", "0"], "-w: workers must be a positive integer up to"),
        (["benchmark", "-w", "5000"], "-w: workers must be a positive integer up to"),
    ],
)
def test_bad_arguments_are_refused_clearly(tmp_path: Path, input_file: Path, args: list[str], message: str) -> None:
    binary = tmp_path / "binary.bin"
    binary.write_bytes(b"\xff\xfe\x00bad")
    paths = {"missing": str(tmp_path / "nope.txt"), "binary": str(binary), "input": str(input_file)}
    before = sorted(os.listdir(tmp_path))
    done = cli(*[a.format(**paths) for a in args])
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert sorted(os.listdir(tmp_path)) == before


def _env_with_tmpdir(tmp: Path) -> dict[str, str]:
    tmp.mkdir()
    return {**os.environ, "TMPDIR": str(tmp)}


@pytest.mark.parametrize("case", ["too-large", "too-many-subtasks"])
def test_input_the_requestor_would_refuse_is_refused_before_anything_starts(
    tmp_path: Path, input_file: Path, case: str,
) -> None:
    if case == "too-large":
        big = tmp_path / "big.txt"
        big.write_bytes(b"a" * (meta.MAX_INPUT_BYTES + 1))
        args, message = [str(big), "-d", "1", "-n", "1"], "larger than"
    else:
        args, message = [str(input_file), "-d", "1", "-n", str(meta.MAX_PARTS + 1)], "at most"
    scratch = tmp_path / "tmp"
    done = subprocess.run([*CLI, "run", *args, "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=60, env=_env_with_tmpdir(scratch))
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()
    assert list(scratch.iterdir()) == []  # no work dir was made, no server started


@pytest.mark.timeout(60)
def test_requestor_killed_mid_run_fails_clearly_and_leaves_nothing(tmp_path: Path, input_file: Path) -> None:
    scratch = tmp_path / "tmp"
    runner = subprocess.Popen(
        [*CLI, "run", str(input_file), "-d", "256", "-n", "1", "-p", "1", "-w", "1",
         "--out", str(tmp_path / "out")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env_with_tmpdir(scratch),
    )
    try:
        tree = psutil.Process(runner.pid)
        deadline = time.monotonic() + 30
        # Until a provider computes (its progress file appears).
        while not list(scratch.glob("*/providers/*/*.progress")):
            assert runner.poll() is None, runner.communicate()
            assert time.monotonic() < deadline, "the run never got to computing"
            time.sleep(0.05)
        descendants = tree.children(recursive=True)
        # The requestor is forked (its command line is the node's): it is the
        # process writing requestor.log.
        (requestor,) = [p for p in descendants if _writes(p, "requestor.log")]
        requestor.kill()
        stdout, stderr = runner.communicate(timeout=20)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.communicate()
    assert runner.returncode == 1, stderr
    assert "requestor app server exited" in stderr
    assert "Traceback" not in stderr
    gone, alive = psutil.wait_procs(descendants, timeout=5)
    assert not alive, [p.pid for p in alive]
    assert list(scratch.iterdir()) == []


@pytest.mark.timeout(90)
def test_json_is_summary_json(tmp_path: Path, input_file: Path) -> None:
    out = tmp_path / "out"
    done = cli("run", str(input_file), "-d", "4", "-n", "3", "--out", str(out), "--json")
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert printed == json.loads((out / "summary.json").read_text())
    assert printed["ok"] is True and printed["error"] is None and printed["failures"] == []
    assert printed["subtasks_total"] == 3
    assert printed["out_dir"] == str(out.resolve())
    table = cli  # the table lists subtasks in the summary's order (verification order)
    del table


def _pty_run(args: list[str], seconds: float) -> str:
    """What a person sees in a terminal during the first ``seconds`` of a command."""
    import pty
    import select
    controller, terminal = pty.openpty()
    proc = subprocess.Popen([*CLI, *args], stdin=terminal, stdout=terminal, stderr=terminal,
                            start_new_session=True)
    os.close(terminal)
    seen = b""
    try:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([controller], [], [], left)
            if ready:
                try:
                    seen += os.read(controller, 65536)
                except OSError:
                    break
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        os.close(controller)
    return seen.decode("utf-8", "replace")


@pytest.mark.timeout(60)
def test_live_rate_within_three_seconds_under_a_terminal(tmp_path: Path, input_file: Path) -> None:
    # Difficulty 60 cannot finish here: any rate shown comes from the live reports.
    screen = _pty_run(["run", str(input_file), "-d", "60", "-n", "2", "-w", "1",
                       "--out", str(tmp_path / "out")], seconds=3.0)
    import re
    rates = re.findall(r"0/2 verified\s+\S+\s+([0-9.]+) (H|kH|MH|GH)/s", screen)
    assert any(float(value) > 0 for value, _ in rates), screen
    assert "ETA" in screen, screen


def test_absurd_difficulty_is_warned_about(tmp_path: Path, input_file: Path) -> None:
    screen = _pty_run(["run", str(input_file), "-d", "256", "-n", "1", "-w", "1",
                       "--out", str(tmp_path / "out")], seconds=1.0)
    assert "warning: difficulty 256" in screen and "years" in screen, screen


@pytest.mark.parametrize(
    "env, args, names",
    [
        ({"TUTORIAL_APP_WORKERS": "abc"}, ["run", "{input}", "-d", "4"], "TUTORIAL_APP_WORKERS"),
        ({"TUTORIAL_APP_WORKERS": "abc"}, ["benchmark"], "TUTORIAL_APP_WORKERS"),
        ({"TUTORIAL_APP_KERNEL": "foo"}, ["run", "{input}", "-d", "4"], "TUTORIAL_APP_KERNEL"),
        ({"TUTORIAL_APP_KERNEL": "foo"}, ["benchmark"], "TUTORIAL_APP_KERNEL"),
        ({"TUTORIAL_APP_LOG_LEVEL": "loud"}, ["run", "{input}", "-d", "4"], "TUTORIAL_APP_LOG_LEVEL"),
        ({}, ["run", "{input}", "-d", "4", "--subtask-timeout", "-1"], "--subtask-timeout"),
    ],
)
def test_bad_settings_give_one_line_and_no_traceback(
    tmp_path: Path, input_file: Path, env: dict[str, str], args: list[str], names: str,
) -> None:
    done = subprocess.run([*CLI, *[a.format(input=input_file) for a in args]], capture_output=True,
                          text=True, timeout=60, env={**os.environ, **env}, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and names in errors[0], done.stderr
    assert not (tmp_path / "tutorial-app-out").exists()


def test_provider_dir_with_foreign_files_is_refused_and_left_intact(tmp_path: Path, input_file: Path) -> None:
    provider_dir = tmp_path / "precious"
    provider_dir.mkdir()
    (provider_dir / "thesis.tex").write_text("years of work")
    (provider_dir / "subtask_inputs").mkdir()
    (provider_dir / "subtask_inputs" / "notes.txt").write_text("mine")
    (provider_dir / "task_api_server.crt").write_text("cert")
    requestor_dir = tmp_path / "requestor"
    requestor_dir.mkdir()
    before = sorted((p.relative_to(provider_dir), p.read_bytes() if p.is_file() else b"")
                    for p in provider_dir.rglob("*"))
    done = cli("run", str(input_file), "-d", "4", "--out", str(tmp_path / "out"),
               "--requestor", "127.0.0.1:1", "--requestor-dir", str(requestor_dir),
               "--provider", "127.0.0.1:2", "--provider-dir", str(provider_dir))
    assert done.returncode == 2, done.stderr
    assert "thesis.tex" in done.stderr and "did not make" in done.stderr
    assert "Traceback" not in done.stderr
    after = sorted((p.relative_to(provider_dir), p.read_bytes() if p.is_file() else b"")
                   for p in provider_dir.rglob("*"))
    assert after == before


@pytest.mark.timeout(90)
def test_verbose_after_the_subcommand_shows_server_logs(tmp_path: Path, input_file: Path) -> None:
    done = cli("run", str(input_file), "-d", "4", "-n", "1", "--out", str(tmp_path / "out"), "-v")
    assert done.returncode == 0, done.stderr
    assert "[requestor] " in done.stderr
    assert "[provider 0] " in done.stderr and "searching at difficulty 4" in done.stderr


@pytest.mark.timeout(90)
def test_log_level_setting_shows_server_lines_at_that_level(tmp_path: Path, input_file: Path) -> None:
    quiet = subprocess.run([*CLI, "run", str(input_file), "-d", "2", "-n", "1", "--out", str(tmp_path / "a")],
                           capture_output=True, text=True, timeout=60)
    debug = subprocess.run([*CLI, "run", str(input_file), "-d", "2", "-n", "1", "--out", str(tmp_path / "b")],
                           capture_output=True, text=True, timeout=60,
                           env={**os.environ, "TUTORIAL_APP_LOG_LEVEL": "debug"})
    assert quiet.returncode == debug.returncode == 0, debug.stderr
    assert "[provider" not in quiet.stderr
    assert "[provider 0]" in debug.stderr and " DEBUG " in debug.stderr


@pytest.mark.timeout(90)
def test_oversubscription_warns_and_keep_work_dirs_says_where(tmp_path: Path, input_file: Path) -> None:
    done = subprocess.run([*CLI, "run", str(input_file), "-d", "2", "-n", "1", "-p", "3", "-w", "5",
                           "--out", str(tmp_path / "out"), "--keep-work-dirs"],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "TUTORIAL_APP_WORKERS": "2", "TMPDIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert "--providers 3 is more than --subtasks 1" in done.stderr
    assert "1 provider(s) x 5 worker(s) on 2 usable core(s): they take turns" in done.stderr
    kept = [line for line in done.stderr.splitlines() if line.startswith("work dirs and logs kept in ")]
    assert len(kept) == 1
    where = Path(kept[0].removeprefix("work dirs and logs kept in "))
    assert (where / "requestor.log").is_file() and where.parent == tmp_path


def _writes(process: psutil.Process, name: str) -> bool:
    try:
        return any(Path(f.path).name == name for f in process.open_files())
    except psutil.NoSuchProcess:
        return False
