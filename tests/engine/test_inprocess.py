"""The search on threads of this process: the law, stopping, progress, a failing thread."""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import engine.inprocess as inprocess
from engine import EngineError, Progress, SearchCancelled, reference_search, search_in_process
from engine.kernels import Kernel, default_kernel, get_kernel


@pytest.fixture(autouse=True)
def no_thread_left() -> Iterator[None]:
    """A search returns, or raises, only once all of its threads are done."""
    before = set(threading.enumerate())
    yield
    assert set(threading.enumerate()) - before == set()


@pytest.fixture
def tiny_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    """Slices of 8 nonces that never grow: even a small search spans many slices on every thread."""
    monkeypatch.setattr(inprocess, "FIRST_SLICE", 8)
    monkeypatch.setattr(inprocess, "MAX_SLICE", 8)


def _kernel_wrapping(scan_hook: object) -> Kernel:
    real = get_kernel(default_kernel())
    return Kernel(real.name, scan_hook, real.rate_estimate)  # type: ignore[arg-type]


@settings(max_examples=40, deadline=None)
@given(text=st.text(max_size=80), difficulty=st.integers(0, 14), threads=st.integers(1, 4))
def test_the_smallest_nonce_as_the_guides_loop_finds_it(text: str, difficulty: int, threads: int) -> None:
    solution = search_in_process(text, difficulty, threads=threads)
    assert (solution.digest, solution.nonce) == reference_search(text, difficulty)
    assert solution.workers == threads
    assert solution.hashes >= solution.nonce + 1


