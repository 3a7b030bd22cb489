"""The parallel search: the law (same nonce as the reference), progress, concurrency."""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import EngineError, Progress, SearchCancelled, Supervisor, reference_search, search, verify
from engine.kernels import available_kernels


@pytest.fixture(scope="module")
def pools() -> Iterator[dict[int, Supervisor]]:
    """Started pools of 1..4 workers on the default kernel."""
    supervisors = {n: Supervisor(n) for n in range(1, 5)}
    try:
        for supervisor in supervisors.values():
            supervisor.start()
        yield supervisors
    finally:
        for supervisor in supervisors.values():
            supervisor.close()


texts = st.one_of(
    st.text(max_size=20),
    st.text(min_size=60, max_size=150),  # beyond one SHA-256 block
    st.sampled_from(["", "żółw 🐢", "x" * 64, "y" * 119]),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=texts, difficulty=st.integers(0, 18), workers=st.integers(1, 4))
def test_law_default_kernel(pools: dict[int, Supervisor], text: str, difficulty: int, workers: int) -> None:
    solution = pools[workers].search(text, difficulty)
    assert (solution.digest, solution.nonce) == reference_search(text, difficulty)
    assert solution.workers == workers
    assert solution.hashes >= solution.nonce + 1 if difficulty else solution.hashes >= 1


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=texts, difficulty=st.integers(0, 16))
def test_law_python_kernel(python_pool: Supervisor, text: str, difficulty: int) -> None:
    solution = python_pool.search(text, difficulty)
    assert solution.kernel == "python"
    assert (solution.digest, solution.nonce) == reference_search(text, difficulty)


def input_with_nonce_digits(digits: int, difficulty: int) -> str:
    """A deterministic input whose reference nonce has exactly `digits` digits."""
    for i in range(10_000):
        text = f"boundary-{digits}-{i}"
        _, nonce = reference_search(text, difficulty)
        if len(str(nonce)) == digits:
            return text
    raise AssertionError("no such input")  # pragma: no cover


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("digits", "difficulty"), [(2, 4), (3, 7), (4, 10), (5, 14), (6, 17)])
def test_law_across_digit_boundaries(
    pools: dict[int, Supervisor], python_pool: Supervisor, digits: int, difficulty: int
) -> None:
    text = input_with_nonce_digits(digits, difficulty)
    expected = reference_search(text, difficulty)
    for supervisor in (pools[1], pools[2], pools[4], python_pool):
        solution = supervisor.search(text, difficulty)
        assert (solution.digest, solution.nonce) == expected


# The top of the law's difficulty range, where the reference loop takes
# seconds: inputs picked so that it needs ~2 M nonces, the answer itself
# still computed by the reference loop at test time.
@pytest.mark.timeout(120)
@pytest.mark.parametrize(("text", "difficulty"), [
    ("law at difficulty 22, case 1: ż🦀", 22),
    ("law at difficulty 24, case 4: ż🦀", 24),
])
def test_law_at_the_highest_difficulties(pools: dict[int, Supervisor], text: str, difficulty: int) -> None:
    expected = reference_search(text, difficulty)
    for workers, supervisor in pools.items():
        solution = supervisor.search(text, difficulty)
        assert (solution.digest, solution.nonce) == expected, f"{workers} workers"


@pytest.mark.parametrize("kernel", available_kernels())
def test_every_kernel_gives_the_reference_answer(kernel: str) -> None:
    solution = search("kernel check", 12, workers=2, kernel=kernel)
    assert solution.kernel == kernel
    assert (solution.digest, solution.nonce) == reference_search("kernel check", 12)


def test_difficulty_zero_is_nonce_zero(pools: dict[int, Supervisor]) -> None:
    for supervisor in pools.values():
        assert supervisor.search("anything", 0).nonce == 0


