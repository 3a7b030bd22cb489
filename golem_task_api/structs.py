"""Plain records exchanged between the Task API runtime and an app's handlers."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional


@dataclass
class Infrastructure:
    """Minimum resources a provider must offer for a task."""

    min_memory_mib: Optional[float] = None


@dataclass
class Task:
    """What CreateTask tells the node: the environment and its prerequisites."""

    env_id: str
    prerequisites: dict[str, Any]
    inf_requirements: Infrastructure = field(default_factory=Infrastructure)


@dataclass
class Subtask:
    """One unit of work: JSON-able params and resource file names in subtask_inputs/."""

    params: dict[str, Any]
    resources: list[str] = field(default_factory=list)
