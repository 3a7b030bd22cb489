"""The app definition a node installs an app from, and its content-derived id."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from setuptools import Command

MARKET_STRATEGIES = ("brass", "wasm")
"""The market strategies a node knows."""


class InvalidAppDefinitionError(ValueError):
    """An app definition with a missing, unknown or ill-typed field."""


@dataclass
class AppDefinitionBase:
    """What a node needs to know to run an app; `id` names this exact content."""

    name: str
    requestor_env: str
    requestor_prereq: dict[str, Any]
    max_benchmark_score: float
    version: str = "0.0"
    description: str = ""
    author: str = ""
    license: str = ""
    market_strategy: str = "brass"

    def __post_init__(self) -> None:
        if self.market_strategy not in MARKET_STRATEGIES:
            raise InvalidAppDefinitionError(
                f"market_strategy must be one of {', '.join(MARKET_STRATEGIES)},"
                f" not {self.market_strategy!r}")

    @property
    def id(self) -> str:
        """Hex BLAKE2b (16-byte digest) of `to_json` in UTF-8: equal content, equal id."""
        return hashlib.blake2b(self.to_json().encode("utf-8"), digest_size=16).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        """The fields, in declaration order."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def to_json(self) -> str:
        """`json.dumps` of `to_dict` with default separators (the text `id` hashes)."""
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "AppDefinitionBase":
        """The definition in ``data``; `InvalidAppDefinitionError` for unknown or missing keys."""
        if not isinstance(data, dict):
            raise InvalidAppDefinitionError(
                f"an app definition is a JSON object, not {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise InvalidAppDefinitionError(f"unknown app definition fields: {', '.join(unknown)}")
        try:
            return cls(**data)
        except TypeError as exc:
            raise InvalidAppDefinitionError(f"incomplete app definition: {exc}") from exc

    @classmethod
    def from_json(cls, text: str) -> "AppDefinitionBase":
        """The definition in the JSON ``text``."""
        return cls.from_dict(json.loads(text))


def save_app_to_json_file(app_def: AppDefinitionBase, json_file: Path) -> None:
    """Write ``app_def`` as JSON to ``json_file``, creating its directories; `ValueError` on an OS error."""
    path = Path(json_file)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(app_def.to_json(), encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot write the app definition to {path}: {exc.strerror or exc}") from exc


class BuildAppDefCommand(Command):
    """``setup.py build_app_def``: the app definition from the package metadata and a config file.

    The config (``--config-path``, default ``task-api-config.json``) holds
    ``requestor_env``, ``requestor_prereq``, ``max_benchmark_score`` and
    optionally ``market_strategy``; name, version, description, author and
    license come from the distribution. ``--dist-path`` (default ``dist/``)
    is emptied, then receives ``<name>_<version>_<id>.json``.
    """

    description = "build the Golem app definition JSON"
    user_options = [
        ("dist-path=", "d", "directory to write the definition to (emptied first); default dist/"),
        ("config-path=", "c", "the app's Task API config JSON; default task-api-config.json"),
    ]

    def initialize_options(self) -> None:
        """No option given yet."""
        self.dist_path: str | None = None
        self.config_path: str | None = None

    def finalize_options(self) -> None:
        """Fill in the defaults."""
        if self.dist_path is None:
            self.dist_path = "dist/"
        if self.config_path is None:
            self.config_path = "task-api-config.json"

    def run(self) -> None:
        """Write the definition file."""
        app_def = build_app_definition(self.distribution.metadata, Path(self.config_path or ""))
        dist = Path(self.dist_path or "dist/")
        if dist.exists():
            shutil.rmtree(dist)
        target = dist / f"{app_def.name}_{app_def.version}_{app_def.id}.json"
        save_app_to_json_file(app_def, target)
        self.announce(f"app definition written to {target}", level=2)


def build_app_definition(metadata: Any, config_path: Path) -> AppDefinitionBase:
    """The definition from a distribution's ``metadata`` and the config JSON at ``config_path``."""
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidAppDefinitionError(f"cannot read the config {config_path}: {exc}") from exc
    if not isinstance(config, dict):
        raise InvalidAppDefinitionError(f"{config_path} must hold a JSON object")
    missing = [k for k in ("requestor_env", "requestor_prereq", "max_benchmark_score")
               if k not in config]
    if missing:
        raise InvalidAppDefinitionError(f"{config_path} lacks {', '.join(missing)}")
    return AppDefinitionBase(
        name=metadata.get_name(),
        requestor_env=config["requestor_env"],
        requestor_prereq=config["requestor_prereq"],
        max_benchmark_score=config["max_benchmark_score"],
        version=metadata.get_version(),
        description=metadata.get_description() or "",
        author=metadata.get_author() or "",
        license=metadata.get_license() or "",
        market_strategy=config.get("market_strategy", "brass"),
    )


__all__ = [
    "AppDefinitionBase", "BuildAppDefCommand", "InvalidAppDefinitionError", "MARKET_STRATEGIES",
    "build_app_definition", "save_app_to_json_file",
]