@pytest.mark.timeout(60)
@pytest.mark.usefixtures("tiny_slices")
def test_a_hit_in_a_later_slice_never_wins_over_an_earlier_one(monkeypatch: pytest.MonkeyPatch) -> None:
    # 8-nonce slices on 3 threads, every third slice slowed down: hits land on
    # every thread and later slices often finish first. The answer must still
    # be the smallest.
    real = get_kernel(default_kernel())

    def scan(prefix: bytes, start: int, stop: int, target: bytes | None) -> int | None:
        if (start // 8) % 3 == 0:
            time.sleep(0.002)
        return real.scan(prefix, start, stop, target)

    monkeypatch.setattr(inprocess, "get_kernel", lambda name: _kernel_wrapping(scan))
    for n in range(30):
        text = f"order-{n}"
        assert search_in_process(text, 5, threads=3).nonce == reference_search(text, 5)[1], text


@pytest.mark.timeout(30)
@pytest.mark.usefixtures("tiny_slices")
def test_every_thread_scans_at_the_same_time(monkeypatch: pytest.MonkeyPatch) -> None:
    real = get_kernel(default_kernel())
    together = threading.Barrier(3, timeout=10)
    seen: set[int] = set()

    def scan(prefix: bytes, start: int, stop: int, target: bytes | None) -> int | None:
        if threading.get_ident() not in seen:
            seen.add(threading.get_ident())
            together.wait()  # breaks (BrokenBarrierError) unless 3 threads scan at once
        return real.scan(prefix, start, stop, target)

    monkeypatch.setattr(inprocess, "get_kernel", lambda name: _kernel_wrapping(scan))
    solution = search_in_process("three at once", 12, threads=3)
    assert len(seen) == 3
    assert solution.nonce == reference_search("three at once", 12)[1]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("difficulty", [19, 21])
def test_the_threads_scan_at_most_a_window_of_small_slices_past_the_hit(difficulty: int) -> None:
    # Beyond the nonces below the hit: what was claimed before the hit was
    # known, within the window above the lowest slice being scanned.
    waste_allowed = (3 + 1) * inprocess.max_slice(difficulty)
    assert inprocess.max_slice(difficulty) <= (1 << difficulty) // inprocess.SLICES_PER_EXPECTED_SEARCH
    for n in range(4):
        solution = search_in_process(f"waste-{n}", difficulty, threads=3)
        assert solution.nonce + 1 <= solution.hashes <= solution.nonce + 1 + waste_allowed


@pytest.mark.timeout(30)
@pytest.mark.usefixtures("tiny_slices")
def test_while_the_thread_holding_the_hit_is_held_up_the_others_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    # A thread kept off its core (more threads than cores) holds the slice
    # with the answer: the others must not scan on far past it meanwhile.
    real = get_kernel(default_kernel())
    text, difficulty = "held up", 8
    nonce = reference_search(text, difficulty)[1]

    def scan(prefix: bytes, start: int, stop: int, target: bytes | None) -> int | None:
        if start <= nonce < stop:
            time.sleep(0.2)
        return real.scan(prefix, start, stop, target)

    monkeypatch.setattr(inprocess, "get_kernel", lambda name: _kernel_wrapping(scan))
    solution = search_in_process(text, difficulty, threads=3)
    assert solution.nonce == nonce
    assert solution.hashes <= nonce + 1 + (3 + 1) * 8


@pytest.mark.timeout(30)
def test_a_stop_ends_an_endless_search_within_a_slice_with_the_work_done() -> None:
    asked: list[float] = []

    def should_stop() -> bool:
        asked.append(time.perf_counter())
        return asked[-1] - asked[0] > 0.3

    began = time.perf_counter()
    with pytest.raises(SearchCancelled) as stopped:
        search_in_process("forever", 256, threads=2, should_stop=should_stop)
    assert time.perf_counter() - began < 0.3 + 0.25
    assert stopped.value.hashes > 0 and stopped.value.seconds >= 0.3


@pytest.mark.timeout(30)
def test_progress_is_reported_in_the_callers_thread_and_grows() -> None:
    reports: list[tuple[Progress, int]] = []
    deadline = time.perf_counter() + 0.5
    with pytest.raises(SearchCancelled):
        search_in_process("progress", 256, threads=2, progress_interval=0.05,
                          progress=lambda p: reports.append((p, threading.get_ident())),
                          should_stop=lambda: time.perf_counter() > deadline)
    assert len(reports) >= 4
    assert {ident for _, ident in reports} == {threading.get_ident()}
    hashes = [p.hashes for p, _ in reports]
    assert hashes == sorted(hashes) and hashes[-1] > hashes[0]
    assert all(p.rate > 0 for p, _ in reports[1:])


@pytest.mark.timeout(30)
@pytest.mark.usefixtures("tiny_slices")
def test_a_failing_thread_stops_the_search_and_its_error_is_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    real = get_kernel(default_kernel())
    caller = threading.get_ident()

    def scan(prefix: bytes, start: int, stop: int, target: bytes | None) -> int | None:
        if threading.get_ident() != caller:
            raise OSError("injected: helper broke")
        return real.scan(prefix, start, stop, target)

    monkeypatch.setattr(inprocess, "get_kernel", lambda name: _kernel_wrapping(scan))
    with pytest.raises(EngineError, match="a search thread failed: OSError.*helper broke"):
        search_in_process("never found", 256, threads=2)


@pytest.mark.parametrize("kwargs, error", [
    ({"threads": 0}, "threads must be an int from 1 to"),
    ({"threads": True}, "threads must be an int from 1 to"),
    ({"threads": "2"}, "threads must be an int from 1 to"),
    ({"threads": inprocess.MAX_THREADS + 1}, "threads must be an int from 1 to"),
    ({"progress_interval": 0}, "progress_interval must be positive"),
    ({"kernel": "no-such-kernel"}, "scan kernel 'no-such-kernel' is not available"),
])
def test_bad_arguments_are_named(kwargs: dict[str, object], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        search_in_process("x", 4, **kwargs)  # type: ignore[arg-type]


def test_bad_input_and_difficulty_are_refused() -> None:
    with pytest.raises(TypeError, match="input_data must be str"):
        search_in_process(b"bytes", 4)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        search_in_process("x", 257)
