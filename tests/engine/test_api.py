"""The package's public surface: every exported name resolves to the object it names."""
from __future__ import annotations

import importlib
import subprocess
import sys

import engine


def test_every_exported_name_resolves() -> None:
    for name in engine.__all__:
        value = getattr(engine, name)
        assert getattr(importlib.import_module(engine._HOMES[name]), name) is value


def test_benchmark_is_the_function_even_after_its_module_is_imported() -> None:
    import engine.scoring  # noqa: F401 - binds the submodule on the package

    assert callable(engine.benchmark) and engine.benchmark.__name__ == "benchmark"


def test_worker_import_stays_small() -> None:
    # A spawned worker imports engine.worker only: no pool, no benchmark, no cores code.
    code = "import sys, engine.worker; print(sorted(m for m in sys.modules if m.startswith('engine')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "engine.supervisor" not in out and "engine.scoring" not in out
