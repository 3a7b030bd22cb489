"""The native scan kernels (engine._native) against hashlib and a plain loop."""
from __future__ import annotations

import hashlib
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

native = pytest.importorskip(
    "engine._native",
    reason="engine._native is not built (no C compiler at install time?); "
    "build it with `pip install -e .` or `python setup.py build_ext --inplace`",
)

KERNELS: tuple[str, ...] = native.kernels()
KNOWN_KERNELS = ("avx512", "sha-ni", "avx2", "armv8-sha2", "portable")
TOP = 2**64


def target_for(difficulty: int) -> bytes | None:
    """The PoW target as 32 big-endian bytes; None when every digest qualifies."""
    return None if difficulty == 0 else (1 << (256 - difficulty)).to_bytes(32, "big")


def digest(prefix: bytes, nonce: int) -> bytes:
    return hashlib.sha256(prefix + str(nonce).encode("ascii")).digest()


def first_below(prefix: bytes, start: int, stop: int, target: bytes | None) -> int | None:
    """The plain loop: what every kernel must return."""
    for nonce in range(start, stop):
        if target is None or digest(prefix, nonce) < target:
            return nonce
    return None


def all_hits(kernel: str, prefix: bytes, start: int, stop: int, target: bytes | None) -> list[int]:
    """Every qualifying nonce in [start, stop), by restarting the scan after each hit."""
    hits = []
    while True:
        found = native.scan(prefix, start, stop, target, kernel)
        if found is None:
            return hits
        assert start <= found < stop
        hits.append(found)
        start = found + 1


def reference_hits(prefix: bytes, start: int, stop: int, target: bytes | None) -> list[int]:
    return [n for n in range(start, stop) if target is None or digest(prefix, n) < target]


def prefix_of(length: int) -> bytes:
    """A deterministic prefix of `length` bytes using every byte value."""
    return bytes((i * 37 + length) % 256 for i in range(length))


# Why a known kernel may be missing here; its tests are skipped with the reason.
MISSING_REASONS = {
    "avx512": "needs AVX512F in CPUID and ZMM/opmask state enabled by the OS (XGETBV)",
    "avx2": "needs AVX2 in CPUID and YMM state enabled by the OS (XGETBV)",
    "sha-ni": "needs the x86 SHA extensions (CPUID.7.EBX.SHA)",
    "armv8-sha2": "needs an AArch64 CPU with the SHA-2 instructions",
}


@pytest.fixture(params=KNOWN_KERNELS)
def kernel(request: pytest.FixtureRequest) -> str:
    if request.param not in KERNELS:
        pytest.skip(f"kernel {request.param!r} is not usable on this machine: {MISSING_REASONS[request.param]}")
    return request.param


def test_kernels_lists_usable_kernels_fastest_first() -> None:
    assert isinstance(KERNELS, tuple)
    assert KERNELS[-1] == "portable"
    assert set(KERNELS) <= set(KNOWN_KERNELS)
    order = [KNOWN_KERNELS.index(k) for k in KERNELS]
    assert order == sorted(order)
    assert len(set(KERNELS)) == len(KERNELS)


@pytest.mark.parametrize("length", range(0, 301))
def test_every_prefix_length(kernel: str, length: int) -> None:
    # 0..130 crosses 9->10 and 99->100, so with a 0..300 byte prefix the
    # suffix starts at every offset of a block and spills into a second one.
    prefix = prefix_of(length)
    target = target_for(2)
    assert all_hits(kernel, prefix, 0, 130, target) == reference_hits(prefix, 0, 130, target)


@pytest.mark.parametrize("length", [0, 1, 31, 46, 47, 53, 54, 55, 56, 63, 64, 65, 110, 119, 127, 128, 200])
def test_full_digest_comparison(kernel: str, length: int) -> None:
    # Targets at, just above and just below one nonce's digest share its first
    # word, so all 256 bits decide (strictly below); neighbours on both sides
    # put that nonce in every lane of the multi-nonce paths.
    prefix = prefix_of(length)
    for nonce in (5, 12345, 10**19 - 1, 10**19, TOP - 6):
        value = int.from_bytes(digest(prefix, nonce), "big")
        for delta in (-1, 0, 1):
            if not 0 <= value + delta < 2**256:
                continue
            target = (value + delta).to_bytes(32, "big")
            assert (nonce in all_hits(kernel, prefix, nonce, nonce + 1, target)) == (delta == 1)
            for before in range(5):
                start, stop = nonce - before, min(TOP, nonce + 6)
                assert all_hits(kernel, prefix, start, stop, target) == reference_hits(prefix, start, stop, target)


