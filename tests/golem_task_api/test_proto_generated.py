"""The checked-in generated modules are exactly what scripts/gen_proto.py produces."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from golem_task_api.proto import golem_task_api_pb2 as pb

REPO_ROOT = Path(__file__).resolve().parents[2]
GENERATED = (
    "golem_task_api_pb2.py", "golem_task_api_pb2.pyi", "golem_task_api_grpc.py",
    "envs_pb2.py", "envs_pb2.pyi", "constants_pb2.py", "constants_pb2.pyi",
)


@pytest.mark.timeout(120)
def test_checked_in_modules_match_regeneration(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "gen_proto.py"), str(tmp_path)],
        check=True,
        capture_output=True,
    )
    stale = [
        name for name in GENERATED
        if (tmp_path / name).read_bytes()
        != (REPO_ROOT / "golem_task_api" / "proto" / name).read_bytes()
    ]
    assert stale == [], f"run scripts/gen_proto.py: {stale} differ from the .proto"


def _fields(message: type) -> dict[str, int]:
    return {f.name: f.number for f in message.DESCRIPTOR.fields}


def test_wire_contract_field_numbers() -> None:
    assert pb.DESCRIPTOR.package == "golem_task_api"
    assert _fields(pb.CreateTaskRequest) == {
        "task_id": 1, "max_subtasks_count": 2, "task_params_json": 3}
    assert _fields(pb.CreateTaskReply) == {
        "env_id": 1, "prerequisites_json": 2, "inf_requirements": 3}
    assert _fields(pb.NextSubtaskReply) == {"subtask": 1}
    assert pb.NextSubtaskReply.DESCRIPTOR.oneofs_by_name["subtask_oneof"].fields[0].name == "subtask"
    assert _fields(pb.SubtaskReply) == {"subtask_params_json": 1, "resources": 2}
    assert _fields(pb.ComputeRequest) == {"task_id": 1, "subtask_id": 2, "subtask_params_json": 3}
    assert _fields(pb.VerifyReply) == {"result": 1, "reason": 2}
    assert dict(pb.VerifyReply.VerifyResult.items()) == {
        "SUCCESS": 0, "FAILURE": 1, "AWAITING_DATA": 2, "INCONCLUSIVE": 3}
    assert _fields(pb.DiscardSubtasksReply) == {"discarded_subtask_ids": 1}
    assert _fields(pb.Infrastructure) == {"min_memory_mib": 1}
    services = {s.name: [m.name for m in s.methods] for s in pb.DESCRIPTOR.services_by_name.values()}
    assert services == {
        "RequestorApp": ["CreateTask", "NextSubtask", "Verify", "DiscardSubtasks", "RunBenchmark",
                         "HasPendingSubtasks", "AbortTask", "AbortSubtask", "Shutdown"],
        "ProviderApp": ["Compute", "RunBenchmark", "Shutdown"],
    }


def test_envs_and_constants_protos_agree_with_the_python_constants() -> None:
    from golem_task_api import constants
    from golem_task_api.proto import constants_pb2, envs_pb2

    assert _fields(envs_pb2.DockerPrerequisites) == {"image": 1, "tag": 2}
    options = constants_pb2.DESCRIPTOR.GetOptions()
    for name in ("TASK_INPUTS_DIR", "TASK_OUTPUTS_DIR", "SUBTASK_INPUTS_DIR",
                 "SUBTASK_OUTPUTS_DIR", "WORK_DIR"):
        assert options.Extensions[getattr(constants_pb2, name)] == getattr(constants, name), name
