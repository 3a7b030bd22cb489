"""Regenerate the checked-in protobuf and grpclib modules of golem_task_api.

Usage: python scripts/gen_proto.py [OUT_DIR]

Without OUT_DIR the modules are written next to the .proto file
(golem_task_api/proto/). The proto is compiled with the repository root as
include path so the generated grpclib module imports the message module by
its full package name.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = Path("golem_task_api/proto")
PROTO_RELPATH = PROTO_DIR / "golem_task_api.proto"
# The protos with no service (envs, constants) get no grpclib module.
PROTO_RELPATHS = (PROTO_RELPATH, PROTO_DIR / "envs.proto", PROTO_DIR / "constants.proto")
GENERATED_NAMES = (
    "golem_task_api_pb2.py", "golem_task_api_pb2.pyi", "golem_task_api_grpc.py",
    "envs_pb2.py", "envs_pb2.pyi", "constants_pb2.py", "constants_pb2.pyi",
)


def generate(out_dir: Path) -> list[Path]:
    """Compile the protos and place the generated modules in out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        subprocess.run(
            [
                sys.executable, "-m", "grpc_tools.protoc",
                f"--proto_path={REPO_ROOT}",
                # descriptor.proto, imported by constants.proto, ships with grpc_tools.
                f"--proto_path={_well_known_protos()}",
                f"--python_out={tmp_path}",
                f"--pyi_out={tmp_path}",
                f"--grpclib_python_out={tmp_path}",
                # The plugin is installed next to the interpreter, with grpclib.
                f"--plugin=protoc-gen-grpclib_python={_plugin_path()}",
                *(str(path) for path in PROTO_RELPATHS),
            ],
            check=True,
            cwd=REPO_ROOT,
        )
        written = []
        for name in GENERATED_NAMES:
            target = out_dir / name
            shutil.copyfile(tmp_path / PROTO_DIR / name, target)
            written.append(target)
    return written


def _well_known_protos() -> Path:
    import grpc_tools

    return Path(grpc_tools.__file__).parent / "_proto"


def _plugin_path() -> Path:
    candidate = Path(sys.executable).parent / "protoc-gen-grpclib_python"
    if candidate.exists():
        return candidate
    found = shutil.which("protoc-gen-grpclib_python")
    if found is None:
        raise FileNotFoundError("protoc-gen-grpclib_python not found; install grpclib")
    return Path(found)


def main(argv: list[str]) -> int:
    out_dir = Path(argv[0]) if argv else REPO_ROOT / PROTO_RELPATH.parent
    for path in generate(out_dir):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
