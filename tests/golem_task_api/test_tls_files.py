"""TLS material: all three server files or none; anything else refuses to start (issue 10, 15)."""
from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from pathlib import Path

import pytest

import golem_task_api as api
from golem_task_api import constants
from golem_task_api.ssl import TlsFilesError, create_client_ssl_context, create_server_ssl_context

from gta_certs import TlsFiles

SERVER_FILES = (constants.SERVER_KEY_FILE, constants.SERVER_CERT_FILE, constants.CLIENT_CERT_FILE)


def _refused(directory: Path, *words: str) -> str:
    with pytest.raises(TlsFilesError) as raised:
        create_server_ssl_context(directory)
    message = str(raised.value)
    for word in words:
        assert word in message, message
    assert "\n" not in message
    return message


@pytest.mark.parametrize("missing", SERVER_FILES)
def test_a_partial_set_is_refused_naming_the_missing_file(tls_files: TlsFiles, missing: str) -> None:
    (tls_files.app_dir / missing).unlink()
    _refused(tls_files.app_dir, missing, "missing")


def test_a_directory_in_place_of_a_file_is_refused(tls_files: TlsFiles) -> None:
    (tls_files.app_dir / constants.CLIENT_CERT_FILE).unlink()
    (tls_files.app_dir / constants.CLIENT_CERT_FILE).mkdir()
    _refused(tls_files.app_dir, constants.CLIENT_CERT_FILE, "not a regular file")


@pytest.mark.parametrize("corrupt", SERVER_FILES)
def test_a_corrupt_pem_is_refused_naming_the_file(tls_files: TlsFiles, corrupt: str) -> None:
    (tls_files.app_dir / corrupt).write_text("-----BEGIN CERTIFICATE-----\nnot base64\n")
    _refused(tls_files.app_dir, corrupt)


def test_an_encrypted_key_is_refused_without_a_prompt(tls_files: TlsFiles) -> None:
    key = tls_files.app_dir / constants.SERVER_KEY_FILE
    encrypted = key.with_suffix(".enc")
    subprocess.run(
        ["openssl", "pkey", "-in", str(key), "-out", str(encrypted), "-aes256",
         "-passout", "pass:secret"],
        check=True, capture_output=True)
    shutil.move(encrypted, key)
    started = time.monotonic()
    _refused(tls_files.app_dir, constants.SERVER_KEY_FILE, "encrypted")
    assert time.monotonic() - started < 5


def test_a_key_not_matching_its_cert_is_refused(tls_files: TlsFiles) -> None:
    shutil.copy2(tls_files.node_dir / constants.CLIENT_KEY_FILE,
                 tls_files.app_dir / constants.SERVER_KEY_FILE)
    _refused(tls_files.app_dir, constants.SERVER_KEY_FILE)


def test_no_files_is_plaintext_and_all_files_is_tls(tls_files: TlsFiles, tmp_path: Path) -> None:
    assert create_server_ssl_context(tmp_path) is None
    assert create_server_ssl_context(tls_files.app_dir) is not None
    assert create_client_ssl_context(tls_files.node_dir, tls_files.node_dir) is not None
    (tls_files.node_dir / constants.CLIENT_KEY_FILE).unlink()
    with pytest.raises(TlsFilesError, match=constants.CLIENT_KEY_FILE):
        create_client_ssl_context(tls_files.node_dir, tls_files.node_dir)


def test_the_server_refuses_to_start_on_partial_material(tls_files: TlsFiles) -> None:
    (tls_files.app_dir / constants.CLIENT_CERT_FILE).unlink()

    class Handler(api.RequestorAppHandler):
        pass

    async def scenario() -> None:
        await asyncio.wait_for(
            api.entrypoint.main(tls_files.app_dir, ["requestor", "0"], requestor_handler=Handler()),
            10)

    with pytest.raises(TlsFilesError, match=constants.CLIENT_CERT_FILE):
        asyncio.run(scenario())
