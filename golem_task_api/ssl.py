"""Mutual TLS contexts built from the four PEM files of the Task API.

The server serves TLS when its work dir holds the server key, the server
cert and the node's client cert, and plaintext when it holds none of them.
"""
from __future__ import annotations

import ssl
from pathlib import Path
from typing import Optional

from golem_task_api import constants

SERVER_KEY_FILE_NAME = constants.SERVER_KEY_FILE
SERVER_CERT_FILE_NAME = constants.SERVER_CERT_FILE
CLIENT_KEY_FILE_NAME = constants.CLIENT_KEY_FILE
CLIENT_CERT_FILE_NAME = constants.CLIENT_CERT_FILE

# grpclib speaks HTTP/2 only and needs it negotiated through ALPN.
_ALPN = ["h2"]


def _allow_plain_self_signed(context: ssl.SSLContext) -> None:
    # Python 3.13+ turns on X509 strict checks by default; they reject
    # self-signed certs lacking key identifiers, which a node may generate.
    # Trust comes from pinning the one expected cert, not from CA structure.
    context.verify_flags &= ~ssl.VERIFY_X509_STRICT


def create_ssl_context(
    key_path: Path, cert_path: Path, verify_cert_path: Path, purpose: ssl.Purpose
) -> Optional[ssl.SSLContext]:
    """A context presenting key/cert and trusting only verify_cert; None when a file is missing.

    purpose is `ssl.Purpose.CLIENT_AUTH` for a server, `SERVER_AUTH` for a
    client. Host names are not checked: the peer cert is pinned as the only CA.
    """
    paths = [Path(key_path), Path(cert_path), Path(verify_cert_path)]
    if not all(path.is_file() for path in paths):
        return None
    context = ssl.create_default_context(purpose, cafile=str(verify_cert_path))
    if purpose is ssl.Purpose.SERVER_AUTH:
        context.check_hostname = False
    context.verify_mode = ssl.CERT_REQUIRED
    _allow_plain_self_signed(context)
    context.load_cert_chain(str(cert_path), str(key_path))
    context.set_alpn_protocols(_ALPN)
    return context


def create_server_ssl_context(
    directory: Path,
    server_key_file_name: str = SERVER_KEY_FILE_NAME,
    server_cert_file_name: str = SERVER_CERT_FILE_NAME,
    client_cert_file_name: str = CLIENT_CERT_FILE_NAME,
) -> Optional[ssl.SSLContext]:
    """The app server's context requiring the node's client cert, or None for plaintext."""
    directory = Path(directory)
    return create_ssl_context(
        directory / server_key_file_name,
        directory / server_cert_file_name,
        directory / client_cert_file_name,
        ssl.Purpose.CLIENT_AUTH,
    )


def create_client_ssl_context(
    directory: Path,
    server_cert_directory: Path,
    client_key_file_name: str = CLIENT_KEY_FILE_NAME,
    client_cert_file_name: str = CLIENT_CERT_FILE_NAME,
    server_cert_file_name: str = SERVER_CERT_FILE_NAME,
) -> Optional[ssl.SSLContext]:
    """The node's context: its own key/cert pair, trusting only the app's server cert."""
    directory = Path(directory)
    return create_ssl_context(
        directory / client_key_file_name,
        directory / client_cert_file_name,
        Path(server_cert_directory) / server_cert_file_name,
        ssl.Purpose.SERVER_AUTH,
    )