def test_solution_verifies(pools: dict[int, Supervisor]) -> None:
    solution = pools[2].search("to verify", 20)
    verify("to verify", 20, solution.digest, solution.nonce)
    assert solution.seconds > 0


@pytest.mark.parametrize("bad", [-1, 257, "3", 3.0, True])
def test_invalid_difficulty_rejected(pools: dict[int, Supervisor], bad: object) -> None:
    with pytest.raises(ValueError, match="difficulty must be"):
        pools[1].search("x", bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="difficulty must be"):
        search("x", bad)  # type: ignore[arg-type]


def test_invalid_worker_count_rejected() -> None:
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match="workers must be a positive int"):
            Supervisor(bad)  # type: ignore[arg-type]


def test_progress_reports_growing_hash_counts(python_pool: Supervisor) -> None:
    seen: list[Progress] = []
    with pytest.raises(SearchCancelled):
        python_pool.search(
            "progress", 256, progress=seen.append, progress_interval=0.05, should_stop=lambda: len(seen) >= 3
        )
    assert len(seen) >= 3
    assert all(b.hashes >= a.hashes and b.seconds > a.seconds for a, b in zip(seen, seen[1:]))
    assert seen[-1].hashes > 0 and seen[-1].rate > 0


def test_one_search_at_a_time(pools: dict[int, Supervisor]) -> None:
    supervisor = pools[1]
    inner: list[BaseException] = []

    def nested() -> bool:
        if not inner:
            try:
                supervisor.search("nested", 1)
            except EngineError as err:
                inner.append(err)
        return True

    with pytest.raises(EngineError):
        supervisor.search("outer", 256, should_stop=nested)
    assert "already running" in str(inner[0])


def test_pool_keeps_its_processes_between_searches(pools: dict[int, Supervisor]) -> None:
    before = pools[2].pids()
    pools[2].search("reuse", 10)
    assert pools[2].pids() == before and len(before) == 2


def test_failing_progress_callback_stops_the_search_and_pool_stays_correct(pools: dict[int, Supervisor]) -> None:
    supervisor = pools[2]

    def broken(_: Progress) -> None:
        raise RuntimeError("callback failed")

    with pytest.raises(RuntimeError, match="callback failed"):
        supervisor.search("abandoned", 256, progress=broken, progress_interval=0.02)
    # Late messages of the abandoned job must not leak into the next search.
    for text in ("next 1", "next 2"):
        solution = supervisor.search(text, 14)
        assert (solution.digest, solution.nonce) == reference_search(text, 14)


def test_progress_is_readable_from_another_thread_while_searching(python_pool: Supervisor) -> None:
    # What a provider reports while Compute blocks in search() on another thread.
    assert Supervisor(1).progress() == Progress(0, 0.0, 0.0)  # nothing searched yet
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            python_pool.search("watched", 256)
        except BaseException as err:  # noqa: BLE001 - recorded for the assertion
            outcome.append(err)

    thread = threading.Thread(target=run)
    thread.start()
    seen: list[Progress] = []
    try:
        deadline = time.perf_counter() + 1.0
        while time.perf_counter() < deadline:
            seen.append(python_pool.progress())
            time.sleep(0.02)
    finally:
        python_pool.cancel()
        thread.join(5.0)
    assert isinstance(outcome[0], SearchCancelled)
    counts = [p.hashes for p in seen]
    assert counts == sorted(counts) and counts[-1] > 0
    # Fresh figures many times a second, not only when the search ends.
    assert len(set(counts)) >= 10
    assert seen[-1].rate > 0 and seen[-1].seconds > 0.5
    # After the search: the final count, no longer growing.
    final = python_pool.progress()
    assert final.hashes == outcome[0].hashes
    time.sleep(0.05)
    assert python_pool.progress() == final


def test_progress_after_a_solution_equals_its_hash_count(pools: dict[int, Supervisor]) -> None:
    solution = pools[2].search("counted", 16)
    assert pools[2].progress().hashes == solution.hashes
