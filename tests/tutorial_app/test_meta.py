"""The app's published facts agree with the package metadata."""
from __future__ import annotations

import ast
import importlib.metadata
from pathlib import Path

from tutorial_app import meta


def test_version_matches_package_and_tag() -> None:
    assert meta.VERSION == importlib.metadata.version("tutorial-app")
    assert meta.prerequisites() == {"image": "tutorial-app", "tag": meta.VERSION}
    assert meta.MIN_MEMORY_MIB > 0


def _constant_docstrings() -> dict[str, str]:
    """Each top-level constant of meta.py with the docstring that follows it."""
    tree = ast.parse(Path(meta.__file__).read_text(encoding="utf-8"))
    found: dict[str, str] = {}
    body = tree.body
    for node, after in zip(body, body[1:] + [None]):
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            doc = ""
            if isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant):
                doc = str(after.value.value)
            found[node.targets[0].id] = doc
    return found


def test_every_constant_is_documented() -> None:
    docs = _constant_docstrings()
    assert "MAX_INPUT_BYTES" in docs and "MAX_PARTS" in docs
    assert all(docs.values()), [name for name, doc in docs.items() if not doc]


def test_limits_state_their_values_where_the_readme_cites_them() -> None:
    docs = _constant_docstrings()
    assert meta.MAX_INPUT_BYTES == 4 * 1024 * 1024 and "4 MiB" in docs["MAX_INPUT_BYTES"]
    assert meta.MAX_PARTS == 100_000 and "100,000" in docs["MAX_PARTS"]
    assert meta.MAX_RESULT_BYTES == 4096 and "4 KiB" in docs["MAX_RESULT_BYTES"]
    summary = meta.__doc__ or ""
    for name in ("MAX_INPUT_BYTES", "MAX_PARTS", "MAX_RESULT_BYTES", "MAX_SUBTASK_INPUT_BYTES"):
        assert name in summary
