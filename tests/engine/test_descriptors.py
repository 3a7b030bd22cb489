"""engine.descriptors: releasing inherited descriptors without freeing their numbers."""
from __future__ import annotations

import os
import socket

import pytest

from engine import descriptors


@pytest.mark.timeout(10)
def test_a_released_socket_is_let_go_and_its_number_stays_taken() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    number = listener.fileno()
    r, w = os.pipe()
    try:
        assert {number, r, w} <= set(descriptors.inherited())
        assert number not in descriptors.inherited([number])
        descriptors.release([number, r], only=descriptors.is_socket)
        with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
            probe.connect(("127.0.0.1", port))  # nothing listens any more
        assert os.path.realpath(f"/proc/self/fd/{number}") == os.devnull  # the number is still taken
        assert os.fstat(r).st_ino != os.stat(os.devnull).st_ino  # the pipe was not a socket: kept
    finally:
        listener.close()
        os.close(r)
        os.close(w)
