"""The image's entrypoint command line."""
from __future__ import annotations

from pathlib import Path

import pytest

from tutorial_app import entrypoint


def test_defaults() -> None:
    args = entrypoint.build_parser().parse_args(["provider", "50006"])
    assert (args.role, args.port, args.work_dir) == ("provider", 50006, Path("/golem/work"))


def test_work_dir_may_come_first(tmp_path: Path) -> None:
    args = entrypoint.build_parser().parse_args(["--work-dir", str(tmp_path), "requestor", "1"])
    assert (args.role, args.port, args.work_dir) == ("requestor", 1, tmp_path)


@pytest.mark.parametrize("argv, words", [
    ([], "the following arguments are required: role, port"),
    (["worker", "1"], "invalid choice: 'worker'"),
    (["requestor"], "required: port"),
    (["requestor", "http"], "'http' is not a port number"),
    (["requestor", "0"], "0 is not a port number"),
    (["requestor", "65536"], "65536 is not a port number"),
    (["requestor", "1", "extra"], "unrecognized arguments: extra"),
])
def test_bad_command_lines(argv: list[str], words: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        entrypoint.main(argv)
    assert info.value.code == 2
    assert words in capsys.readouterr().err


def test_missing_work_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        entrypoint.main(["requestor", "5000", "--work-dir", str(tmp_path / "nope")])
    assert info.value.code == 2
    assert "does not exist" in capsys.readouterr().err


def test_bad_log_level(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(entrypoint.LOG_LEVEL_ENV, "chatty")
    with pytest.raises(SystemExit):
        entrypoint.main(["requestor", "5000", "--work-dir", str(tmp_path)])
    assert "not a logging level" in capsys.readouterr().err


def test_partial_tls_material_refuses_to_start_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "task_api_server_key.pem").write_text("key")
    (tmp_path / "task_api_server_cert.pem").write_text("cert")
    with pytest.raises(SystemExit) as info:
        entrypoint.main(["requestor", "5000", "--work-dir", str(tmp_path)])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "task_api_client_cert.pem: missing" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("name, value, words", [
    ("TUTORIAL_APP_WORKERS", "abc", "TUTORIAL_APP_WORKERS"),
    ("TUTORIAL_APP_WORKERS", "0", "TUTORIAL_APP_WORKERS"),
    ("TUTORIAL_APP_KERNEL", "foo", "TUTORIAL_APP_KERNEL='foo'"),
    ("TUTORIAL_APP_POOL_START", "sometimes", "TUTORIAL_APP_POOL_START"),
])
@pytest.mark.parametrize("role", ["requestor", "provider"])
def test_bad_engine_settings_refuse_to_start_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    role: str, name: str, value: str, words: str,
) -> None:
    """Found at start-up, not per Compute (where a node would see INVALID_ARGUMENT)."""
    monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as info:
        entrypoint.main([role, "5000", "--work-dir", str(tmp_path)])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1
