"""The project image: user, file modes, work dir, entrypoint, native extension, SIGTERM."""
from __future__ import annotations

from pathlib import Path

import pytest

import dockerutil

pytestmark = pytest.mark.docker

ENTRYPOINT = ["python3", "-m", "tutorial_app.entrypoint"]
WORK_DIR = "/golem/work"
IMAGE_UID = 1000
# A uid the image's /etc/passwd does not know, as a node's is.
UNKNOWN_UID = 4321
REPO = Path(__file__).resolve().parents[2]
# Well inside `docker stop`'s 10 s grace: a container that ignored SIGTERM
# would take the whole grace and then be SIGKILLed.
PROMPT_STOP_SECONDS = 5.0
APP_PORT = 50005


def test_default_user_is_uid_1000_in_group_0_owning_the_work_dir(image: str) -> None:
    """Without --user: uid 1000, group 0, in /golem/work, which it may write."""
    result = dockerutil.run(
        image, "-c", 'id -u; id -g; pwd; touch probe && echo writable',
        entrypoint="sh")
    assert result.returncode == 0, result.stderr
    uid, gid, cwd, writable = result.stdout.split()
    assert (int(uid), int(gid)) == (IMAGE_UID, 0)
    assert cwd == WORK_DIR
    assert writable == "writable"


def test_a_uid_the_image_does_not_know_has_home_work_dir_and_venv(image: str) -> None:
    """``--user 4321`` alone (a node's way): group 0, a writable HOME and work dir, a usable venv.

    Measured before the change: HOME was "/" (not writable) and /golem/work
    belonged to golem:golem 0755, closed to any other uid.
    """
    script = (
        'id -u; id -g; echo "$HOME"; '
        'touch "$HOME/probe" && touch /golem/work/probe && echo writable; '
        'python3 -c "import tutorial_app.entrypoint, engine._native, grpclib" && echo imports; '
        'find /opt/venv ! -perm -o=r -o -type d ! -perm -o=x | wc -l'
    )
    result = dockerutil.run(image, "-c", script, entrypoint="sh", options=["--user", str(UNKNOWN_UID)])
    assert result.returncode == 0, result.stderr
    uid, gid, home, writable, imports, closed = result.stdout.split()
    assert (int(uid), int(gid)) == (UNKNOWN_UID, 0)
    assert home == "/golem"
    assert (writable, imports) == ("writable", "imports")
    # Every file of the venv readable, every directory enterable, by anyone.
    assert closed == "0"


def test_image_config_declares_the_app_entrypoint(image: str) -> None:
    """Entrypoint, work dir, numeric default user and HOME as the image declares them."""
    config = dockerutil.inspect_image(image)["Config"]
    assert config["Entrypoint"] == ENTRYPOINT
    assert config["WorkingDir"] == WORK_DIR
    assert config["User"] == str(IMAGE_UID)
    assert "HOME=/golem" in config["Env"]


def test_entrypoint_python_is_the_venv_python(image: str) -> None:
    result = dockerutil.run(
        image, "-c", "import sys, tutorial_app; print(sys.prefix); print(tutorial_app.__file__)",
        entrypoint="python3")
    assert result.returncode == 0, result.stderr
    prefix, package = result.stdout.split()
    assert prefix == "/opt/venv"
    # Installed, not the source tree: the context holds no copy at run time.
    assert package.startswith("/opt/venv/lib/")


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["bogus", str(APP_PORT)], "invalid choice"),
        (["requestor", "not-a-port"], "not a port number"),
        (["provider", "70000"], "not a port number"),
        (["requestor"], "required"),
    ],
)
def test_entrypoint_rejects_bad_arguments(image: str, args: list[str], complaint: str) -> None:
    """A bad command line: status 2, the usage and what is wrong."""
    result = dockerutil.run(image, *args)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "usage:" in result.stderr
    assert complaint in result.stderr


def test_entrypoint_names_a_missing_work_dir_in_one_line(image: str) -> None:
    """A missing --work-dir: status 2 and one line naming it and the uid (the command line was fine)."""
    result = dockerutil.run(image, "requestor", str(APP_PORT), "--work-dir", "/nonexistent")
    assert result.returncode == 2, (result.stdout, result.stderr)
    (line,) = result.stderr.strip().splitlines()
    assert "work dir /nonexistent does not exist" in line
    assert f"uid {IMAGE_UID}" in line


def test_native_extension_imports(image: str) -> None:
    if not (REPO / "engine" / "_native.c").exists():
        pytest.skip("the project has no engine/_native.c extension")
    result = dockerutil.run(
        image, "-c", "import engine._native as n; print(n.__file__)", entrypoint="python3")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith("/opt/venv/lib/")
    assert result.stdout.strip().endswith(".so")


@pytest.mark.timeout(90)
@pytest.mark.parametrize("role", ["requestor", "provider"])
def test_app_server_stops_promptly_on_sigterm(
    image: str, containers: dockerutil.ContainerSet, role: str,
) -> None:
    container = containers.start(image, role, str(APP_PORT))
    container.wait_for_port(APP_PORT)
    took = container.stop(grace=10)
    assert took < PROMPT_STOP_SECONDS, f"docker stop took {took:.1f} s:\n{container.logs()}"
    # 137 would mean SIGKILL: the server ignored SIGTERM.
    assert container.exit_code() != 137, container.logs()
