"""Keep the guide's code excerpts identical to the source they name.

Every excerpt in ``docs/*.md`` is a fenced code block right after a marker::

    <!-- excerpt: tutorial_app/requestor.py RequestorHandler.create_task -->

The reference is a file (relative to the repository root) and either a
dotted name of a function or class in a Python file (found with ``ast``, so
the excerpt follows the code when lines move) or ``region:NAME``, the lines
between ``# region: NAME`` and ``# endregion: NAME`` in any text file.

    python scripts/guide_excerpts.py           # check; exit 1 and list drift
    python scripts/guide_excerpts.py --write   # rewrite the excerpts from the source

The test suite runs the check, so the guide cannot drift from the code.
"""
from __future__ import annotations

import argparse
import ast
import re
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

_MARKER = re.compile(
    r"^<!-- excerpt: (?P<file>\S+) (?P<ref>\S+) -->\n"
    r"(?P<fence>```+)(?P<lang>[\w-]*)\n(?P<body>.*?)^(?P=fence)$",
    re.MULTILINE | re.DOTALL,
)


class ExcerptError(Exception):
    """A marker names a file, definition or region that does not exist."""


@dataclass(frozen=True)
class Excerpt:
    """One marked code block of a document."""

    doc: Path
    line: int
    file: str
    ref: str
    body: str
    start: int  # offsets of the body in the document's text
    end: int


def find_excerpts(doc: Path) -> list[Excerpt]:
    """Every marked excerpt of ``doc``, in order."""
    text = doc.read_text(encoding="utf-8")
    return [
        Excerpt(doc, text.count("\n", 0, m.start()) + 1, m["file"], m["ref"], m["body"],
                m.start("body"), m.end("body"))
        for m in _MARKER.finditer(text)
    ]


def source_of(root: Path, file: str, ref: str) -> str:
    """The text an excerpt must hold: a definition's source or a region's lines."""
    path = (root / file).resolve()
    if root.resolve() not in path.parents or not path.is_file():
        raise ExcerptError(f"{file}: no such file in the repository")
    text = path.read_text(encoding="utf-8")
    if ref.startswith("region:"):
        return _region(text, file, ref.removeprefix("region:"))
    return _definition(text, file, ref)


def _region(text: str, file: str, name: str) -> str:
    begin = re.search(rf"^[ \t]*#\s*region:\s*{re.escape(name)}\s*$\n", text, re.MULTILINE)
    end = re.search(rf"^[ \t]*#\s*endregion:\s*{re.escape(name)}\s*$", text, re.MULTILINE)
    if begin is None or end is None or end.start() < begin.end():
        raise ExcerptError(f"{file}: no region {name!r} (# region: {name} ... # endregion: {name})")
    return textwrap.dedent(text[begin.end():end.start()])


def _definition(text: str, file: str, dotted: str) -> str:
    nodes: list[ast.stmt] = ast.parse(text).body
    found: ast.stmt | None = None
    for part in dotted.split("."):
        found = next((n for n in nodes if isinstance(
            n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and n.name == part), None)
        if found is None:
            raise ExcerptError(f"{file}: no definition {dotted!r}")
        nodes = found.body if isinstance(found, ast.ClassDef) else []
    assert found is not None
    lines = text.splitlines(keepends=True)
    first = min([found.lineno] + [d.lineno for d in found.decorator_list])
    assert found.end_lineno is not None
    return textwrap.dedent("".join(lines[first - 1:found.end_lineno]))


def check(docs: list[Path], root: Path = ROOT) -> list[str]:
    """One line per excerpt that differs from its source (empty when all match)."""
    problems = []
    for doc in docs:
        for ex in find_excerpts(doc):
            where = f"{doc.name}:{ex.line} ({ex.file} {ex.ref})"
            try:
                expected = source_of(root, ex.file, ex.ref)
            except ExcerptError as exc:
                problems.append(f"{where}: {exc}")
                continue
            if ex.body != expected:
                problems.append(f"{where}: excerpt differs from the source")
    return problems


def write(docs: list[Path], root: Path = ROOT) -> int:
    """Rewrite every excerpt from its source; the number of excerpts changed."""
    changed = 0
    for doc in docs:
        text = doc.read_text(encoding="utf-8")
        for ex in reversed(find_excerpts(doc)):
            expected = source_of(root, ex.file, ex.ref)
            if ex.body != expected:
                text = text[:ex.start] + expected + text[ex.end:]
                changed += 1
        doc.write_text(text, encoding="utf-8")
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="rewrite excerpts from the source")
    args = parser.parse_args(argv)
    docs = sorted(DOCS.glob("*.md"))
    if args.write:
        print(f"{write(docs)} excerpt(s) rewritten")
        return 0
    problems = check(docs)
    for line in problems:
        print(line, file=sys.stderr)
    count = sum(len(find_excerpts(d)) for d in docs)
    print(f"{count} excerpt(s) in {len(docs)} document(s), {len(problems)} out of date")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
