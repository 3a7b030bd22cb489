"""Kernel layer: the pure-Python scan, selection, and the native wrapper's 2**64 split."""
from __future__ import annotations

import hashlib
import logging
from types import SimpleNamespace

import pytest

from engine import available_kernels, default_kernel, kernels
from engine.kernels import NATIVE_LIMIT, choose_kernel, get_kernel, python_scan
from engine.pow import target_bytes


def plain_first(prefix: bytes, start: int, stop: int, target: bytes | None) -> int | None:
    for n in range(start, stop):
        if target is None or hashlib.sha256(prefix + str(n).encode()).digest() < target:
            return n
    return None


@pytest.mark.parametrize("boundary", [10**k for k in range(1, 21)])
@pytest.mark.parametrize("prefix", [b"", b"p" * 55, b"q" * 63, "ü".encode() * 40])
def test_python_scan_across_digit_boundaries(boundary: int, prefix: bytes) -> None:
    target = target_bytes(5)
    start, stop = boundary - 300, boundary + 300
    hits = []
    n = start
    while (found := python_scan(prefix, n, stop, target)) is not None:
        hits.append(found)
        n = found + 1
    expected = [m for m in range(start, stop) if plain_first(prefix, m, m + 1, target) == m]
    assert hits == expected
    assert expected  # difficulty 5 leaves ~19 hits in 600 nonces


def test_python_scan_edges() -> None:
    assert python_scan(b"x", 5, 5, None) is None
    assert python_scan(b"x", 5, 9, None) == 5
    assert python_scan(b"x", 0, 1000, target_bytes(256)) is None


def fake_native(names: tuple[str, ...], calls: list[tuple[int, int, str]]) -> SimpleNamespace:
    def scan(prefix: bytes, start: int, stop: int, target: bytes | None, kernel: str) -> int | None:
        assert 0 <= start <= stop <= NATIVE_LIMIT
        calls.append((start, stop, kernel))
        return python_scan(prefix, start, stop, target)

    return SimpleNamespace(kernels=lambda: names, scan=scan)


def test_without_native_only_python(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kernels, "_load_native", lambda: None)
    monkeypatch.delenv(kernels.KERNEL_ENV, raising=False)
    assert available_kernels() == ["python"]
    assert default_kernel() == "python"
    with pytest.raises(ValueError, match="'sha-ni' is not available here; available: python"):
        get_kernel("sha-ni")


def test_native_kernels_come_first_and_fastest_is_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kernels, "_load_native", lambda: fake_native(("sha-ni", "portable"), []))
    monkeypatch.delenv(kernels.KERNEL_ENV, raising=False)
    assert available_kernels() == ["sha-ni", "portable", "python"]
    assert default_kernel() == "sha-ni"
    monkeypatch.setenv(kernels.KERNEL_ENV, "portable")
    assert default_kernel() == "portable"
    monkeypatch.setenv(kernels.KERNEL_ENV, "turbo")
    with pytest.raises(ValueError, match="'turbo' is not available"):
        default_kernel()


def test_broken_native_module_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> tuple[str, ...]:
        raise RuntimeError("boom")

    monkeypatch.setattr(kernels, "_load_native", lambda: SimpleNamespace(kernels=broken))
    assert available_kernels() == ["python"]


def test_native_wrapper_leaves_nonces_beyond_2_64_to_python(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, int, str]] = []
    monkeypatch.setattr(kernels, "_load_native", lambda: fake_native(("portable",), calls))
    scan = get_kernel("portable").scan
    target = target_bytes(4)
    start, stop = NATIVE_LIMIT - 40, NATIVE_LIMIT + 200
    got = []
    n = start
    while (found := scan(b"edge", n, stop, target)) is not None:
        got.append(found)
        n = found + 1
    expected = [m for m in range(start, stop) if plain_first(b"edge", m, m + 1, target) == m]
    assert got == expected
    assert all(s_ <= e <= NATIVE_LIMIT for s_, e, _ in calls)
    assert any(m >= NATIVE_LIMIT for m in expected)


def test_choice_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="engine.kernels"):
        choose_kernel("python")
    assert "using scan kernel 'python'" in caplog.text


def test_unknown_kernel_name_is_rejected() -> None:
    with pytest.raises(ValueError, match="scan kernel 'nope' is not available here"):
        get_kernel("nope")


def test_python_scan_hashes_a_long_prefix_once_per_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    # Workers scan one prefix in short slices; a multi-MB input must not be rehashed per slice.
    real = hashlib.sha256
    hashed: list[int] = []

    def counting(data: bytes = b"") -> "hashlib._Hash":
        hashed.append(len(data))
        return real(data)

    monkeypatch.setattr(kernels.hashlib, "sha256", counting)
    prefix = b"x" * 2**20
    target = bytes(32)  # nothing qualifies: every call scans its whole slice
    for start in range(0, 640, 64):
        assert python_scan(prefix, start, start + 64, target) is None
    assert hashed.count(len(prefix)) == 1


def test_python_scan_midstate_cache_follows_the_prefix() -> None:
    target = target_bytes(6)
    one = bytes(range(256)) * 20
    other = bytes(reversed(one))
    mutable = bytearray(one)
    for prefix in (one, one, other, one, mutable):
        assert python_scan(prefix, 0, 3000, target) == plain_first(bytes(prefix), 0, 3000, target)
    mutable[0] ^= 0xFF
    assert python_scan(mutable, 0, 3000, target) == plain_first(bytes(mutable), 0, 3000, target)


def test_missing_native_build_is_a_warning_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import sys

    import engine

    # A failed build leaves no engine._native: importing it raises ImportError.
    monkeypatch.setitem(sys.modules, "engine._native", None)
    monkeypatch.delattr(engine, "_native", raising=False)
    monkeypatch.setattr(kernels, "_warned_missing_native", False)
    monkeypatch.delenv(kernels.KERNEL_ENV, raising=False)
    with caplog.at_level(logging.INFO, logger="engine.kernels"):
        assert available_kernels() == ["python"]
        assert default_kernel() == "python"
    warnings = [r for r in caplog.records if "engine._native is not available" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING


@pytest.mark.parametrize("name", ["avx512", "avx2"])
def test_vector_kernels_can_be_forced_by_name(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    native = pytest.importorskip("engine._native")
    if name not in native.kernels():
        pytest.skip(f"this CPU (or its OS) cannot run {name}")
    monkeypatch.setenv(kernels.KERNEL_ENV, name)
    assert default_kernel() == name
    kernel = choose_kernel(None)
    assert kernel.name == name
    target = target_bytes(8)
    assert kernel.scan(b"forced", 0, 5000, target) == plain_first(b"forced", 0, 5000, target)
