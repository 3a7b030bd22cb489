"""Play the Golem node on one machine: the public surface of the node's modules.

- `tutorial_app.node`: the node loop (`TaskRun`), timeouts, failures re-issued;
- `tutorial_app.pool`: provider app servers started ahead of need;
- `tutorial_app.servers`: where servers run (`LocalServers`, `RemoteServers`);
- `tutorial_app.forkserver`: cheap local provider starts;
- `tutorial_app.meter` / `tutorial_app.progressfile`: live progress from providers;
- `tutorial_app.outdir` / `tutorial_app.report`: the out dir and the summary.
"""
from __future__ import annotations

from tutorial_app.node import (
    ProviderResultError, RunError, SubtaskTimeoutError, TaskRun, default_split,
    default_subtask_timeout, expected_run_seconds,
)
from tutorial_app.outdir import OutDirError, check_out_dir
from tutorial_app.report import RunReport, SubtaskResult
from tutorial_app.servers import (
    ConnectedService, ForeignDirectoryError, LocalServers, Provider, RemoteServers, Servers,
    app_argv, check_provider_dir, parse_address, scratch_dir, scratch_need_bytes, scratch_root,
)

__all__ = [
    "ConnectedService",
    "ForeignDirectoryError",
    "LocalServers",
    "OutDirError",
    "Provider",
    "ProviderResultError",
    "RemoteServers",
    "RunError",
    "RunReport",
    "Servers",
    "SubtaskResult",
    "SubtaskTimeoutError",
    "TaskRun",
    "app_argv",
    "check_out_dir",
    "check_provider_dir",
    "default_split",
    "default_subtask_timeout",
    "expected_run_seconds",
    "parse_address",
    "scratch_dir",
    "scratch_need_bytes",
    "scratch_root",
]
