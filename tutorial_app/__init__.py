"""The tutorial app: a proof-of-work Golem app on `golem_task_api` and `engine`.

Public names: `RequestorHandler`, `ProviderHandler`, `ProviderLifecycle`
(the Task API handlers), `TaskStore` (the requestor's task state) and
`meta` (name, version, image). The handlers are imported on first use, so
``import tutorial_app.meta`` stays light (no gRPC, no engine).
"""
from __future__ import annotations

import importlib
from typing import Any

from tutorial_app import meta

__all__ = ["ProviderHandler", "ProviderLifecycle", "RequestorHandler", "TaskStore", "meta"]
__version__ = meta.VERSION

_LAZY = {
    "RequestorHandler": "tutorial_app.requestor",
    "ProviderHandler": "tutorial_app.provider",
    "ProviderLifecycle": "tutorial_app.provider",
    "TaskStore": "tutorial_app.store",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tutorial_app' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