@pytest.mark.parametrize("length", [0, 9, 40, 47, 50, 55, 60, 63, 64, 100, 119, 150])
def test_digit_boundaries_up_to_twenty_digits(kernel: str, length: int) -> None:
    prefix = prefix_of(length)
    target = target_for(1)
    for k in range(1, 20):
        start, stop = max(0, 10**k - 7), 10**k + 7
        assert all_hits(kernel, prefix, start, stop, target) == reference_hits(prefix, start, stop, target)
    start = TOP - 40
    assert all_hits(kernel, prefix, start, TOP, target) == reference_hits(prefix, start, TOP, target)


def test_top_of_range(kernel: str) -> None:
    assert native.scan(b"x", TOP - 1, TOP, None, kernel) == TOP - 1
    everything = b"\xff" * 32
    assert native.scan(b"x", TOP - 1, TOP, everything, kernel) == TOP - 1
    assert native.scan(b"x", TOP, TOP, everything, kernel) is None


@pytest.mark.parametrize("difficulty", range(0, 17))
def test_low_difficulty_matches_the_plain_loop(kernel: str, difficulty: int) -> None:
    prefix = b"tutorial-app difficulty"
    target = target_for(difficulty)
    expected = first_below(prefix, 0, 10**6, target)
    assert expected is not None
    assert native.scan(prefix, 0, 10**6, target, kernel) == expected


# At high difficulty the fastest kernel finds the nonce from 0; hashlib then
# checks it qualifies and that nothing in a window before it does, and every
# kernel must return it when started inside that window.
HIGH_WINDOW = 60_000


@pytest.fixture(scope="module")
def high_difficulty_answers() -> dict[int, int]:
    prefix = b"tutorial-app high difficulty"
    answers = {}
    for difficulty in range(17, 25):
        found = native.scan(prefix, 0, TOP, target_for(difficulty), KERNELS[0])
        assert found is not None
        answers[difficulty] = found
    return answers


@pytest.mark.timeout(120)
@pytest.mark.parametrize("difficulty", range(17, 25))
def test_high_difficulty(kernel: str, difficulty: int, high_difficulty_answers: dict[int, int]) -> None:
    prefix = b"tutorial-app high difficulty"
    target = target_for(difficulty)
    found = high_difficulty_answers[difficulty]
    start = max(0, found - HIGH_WINDOW)
    assert digest(prefix, found) < target
    assert first_below(prefix, start, found, target) is None
    assert native.scan(prefix, start, found + HIGH_WINDOW, target, kernel) == found
    # Answers only get rarer with difficulty: no kernel may skip an easier one.
    if difficulty > 17:
        assert found >= high_difficulty_answers[difficulty - 1]


def test_no_solution_returns_none(kernel: str) -> None:
    prefix = b"no solution here"
    impossible = (1).to_bytes(32, "big")  # only an all-zero digest would do
    assert native.scan(prefix, 0, 50_000, impossible, kernel) is None
    assert native.scan(prefix, 0, 50_000, bytes(32), kernel) is None
    target = target_for(12)
    stop = first_below(prefix, 0, 10**6, target)
    assert stop is not None
    assert native.scan(prefix, 0, stop, target, kernel) is None


def test_empty_range_returns_none(kernel: str) -> None:
    for n in (0, 7, 10**19, TOP):
        assert native.scan(b"abc", n, n, None, kernel) is None
        assert native.scan(b"abc", n, n, b"\xff" * 32, kernel) is None


def test_no_target_means_start(kernel: str) -> None:
    assert native.scan(b"abc", 5, 6, None, kernel) == 5
    assert native.scan(b"", 10**19, TOP, None, kernel) == 10**19


