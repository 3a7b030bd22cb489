"""Mutual TLS contexts built from the four PEM files of the Task API.

The server serves TLS when its work dir holds the server key, the server
cert and the node's client cert, and plaintext when it holds none of them.
Anything between (a missing file, a directory, a corrupt PEM, an encrypted
key, a key that does not match its cert) is a `TlsFilesError` naming the
file: a half-configured TLS is a mistake, never a reason to drop encryption.
"""
from __future__ import annotations

import os
import ssl
from pathlib import Path
from typing import NoReturn, Optional, Sequence

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


class TlsFilesError(Exception):
    """The TLS files are there only in part, or one of them is unusable; names the file."""


class _EncryptedKey(Exception):
    """Raised from the passphrase callback: we never ask for one."""


def _no_passphrase() -> NoReturn:
    raise _EncryptedKey()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        # OpenSSL's text otherwise ends in a source location of _ssl.c.
        return str(exc.reason or "not PEM, or not matching").lower().replace("_", " ")
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _all_or_none(paths: Sequence[Path]) -> bool:
    """True when every path is a regular file, False when none exists; TlsFilesError otherwise."""
    present = [path for path in paths if os.path.lexists(path)]
    if not present:
        return False
    for path in paths:
        if path not in present:
            others = ", ".join(p.name for p in present)
            raise TlsFilesError(
                f"{path}: missing while {others} exist; give all TLS files or none")
        if not path.is_file():
            raise TlsFilesError(f"{path}: not a regular file")
    return True


def _check_certificate(path: Path) -> None:
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        probe.load_verify_locations(cafile=str(path))
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise TlsFilesError(f"{path}: not a usable PEM certificate ({_reason(exc)})") from None


def create_ssl_context(
    key_path: Path, cert_path: Path, verify_cert_path: Path, purpose: ssl.Purpose
) -> Optional[ssl.SSLContext]:
    """A context presenting key/cert and trusting only verify_cert; None when no file exists.

    purpose is `ssl.Purpose.CLIENT_AUTH` for a server, `SERVER_AUTH` for a
    client. Host names are not checked: the peer cert is pinned as the only
    CA. Some files only, or an unusable one: `TlsFilesError` naming it.
    """
    key_path, cert_path, verify_cert_path = Path(key_path), Path(cert_path), Path(verify_cert_path)
    if not _all_or_none([key_path, cert_path, verify_cert_path]):
        return None
    _check_certificate(verify_cert_path)
    _check_certificate(cert_path)
    context = ssl.create_default_context(purpose)
    context.load_verify_locations(cafile=str(verify_cert_path))
    if purpose is ssl.Purpose.SERVER_AUTH:
        context.check_hostname = False
    context.verify_mode = ssl.CERT_REQUIRED
    _allow_plain_self_signed(context)
    try:
        context.load_cert_chain(str(cert_path), str(key_path), password=_no_passphrase)
    except _EncryptedKey:
        raise TlsFilesError(
            f"{key_path}: the private key is encrypted; give it unencrypted "
            "(no passphrase is asked for)") from None
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise TlsFilesError(
            f"{key_path}: not a usable private key for {cert_path.name} ({_reason(exc)})"
        ) from None
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
