"""apputils.app_definition: JSON form, the content id, saving, the setuptools command."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from setuptools import Distribution

from golem_task_api.apputils.app_definition import (
    AppDefinitionBase, BuildAppDefCommand, save_app_to_json_file,
)

DEFINITION = AppDefinitionBase(
    name="tutorial-app", requestor_env="docker_cpu",
    requestor_prereq={"image": "tutorial-app", "tag": "0.1.0"}, max_benchmark_score=12.5,
    version="0.1.0", description="proof of work", author="someone", license="GPL-3.0",
)

# Written out by hand: the field order and json.dumps' default separators are the contract.
EXPECTED_JSON = (
    '{"name": "tutorial-app", "requestor_env": "docker_cpu", '
    '"requestor_prereq": {"image": "tutorial-app", "tag": "0.1.0"}, '
    '"max_benchmark_score": 12.5, "version": "0.1.0", "description": "proof of work", '
    '"author": "someone", "license": "GPL-3.0", "market_strategy": "brass"}'
)


def test_json_is_fields_in_order_with_default_separators() -> None:
    assert DEFINITION.to_json() == EXPECTED_JSON


def test_id_is_blake2b_16_of_the_json() -> None:
    expected = hashlib.blake2b(EXPECTED_JSON.encode("utf-8"), digest_size=16).hexdigest()
    assert DEFINITION.id == expected and len(DEFINITION.id) == 32


def test_round_trips() -> None:
    assert AppDefinitionBase.from_json(DEFINITION.to_json()) == DEFINITION
    assert AppDefinitionBase.from_dict(DEFINITION.to_dict()) == DEFINITION
    minimal = AppDefinitionBase("x", "docker_cpu", {}, 1.0)
    assert (minimal.version, minimal.market_strategy) == ("0.0", "brass")


@pytest.mark.parametrize("bad", [{"name": "x"}, {**DEFINITION.to_dict(), "extra": 1},
                                 {**DEFINITION.to_dict(), "market_strategy": "gold"}])
def test_bad_definitions_are_value_errors(bad: dict) -> None:
    with pytest.raises(ValueError):
        AppDefinitionBase.from_dict(bad)


def test_save_creates_directories_and_reports_os_errors(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "app.json"
    save_app_to_json_file(DEFINITION, target)
    assert json.loads(target.read_text()) == DEFINITION.to_dict()
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ValueError, match="cannot write"):
        save_app_to_json_file(DEFINITION, blocker / "app.json")


def test_build_command_writes_definition_from_metadata_and_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("task-api-config.json").write_text(json.dumps({
        "requestor_env": "docker_cpu", "requestor_prereq": {"image": "i", "tag": "t"},
        "max_benchmark_score": 3.0}))
    stale = Path("dist") / "old.json"
    stale.parent.mkdir()
    stale.write_text("{}")
    dist = Distribution({"name": "my-app", "version": "1.2", "description": "d",
                         "author": "me", "license": "MIT"})
    command = BuildAppDefCommand(dist)
    command.initialize_options()
    command.finalize_options()
    command.run()
    (written,) = Path("dist").iterdir()
    app_def = AppDefinitionBase.from_json(written.read_text())
    assert app_def == AppDefinitionBase("my-app", "docker_cpu", {"image": "i", "tag": "t"}, 3.0,
                                        version="1.2", description="d", author="me", license="MIT")
    assert app_def.id in written.name
    assert [o[:2] for o in BuildAppDefCommand.user_options] == [
        ("dist-path=", "d"), ("config-path=", "c")]