def test_accepts_keywords_and_bytes_like_prefix(kernel: str) -> None:
    target = target_for(6)
    expected = first_below(b"kw", 0, 10**5, target)
    assert native.scan(prefix=b"kw", start=0, stop=10**5, target=target, kernel=kernel) == expected
    assert native.scan(bytearray(b"kw"), 0, 10**5, target, kernel) == expected
    assert native.scan(memoryview(b"kw"), 0, 10**5, target, kernel) == expected


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    prefix=st.binary(max_size=300),
    start=st.one_of(
        st.integers(0, 10**6),
        st.integers(1, 19).flatmap(lambda k: st.integers(max(0, 10**k - 200), 10**k + 50)),
        # a change of the digits above the three that vary across the lanes
        st.integers(1, 10**12).map(lambda k: k * 1000 - 20),
        st.integers(TOP - 400, TOP),
    ),
    length=st.integers(0, 400),
    difficulty=st.integers(0, 8),
)
def test_random_cases_match_the_plain_loop(
    kernel: str, prefix: bytes, start: int, length: int, difficulty: int
) -> None:
    stop = min(TOP, start + length)
    target = target_for(difficulty)
    assert native.scan(prefix, start, stop, target, kernel) == first_below(prefix, start, stop, target)


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        ((b"p", 0, 10, None, "sha-3"), ValueError, "unknown kernel"),
        ((b"p", 0, 10, b"\x00" * 31, "portable"), ValueError, "32 bytes"),
        ((b"p", 0, 10, b"\x00" * 33, "portable"), ValueError, "32 bytes"),
        ((b"p", 0, 10, "00" * 32, "portable"), TypeError, "target must be bytes"),
        ((b"p", 0, 10, 5, "portable"), TypeError, "target must be bytes"),
        ((b"p", 10, 9, None, "portable"), ValueError, "start .* must be <= stop"),
        ((b"p", TOP, 9, None, "portable"), ValueError, "start .* must be <= stop"),
        ((b"p", -1, 9, None, "portable"), ValueError, "start must be >= 0"),
        ((b"p", 0, TOP + 1, None, "portable"), ValueError, r"stop must be <= 2\*\*64"),
        ((b"p", 0, 2**100, None, "portable"), ValueError, r"stop must be <= 2\*\*64"),
        ((b"p", 0.0, 9, None, "portable"), TypeError, "start must be an int"),
        ((b"p", True, 9, None, "portable"), TypeError, "start must be an int"),
        ((b"p", 0, "9", None, "portable"), TypeError, "stop must be an int"),
        (("p", 0, 9, None, "portable"), TypeError, "bytes-like"),
        ((b"p", 0, 9, None, 3), TypeError, "str"),
    ],
)
def test_argument_errors(args: tuple, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        native.scan(*args)


def test_known_kernel_missing_on_this_cpu_is_rejected() -> None:
    missing = [k for k in KNOWN_KERNELS if k not in KERNELS]
    if not missing:
        pytest.skip("every known kernel is usable on this CPU")
    with pytest.raises(ValueError, match="not supported on this CPU"):
        native.scan(b"p", 0, 10, None, missing[0])


@pytest.mark.timeout(30)
def test_scan_releases_the_gil(kernel: str) -> None:
    # A scan with no possible hit, long enough (~0.5 s on this class of CPU)
    # for the main thread to show it keeps running Python code meanwhile.
    count = 2**24 if kernel != "portable" else 2**22
    finished = threading.Event()

    def long_scan() -> None:
        native.scan(b"gil", 0, count, bytes(32), kernel)
        finished.set()

    worker = threading.Thread(target=long_scan)
    worker.start()
    try:
        time.sleep(0.01)
        ticks = 0
        while not finished.is_set() and ticks < 20_000:
            ticks += 1
        progressed_during_scan = not finished.is_set()
    finally:
        worker.join()
    assert progressed_during_scan, f"main thread only ran {ticks} steps while the scan held the GIL"


def midstate_first(prefix: bytes, start: int, stop: int, target: bytes) -> int | None:
    """The plain loop with a hashlib midstate, affordable for a multi-megabyte prefix."""
    base = hashlib.sha256(prefix)
    for nonce in range(start, stop):
        h = base.copy()
        h.update(str(nonce).encode("ascii"))
        if h.digest() < target:
            return nonce
    return None


@pytest.mark.timeout(60)
def test_huge_prefix_is_hashed_once_per_prefix_not_per_call(kernel: str) -> None:
    # Workers scan one prefix in ~5 ms slices; an input of several MB must
    # not be rehashed per slice (that cost more than the slice itself).
    prefix = prefix_of(8 * 2**20)
    nothing = bytes(32)
    began = time.perf_counter()
    assert native.scan(prefix, 0, 64, nothing, kernel) is None
    first = time.perf_counter() - began
    began = time.perf_counter()
    for start in range(64, 64 * 21, 64):
        assert native.scan(prefix, start, start + 64, nothing, kernel) is None
    repeated = (time.perf_counter() - began) / 20
    assert repeated < first / 5, f"a repeated slice took {repeated * 1e3:.2f} ms, the first {first * 1e3:.2f} ms"


def test_cached_midstate_never_leaks_into_another_prefix(kernel: str) -> None:
    target = (1 << 250).to_bytes(32, "big")
    one = prefix_of(5000)
    other = bytes(reversed(one))  # same length, different content
    mutable = bytearray(one)
    assert native.scan(one, 0, 2000, target, kernel) == first_below(one, 0, 2000, target)
    assert native.scan(one, 2000, 5000, target, kernel) == first_below(one, 2000, 5000, target)
    assert native.scan(other, 0, 2000, target, kernel) == first_below(other, 0, 2000, target)
    assert native.scan(mutable, 0, 2000, target, kernel) == first_below(one, 0, 2000, target)
    mutable[0] ^= 0xFF
    assert native.scan(mutable, 0, 2000, target, kernel) == first_below(bytes(mutable), 0, 2000, target)
    big = "ü".encode() * 2**20
    assert native.scan(big, 10**6, 10**6 + 3000, target, kernel) == midstate_first(big, 10**6, 10**6 + 3000, target)


def running_minima(prefix: bytes, start: int, count: int, lag: int) -> list[int]:
    """Nonces n in [start + lag, start + count) whose digest is below that of each of the `lag` before them."""
    digests = [digest(prefix, n) for n in range(start, start + count)]
    return [
        start + i for i in range(lag, count) if all(digests[i] < digests[i - k] for k in range(1, lag + 1))
    ]


@pytest.mark.parametrize("length", [0, 5, 38, 42, 50, 60, 70, 119])
@pytest.mark.parametrize("base", [1000, 987_654_321_000, 10**19 - 3000])
def test_a_hit_in_every_lane_position(kernel: str, length: int, base: int) -> None:
    # The only digest below the target belongs to nonce n; scans starting
    # 0..15 nonces before it put n in each lane of a 16-lane group (and of
    # an 8- or 4-lane one), with the range ending right after n, a few
    # nonces later, or right before it (the hit lies past stop: no answer).
    prefix = prefix_of(length)
    winners = running_minima(prefix, base, 600, 15)
    assert winners
    n = winners[0]
    target = (int.from_bytes(digest(prefix, n), "big") + 1).to_bytes(32, "big")
    for lag in range(16):
        start = n - lag
        for stop in (n + 1, n + 3, n + 17):
            assert native.scan(prefix, start, stop, target, kernel) == n
        assert native.scan(prefix, start, n, target, kernel) is None


@pytest.mark.parametrize("length", [0, 17, 41, 46, 53, 61, 64, 99])
def test_ranges_across_changes_of_the_upper_digits(kernel: str, length: int) -> None:
    # The three last digits vary across lanes; every 1000 nonces the ones
    # above change (with carries through several of them).
    prefix = prefix_of(length)
    target = target_for(3)
    for start, stop in [(998, 1013), (1_999_990, 2_000_011), (123_456_999_985, 123_457_000_019), (7, 2021)]:
        assert all_hits(kernel, prefix, start, stop, target) == reference_hits(prefix, start, stop, target)
