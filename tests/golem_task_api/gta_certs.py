"""Record of the TLS files the conftest fixture generates."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class TlsFiles:
    """Where the node's and the app's PEM files live."""

    app_dir: Path  # server pair + client cert, as the node places them
    node_dir: Path  # client pair + server cert
    stranger_dir: Path  # an unrelated client pair + the server cert
