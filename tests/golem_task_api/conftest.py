"""Fixtures for the golem_task_api tests: fake-handler services and TLS files."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from golem_task_api import constants

from gta_certs import TlsFiles


def _openssl_pair(directory: Path, key_name: str, cert_name: str, cn: str) -> None:
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
            "-keyout", str(directory / key_name), "-out", str(directory / cert_name),
            "-days", "2", "-subj", f"/CN={cn}",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )


@pytest.fixture(scope="session")
def tls_material(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One set of certificates per session (key generation is the slow part)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not available")
    root = tmp_path_factory.mktemp("tls")
    _openssl_pair(root, constants.SERVER_KEY_FILE, constants.SERVER_CERT_FILE, "localhost")
    _openssl_pair(root, constants.CLIENT_KEY_FILE, constants.CLIENT_CERT_FILE, "node")
    stranger = root / "stranger"
    stranger.mkdir()
    _openssl_pair(stranger, constants.CLIENT_KEY_FILE, constants.CLIENT_CERT_FILE, "stranger")
    return root


@pytest.fixture
def tls_files(tls_material: Path, tmp_path: Path) -> TlsFiles:
    """An app work dir with the server's TLS files, and the node's client dirs."""
    app_dir, node_dir, stranger_dir = tmp_path / "app", tmp_path / "node", tmp_path / "stranger"
    for d in (app_dir, node_dir, stranger_dir):
        d.mkdir()
    for name in (constants.SERVER_KEY_FILE, constants.SERVER_CERT_FILE, constants.CLIENT_CERT_FILE):
        shutil.copy2(tls_material / name, app_dir / name)
    for name in (constants.CLIENT_KEY_FILE, constants.CLIENT_CERT_FILE, constants.SERVER_CERT_FILE):
        shutil.copy2(tls_material / name, node_dir / name)
    for name in (constants.CLIENT_KEY_FILE, constants.CLIENT_CERT_FILE):
        shutil.copy2(tls_material / "stranger" / name, stranger_dir / name)
    shutil.copy2(tls_material / constants.SERVER_CERT_FILE, stranger_dir / constants.SERVER_CERT_FILE)
    return TlsFiles(app_dir, node_dir, stranger_dir)
