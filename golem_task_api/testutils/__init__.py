"""Test helpers for apps: a service serving handler objects, and a node simulator.

Example (test an app's handlers end to end without Docker)::

    from golem_task_api.testutils import TaskLifecycleUtil

    async def test_whole_task(tmp_path):
        util = TaskLifecycleUtil(tmp_path)
        async with util.init_requestor_with_handler(MyRequestorHandler()):
            await util.create_task("t1", 2, [input_file], {"difficulty": 4})
            util.init_provider_with_handler(MyProviderHandler(), "t1")
            await util.compute_remaining_subtasks("t1", "node")

To drive a real app process instead, give `init_requestor` a factory of
``SubprocessTaskApiService(d, [sys.executable, "-m", "my_app.entrypoint", ...])``.
"""
from __future__ import annotations

from golem_task_api.services import (
    STOP_GRACE_SECONDS,
    SubprocessTaskApiService,
    find_free_port,
)
from golem_task_api.testutils.inlinetaskapiservice import InlineTaskApiService
from golem_task_api.testutils.tasklifecycleutil import (
    NoSubtaskError,
    ServiceFactory,
    SubtaskFailedError,
    SubtaskOutcome,
    TaskLifecycleUtil,
)

__all__ = [
    "STOP_GRACE_SECONDS",
    "InlineTaskApiService",
    "NoSubtaskError",
    "ServiceFactory",
    "SubprocessTaskApiService",
    "SubtaskFailedError",
    "SubtaskOutcome",
    "TaskLifecycleUtil",
    "find_free_port",
]
