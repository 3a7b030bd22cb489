"""Mutual TLS contexts built from the four PEM files of the Task API."""
from __future__ import annotations

import ssl
from pathlib import Path
from typing import Optional

from golem_task_api import constants

# grpclib speaks HTTP/2 only and needs it negotiated through ALPN.
_ALPN = ["h2"]


def _allow_plain_self_signed(context: ssl.SSLContext) -> None:
    # Python 3.13+ turns on X509 strict checks by default; they reject
    # self-signed certs lacking key identifiers, which a node may generate.
    # Trust comes from pinning the one expected cert, not from CA structure.
    context.verify_flags &= ~ssl.VERIFY_X509_STRICT


def server_credentials_present(work_dir: Path) -> bool:
    """True iff the work dir holds the server key, server cert and client cert."""
    return all(
        (work_dir / name).is_file()
        for name in (constants.SERVER_KEY_FILE, constants.SERVER_CERT_FILE, constants.CLIENT_CERT_FILE)
    )


def server_ssl_context(work_dir: Path) -> Optional[ssl.SSLContext]:
    """The server's context requiring the node's client cert, or None for plaintext."""
    if not server_credentials_present(work_dir):
        return None
    context = ssl.create_default_context(
        ssl.Purpose.CLIENT_AUTH, cafile=str(work_dir / constants.CLIENT_CERT_FILE)
    )
    context.verify_mode = ssl.CERT_REQUIRED
    _allow_plain_self_signed(context)
    context.load_cert_chain(
        str(work_dir / constants.SERVER_CERT_FILE), str(work_dir / constants.SERVER_KEY_FILE)
    )
    context.set_alpn_protocols(_ALPN)
    return context


def client_ssl_context(client_dir: Path, server_cert_dir: Path) -> ssl.SSLContext:
    """The node's context: its own key/cert pair, trusting only the app's server cert.

    Host names are not checked: the server cert is pinned as the only CA.
    """
    context = ssl.create_default_context(
        ssl.Purpose.SERVER_AUTH, cafile=str(server_cert_dir / constants.SERVER_CERT_FILE)
    )
    context.check_hostname = False
    context.verify_mode = ssl.CERT_REQUIRED
    _allow_plain_self_signed(context)
    context.load_cert_chain(
        str(client_dir / constants.CLIENT_CERT_FILE), str(client_dir / constants.CLIENT_KEY_FILE)
    )
    context.set_alpn_protocols(_ALPN)
    return context
