"""docker-compose.yml for real: `up --abort-on-container-exit --exit-code-from node`."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

import dockerutil
import engine
from tutorial_app.archive import read_single_member
from tutorial_app.result import parse_result

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
INPUT_TEXT = (REPO / "examples" / "input.txt").read_text(encoding="utf-8")
IMAGE_REPO = "tutorial-app"
# The uid the image (and so every service) runs as.
IMAGE_UID = 1000
DIFFICULTY = 10
SUBTASKS = 3
UP_TIMEOUT = 150.0
CLIS = {"docker-compose": ("docker-compose",), "docker compose": ("docker", "compose")}


def _cli_problem(cli: tuple[str, ...]) -> str | None:
    if shutil.which(cli[0]) is None:
        return f"no `{cli[0]}` on PATH"
    probe = subprocess.run([*cli, "version"], capture_output=True, text=True, timeout=30, check=False)
    if probe.returncode != 0:
        said = (probe.stderr.strip().splitlines() or ["no output"])[0]
        return f"`{' '.join(cli)}` is not installed ({said[:200]})"
    return None


@dataclass
class Stack:
    """One compose project of docker-compose.yml, with its own out dir."""

    cli: tuple[str, ...]
    project: str
    out_dir: Path
    env: dict[str, str]

    def command(self, *args: str) -> list[str]:
        return [*self.cli, "--file", str(COMPOSE_FILE), "--project-name", self.project, *args]

    def up_command(self) -> list[str]:
        return self.command("up", "--abort-on-container-exit", "--exit-code-from", "node")

    def run(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*args), env=self.env, capture_output=True, text=True,
            timeout=timeout, check=False)

    def leftovers(self) -> list[str]:
        """Containers and volumes of this project still present."""
        label = f"label=com.docker.compose.project={self.project}"
        containers = dockerutil.docker("ps", "-aq", "--filter", label).stdout.split()
        volumes = dockerutil.docker("volume", "ls", "-q", "--filter", label).stdout.split()
        return containers + volumes


def _make_stack(cli_name: str, image: str, tmp_path: Path) -> Iterator[Stack]:
    cli = CLIS[cli_name]
    problem = _cli_problem(cli)
    if problem is not None:
        pytest.skip(problem)
    repo, _, tag = image.partition(":")
    if repo != IMAGE_REPO or not tag:
        pytest.skip(f"docker-compose.yml runs {IMAGE_REPO}:TAG, not {image}")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    if os.getuid() == 0:
        os.chown(out_dir, IMAGE_UID, IMAGE_UID)
    elif os.getuid() != IMAGE_UID:
        pytest.skip(f"the stack runs as uid {IMAGE_UID}; this test needs root or that uid to share {out_dir}")
    env = {
        **os.environ,
        "TUTORIAL_APP_TAG": tag,
        "TUTORIAL_APP_DIFFICULTY": str(DIFFICULTY),
        "TUTORIAL_APP_SUBTASKS": str(SUBTASKS),
        "TUTORIAL_APP_WORKERS": "1",
        "TUTORIAL_APP_OUT": str(out_dir),
    }
    stack = Stack(cli, f"tutorial-app-test-{uuid.uuid4().hex[:10]}", out_dir, env)
    try:
        yield stack
    finally:
        down = stack.run("down", "--volumes", "--remove-orphans", "--timeout", "5")
        assert down.returncode == 0, down.stderr
        assert stack.leftovers() == []


@pytest.fixture(params=sorted(CLIS))
def stack(request: pytest.FixtureRequest, image: str, tmp_path: Path) -> Iterator[Stack]:
    """The compose project, through each compose CLI present; `down -v` afterwards."""
    yield from _make_stack(request.param, image, tmp_path)


@pytest.fixture
def v1_stack(image: str, tmp_path: Path) -> Iterator[Stack]:
    """The compose project through docker-compose (v1) only."""
    yield from _make_stack("docker-compose", image, tmp_path)


@pytest.mark.timeout(UP_TIMEOUT + 60)
def test_up_runs_a_whole_task_and_exits_zero(stack: Stack) -> None:
    started = time.monotonic()
    up = subprocess.run(stack.up_command(), env=stack.env, capture_output=True, text=True,
                        timeout=UP_TIMEOUT, check=False)
    took = time.monotonic() - started
    output = up.stdout + up.stderr
    assert up.returncode == 0, output[-4000:]
    summary = json.loads((stack.out_dir / "summary.json").read_text(encoding="utf-8"))
    assert summary["difficulty"] == DIFFICULTY
    by_id = {s["subtask_id"]: s for s in summary["subtasks"]}
    results = sorted((stack.out_dir / "results").glob("*.zip"))
    assert sorted(r.stem for r in results) == sorted(by_id) and len(by_id) == SUBTASKS
    texts = set()
    for result in results:
        digest, nonce = parse_result(read_single_member(result))
        text = (stack.out_dir / "inputs" / f"{result.stem}.txt").read_text(encoding="utf-8")
        assert text.startswith(INPUT_TEXT)
        engine.verify(text, DIFFICULTY, digest, nonce)
        assert (by_id[result.stem]["digest"], by_id[result.stem]["nonce"]) == (digest, nonce)
        texts.add(text)
    assert len(texts) == SUBTASKS
    # One provider life per subtask, each restarted by the serve loop, none failed.
    assert output.count("provider 50006' ended cleanly") >= SUBTASKS
    assert "ended with status" not in output
    print(f"{' '.join(stack.cli)} up: {SUBTASKS} subtasks at difficulty {DIFFICULTY} in {took:.1f} s")


@pytest.mark.timeout(UP_TIMEOUT + 60)
def test_a_crashed_provider_stops_the_run_visibly(v1_stack: Stack) -> None:
    """The serve loop restarts clean lives only: a killed one ends the stack, non-zero."""
    v1_stack.env["TUTORIAL_APP_DIFFICULTY"] = "256"  # never succeeds: the provider stays busy
    v1_stack.env["TUTORIAL_APP_SUBTASKS"] = "1"
    up = subprocess.Popen(v1_stack.up_command(), env=v1_stack.env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    try:
        app = _busy_provider_app(v1_stack, up)
        app.kill()
        output, _ = up.communicate(timeout=30)
    finally:
        if up.poll() is None:
            up.kill()
            up.communicate()
    assert up.returncode != 0, output[-4000:]
    assert "provider 50006' ended with status 137; ending the service" in output, output[-4000:]
    assert not (v1_stack.out_dir / "results").exists()


def _busy_provider_app(stack: Stack, up: subprocess.Popen[str]) -> psutil.Process:
    """The provider's app server process (under the serve loop) once its search burns CPU."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert up.poll() is None, up.communicate()[0][-4000:]
        ids = dockerutil.docker(
            "ps", "-q", "--filter", f"label=com.docker.compose.project={stack.project}",
            "--filter", "label=com.docker.compose.service=provider").stdout.split()
        if ids:
            pid = int(dockerutil.docker("inspect", "--format", "{{.State.Pid}}", ids[0]).stdout)
            serve_loop = psutil.Process(pid)
            apps = serve_loop.children()
            workers = [w for a in apps for w in a.children(recursive=True)]
            if apps and workers:
                before = [sum(w.cpu_times()[:2]) for w in workers]
                time.sleep(0.3)
                if any(sum(w.cpu_times()[:2]) - b > 0.1 for w, b in zip(workers, before)):
                    return apps[0]
        time.sleep(0.2)
    raise AssertionError("the provider never started searching")
