"""A minimal app entrypoint written the way the seed guide's app is.

Usage: python gta_app.py --work-dir DIR requestor|provider PORT
"""
from __future__ import annotations

import sys
from pathlib import Path

import golem_task_api as api

from gta_fakes import FakeProviderHandler, FakeRequestorHandler


async def main(work_dir: Path, argv: list[str]) -> None:
    await api.entrypoint(
        work_dir=work_dir,
        argv=argv,
        requestor_handler=FakeRequestorHandler(),
        provider_handler=FakeProviderHandler(),
    )


if __name__ == "__main__":
    assert sys.argv[1] == "--work-dir"
    api.run(main(Path(sys.argv[2]), sys.argv[3:]))
