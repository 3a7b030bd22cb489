"""The guide in docs/ stays true: its excerpts are the code they name."""
from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("guide_excerpts", ROOT / "scripts" / "guide_excerpts.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


tool = _load_tool()
GUIDE_DOCS = sorted((ROOT / "docs").glob("*.md"))


def test_every_excerpt_matches_its_source() -> None:
    problems = tool.check(GUIDE_DOCS)
    assert problems == [], "run `python scripts/guide_excerpts.py --write`:\n" + "\n".join(problems)


def test_the_guide_quotes_the_code_it_teaches() -> None:
    refs = {(ex.file, ex.ref) for doc in GUIDE_DOCS for ex in tool.find_excerpts(doc)}
    files = {file for file, _ in refs}
    # Requestor, provider, entrypoint, the image and a test: the chapters' anchors.
    for needed in ("tutorial_app/requestor.py", "tutorial_app/provider.py",
                   "tutorial_app/entrypoint.py", "Dockerfile"):
        assert needed in files, f"the guide quotes nothing from {needed}"
    assert any(f.startswith("tests/") for f in files), "the testing chapter quotes no test"


@pytest.fixture()
def repo_copy(tmp_path: Path) -> Path:
    """A repository of one source file and one guide page quoting it."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mod.py").write_text(
        "class Thing:\n"
        "    def size(self) -> int:\n"
        "        return 3\n"
        "\n"
        "# region: setup\n"
        "VALUE = 1\n"
        "# endregion: setup\n")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "page.md").write_text(
        "Intro.\n\n"
        "<!-- excerpt: pkg/mod.py Thing.size -->\n"
        "```python\n"
        "def size(self) -> int:\n"
        "    return 3\n"
        "```\n\n"
        "<!-- excerpt: pkg/mod.py region:setup -->\n"
        "```python\n"
        "VALUE = 1\n"
        "```\n")
    return tmp_path


def test_check_passes_on_matching_excerpts(repo_copy: Path) -> None:
    assert tool.check([repo_copy / "docs" / "page.md"], root=repo_copy) == []


def test_a_changed_excerpt_fails_then_write_mends_it(repo_copy: Path) -> None:
    page = repo_copy / "docs" / "page.md"
    page.write_text(page.read_text().replace("return 3", "return 4"))
    problems = tool.check([page], root=repo_copy)
    assert len(problems) == 1 and "Thing.size" in problems[0]
    assert tool.write([page], root=repo_copy) == 1
    assert tool.check([page], root=repo_copy) == []
    assert "return 3" in page.read_text()


def test_a_changed_source_fails_the_check(repo_copy: Path) -> None:
    source = repo_copy / "pkg" / "mod.py"
    source.write_text(source.read_text().replace("VALUE = 1", "VALUE = 2"))
    problems = tool.check([repo_copy / "docs" / "page.md"], root=repo_copy)
    assert len(problems) == 1 and "region:setup" in problems[0]


@pytest.mark.parametrize("ref, message", [
    ("Thing.missing", "no definition"),
    ("region:nowhere", "no region"),
])
def test_a_dangling_reference_is_reported(repo_copy: Path, ref: str, message: str) -> None:
    page = repo_copy / "docs" / "page.md"
    page.write_text(page.read_text().replace("Thing.size", ref))
    problems = tool.check([page], root=repo_copy)
    assert len(problems) == 1 and message in problems[0]


def test_a_reference_outside_the_repository_is_refused(repo_copy: Path) -> None:
    outside = repo_copy.parent / "secret.py"
    outside.write_text("X = 1\n")
    page = repo_copy / "docs" / "page.md"
    page.write_text(page.read_text().replace("pkg/mod.py Thing.size", "../secret.py X"))
    problems = tool.check([page], root=repo_copy)
    assert len(problems) == 1 and "no such file" in problems[0]


def test_readme_and_guide_link_each_other() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "docs/guide.md" in readme
    guide = (ROOT / "docs" / "guide.md").read_text()
    assert "README.md" in guide
    # The guide gives the README's two set-up commands verbatim.
    setup = re.search(r"```sh\n(python3 -m venv .*?)```", readme, re.DOTALL)
    assert setup is not None
    for line in setup.group(1).strip().splitlines():
        assert line in guide, f"the guide lacks the set-up line {line!r}"


def test_the_guide_draws_the_data_flow_in_mermaid() -> None:
    guide = (ROOT / "docs" / "guide.md").read_text()
    diagram = re.search(r"```mermaid\n(.*?)```", guide, re.DOTALL)
    assert diagram is not None
    for actor in ("node", "requestor", "provider", "engine"):
        assert actor in diagram.group(1).lower()


@pytest.mark.parametrize("chapter", [
    "Bootstrapping", "Requestor", "Provider", "Bundling", "Testing", "Publishing",
    "Application lifecycle",
])
def test_the_guide_has_every_chapter(chapter: str) -> None:
    guide = (ROOT / "docs" / "guide.md").read_text()
    assert re.search(rf"^##+ .*{chapter}", guide, re.MULTILINE), f"no chapter on {chapter}"


def test_every_test_path_the_guide_runs_exists() -> None:
    """The testing chapter's commands name test files and dirs that are there."""
    guide = (ROOT / "docs" / "guide.md").read_text()
    paths = re.findall(r"^python -m pytest (\S+)", guide, re.MULTILINE)
    assert len(paths) >= 3, "the guide runs no tests"
    for path in paths:
        assert (ROOT / path).exists(), f"the guide runs {path}, which does not exist"


def test_the_descriptor_is_an_app_definition_as_the_guide_says() -> None:
    """`tutorial-app descriptor` loads into AppDefinitionBase unchanged, with a stable id."""
    from golem_task_api.apputils.app_definition import AppDefinitionBase

    from tutorial_app.descriptor import app_descriptor

    descriptor = app_descriptor()
    definition = AppDefinitionBase.from_dict(descriptor)
    assert definition.to_dict() == descriptor
    assert definition.id == AppDefinitionBase.from_json(definition.to_json()).id
    assert definition.requestor_prereq["tag"] == definition.version
