"""NodeSettings and the docker run arguments of node mode, without a daemon."""
from __future__ import annotations

from pathlib import Path

import pytest

from golem_task_api.client import command_argv
from golem_task_api.dockerservice import (
    DockerTaskApiService,
    NodeSettings,
    host_cpu_count,
    parse_port_mappings,
    run_arguments,
)


def _option_values(args: list[str], option: str) -> list[str]:
    return [args[i + 1] for i, arg in enumerate(args[:-1]) if arg == option]


def test_node_run_arguments_are_the_nodes_settings(tmp_path: Path) -> None:
    """uid alone, same port on 0.0.0.0, first N CPUs, memory, dropped caps, bridge, stdin, command last."""
    settings = NodeSettings(cpus=1, mem_limit_mb=512, uid=4321)
    args = run_arguments("img:1", tmp_path, ["provider", "50006"], 50006,
                         name="n", labels={"k": "v"}, node=settings, user="ignored", host="ignored")
    assert _option_values(args, "--user") == ["4321"]
    assert _option_values(args, "--publish") == ["0.0.0.0:50006:50006"]
    assert _option_values(args, "--cpuset-cpus") == ["0"]
    assert _option_values(args, "--memory") == ["512m"]
    assert _option_values(args, "--network") == ["bridge"]
    # The node's list, written out (not the module's constant, which this test checks).
    assert sorted(_option_values(args, "--cap-drop")) == sorted([
        "audit_control", "audit_write", "mac_admin", "mac_override", "mknod", "net_admin",
        "net_bind_service", "net_raw", "setfcap", "setpcap", "sys_admin", "sys_boot",
        "sys_chroot", "sys_module", "sys_nice", "sys_pacct", "sys_resource", "sys_time",
        "sys_tty_config"])
    assert "--interactive" in args and "--privileged" not in args
    assert args[-3:] == ["img:1", "provider", "50006"]


def test_defaults_are_every_host_cpu_1024_mb_and_our_uid() -> None:
    """NodeSettings() is what a node sharing the whole machine would use."""
    settings = NodeSettings()
    assert settings.cpuset == ",".join(str(c) for c in range(host_cpu_count()))
    assert settings.mem_limit_mb == 1024
    assert settings.user.isdigit() and ":" not in settings.user


@pytest.mark.parametrize(
    ("kwargs", "complaint"),
    [
        ({"cpus": 0}, "cpus must be"),
        ({"cpus": host_cpu_count() + 1}, "cpus must be"),
        ({"mem_limit_mb": 1}, "mem_limit_mb"),
        ({"uid": -1}, "uid"),
    ],
)
def test_settings_docker_would_refuse_are_refused_up_front(kwargs: dict[str, int], complaint: str) -> None:
    """More CPUs than the host has, a memory limit under Docker's minimum, a negative uid: ValueError."""
    with pytest.raises(ValueError, match=complaint):
        NodeSettings(**kwargs)


def test_user_and_node_settings_together_are_refused(tmp_path: Path) -> None:
    """In node mode the uid is the node's: a second source of it is a mistake."""
    with pytest.raises(ValueError, match="node settings"):
        DockerTaskApiService("img", tmp_path, user="1:1", node=NodeSettings())


@pytest.mark.parametrize(
    ("command", "argv"),
    [
        ("requestor 50005", ["requestor", "50005"]),
        ("  provider   50006 ", ["provider", "50006"]),
        (["provider", "50006"], ["provider", "50006"]),
        (("requestor", 50005), ["requestor", "50005"]),
    ],
)
def test_command_is_one_string_or_a_list(command: object, argv: list[str]) -> None:
    """The published form ("requestor 50005") splits on whitespace; a list is kept (as strings)."""
    assert command_argv(command) == argv  # type: ignore[arg-type]


def test_docker_port_output_of_every_daemon_version_is_parsed() -> None:
    """IPv4, bare IPv6 (old clients) and bracketed IPv6 (new clients) lines give (address, port)."""
    assert parse_port_mappings("0.0.0.0:50005\n:::50005\n[::]:50005\n") == [
        ("0.0.0.0", 50005), ("::", 50005), ("::", 50005)]
