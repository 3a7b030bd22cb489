"""Our earlier names of the TLS helpers; the implementation is `golem_task_api.ssl`."""
from __future__ import annotations

import ssl
from pathlib import Path
from typing import Optional

from golem_task_api.ssl import create_client_ssl_context, create_server_ssl_context


def server_ssl_context(work_dir: Path) -> Optional[ssl.SSLContext]:
    """The server's context requiring the node's client cert, or None for plaintext."""
    return create_server_ssl_context(work_dir)


def client_ssl_context(client_dir: Path, server_cert_dir: Path) -> Optional[ssl.SSLContext]:
    """The node's context: its own key/cert pair, trusting only the app's server cert."""
    return create_client_ssl_context(client_dir, server_cert_dir)
