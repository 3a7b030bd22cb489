"""The pool's lifetime: cancel, should_stop, worker death and stall, start and close; no process left behind."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable

import psutil
import pytest

from engine import (
    BENCHMARK_MAX_SCORE,
    EngineError,
    PoolStartFailed,
    SearchCancelled,
    Supervisor,
    WorkerCrashed,
    WorkerStalled,
    benchmark,
    reference_search,
    search,
)


def assert_gone(pids: list[int], within: float = 1.0) -> None:
    deadline = time.monotonic() + within
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
        time.sleep(0.01)
    assert not alive, f"workers still running: {alive}"


def test_cancel_from_another_thread_stops_promptly() -> None:
    supervisor = Supervisor(2)
    try:
        supervisor.search("boot", 0)  # workers up, so the cancelled search has hashed
        pids = supervisor.pids()
        cancelled_at: list[float] = []

        def cancel() -> None:
            cancelled_at.append(time.perf_counter())
            supervisor.cancel()
            supervisor.cancel()  # idempotent

        timer = threading.Timer(0.3, cancel)
        timer.start()
        with pytest.raises(SearchCancelled) as stopped:
            supervisor.search("never", 256)  # no nonce meets difficulty 256
        returned = time.perf_counter()
        timer.join()
        assert returned - cancelled_at[0] < 1.0
        assert stopped.value.hashes > 0
    finally:
        supervisor.close()
    assert_gone(pids)
    assert supervisor.pids() == []


def test_should_stop_cancels_and_pool_stays_usable() -> None:
    with Supervisor(2) as supervisor:
        began = time.perf_counter()
        with pytest.raises(SearchCancelled):
            supervisor.search("never", 256, should_stop=lambda: time.perf_counter() - began > 0.2)
        assert time.perf_counter() - began < 1.2
        assert supervisor.search("after cancel", 0).nonce == 0


def test_cancel_before_search_does_not_cancel_the_next_one() -> None:
    with Supervisor(1) as supervisor:
        supervisor.cancel()
        assert supervisor.search("fresh", 4).nonce >= 0


def test_killed_worker_raises_instead_of_hanging() -> None:
    supervisor = Supervisor(2)
    try:
        supervisor.start()
        pids = supervisor.pids()
        began = time.perf_counter()
        killed: list[int] = []

        def kill_one() -> bool:
            if not killed and time.perf_counter() - began > 0.2:
                psutil.Process(pids[0]).kill()
                killed.append(pids[0])
            return False

        with pytest.raises(WorkerCrashed, match=f"pid {pids[0]}"):
            supervisor.search("never", 256, should_stop=kill_one)
        assert time.perf_counter() - began < 2.0
        assert_gone(pids)
        # The next search starts a fresh pool.
        assert supervisor.search("again", 0).nonce == 0
        assert set(supervisor.pids()).isdisjoint(pids)
    finally:
        supervisor.close()


def endless_search_in_thread(supervisor: Supervisor) -> tuple[threading.Thread, list[BaseException]]:
    """A difficulty-256 search running in a thread for 0.3 s; what it raises lands in the list."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            supervisor.search("never", 256)
        except BaseException as err:  # noqa: BLE001 - recorded for the assertion
            errors.append(err)

    thread = threading.Thread(target=run)
    thread.start()
    time.sleep(0.3)
    return thread, errors


def test_close_during_search_cancels_it_and_leaves_nothing() -> None:
    supervisor = Supervisor(2)
    supervisor.start()
    pids = supervisor.pids()
    thread, errors = endless_search_in_thread(supervisor)
    began = time.perf_counter()
    supervisor.close()
    thread.join(2.0)
    assert not thread.is_alive()
    assert time.perf_counter() - began < 1.5
    assert len(errors) == 1 and isinstance(errors[0], SearchCancelled)
    assert_gone(pids)
    supervisor.close()  # idempotent
    with pytest.raises(EngineError, match="closed"):
        supervisor.search("x", 1)


def test_close_escalates_to_terminate_for_a_stuck_worker() -> None:
    supervisor = Supervisor(1)
    supervisor.start()
    supervisor.search("boot", 0)
    pid = supervisor.pids()[0]
    psutil.Process(pid).suspend()  # a stopped worker cannot answer the close request
    began = time.perf_counter()
    supervisor.close(timeout=0.2)
    assert time.perf_counter() - began < 2.0
    assert_gone([pid])


def test_start_is_idempotent() -> None:
    with Supervisor(2) as supervisor:
        supervisor.start()
        pids = supervisor.pids()
        supervisor.start()
        assert supervisor.pids() == pids


def test_benchmark_score_is_a_rate_within_bounds() -> None:
    began = time.perf_counter()
    score = benchmark(0.3, workers=1, kernel="python")
    assert time.perf_counter() - began < 2.0
    # python kernel: somewhere between 0.05 and 20 million hashes per second
    assert 0.05 < score < 20 < BENCHMARK_MAX_SCORE
    with pytest.raises(ValueError):
        benchmark(5.0)


def test_one_shot_search_cancelled_by_should_stop_leaves_no_worker() -> None:
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    calls: list[float] = []

    def should_stop() -> bool:
        calls.append(time.perf_counter())
        return calls[-1] - calls[0] > 0.4

    with pytest.raises(SearchCancelled):
        search("never", 256, workers=2, should_stop=should_stop)
    stopped = time.perf_counter()
    # Polled every 10 ms or so while waiting: a provider's shutdown is seen at once.
    gaps = [b - a for a, b in zip(calls, calls[1:])]
    assert max(gaps[len(gaps) // 2:]) < 0.1 and len(calls) >= 10
    assert stopped - calls[-1] < 1.0
    left = [p for p in psutil.Process().children(recursive=True) if p.pid not in before and p.is_running()
            and p.status() != psutil.STATUS_ZOMBIE]
    assert left == []


def test_worker_killed_while_idle_is_reported_at_the_next_search() -> None:
    with Supervisor(2) as supervisor:
        supervisor.search("boot", 0)
        victim = psutil.Process(supervisor.pids()[1])
        victim.kill()
        victim.wait(2)
        with pytest.raises(WorkerCrashed, match=f"pid {victim.pid}"):
            supervisor.search("after death", 8)
        assert supervisor.search("recovered", 8).nonce >= 0


def test_benchmark_measures_booted_workers_only(monkeypatch: pytest.MonkeyPatch) -> None:
    # Workers import for ~0.1 s after start(); counting that in a 1 s window
    # understated the score by several percent, more on a loaded machine.
    booted_at_measure: list[tuple[int, int]] = []
    real_search = Supervisor.search

    def recording(self: Supervisor, input_data: str, difficulty: int, **kw: object) -> object:
        if difficulty == 256:
            booted_at_measure.append((len(self._ready), self.workers))
        return real_search(self, input_data, difficulty, **kw)

    monkeypatch.setattr(Supervisor, "search", recording)
    assert benchmark(0.1, workers=2, kernel="python") > 0
    assert booted_at_measure == [(2, 2)]


def test_close_without_grace_during_search_raises_search_cancelled(monkeypatch: pytest.MonkeyPatch) -> None:
    # close(timeout=0) tears the pool down under a running search; the search
    # thread then wakes on dead workers whose process objects close() may
    # already have closed. It must still report SearchCancelled.
    import engine.supervisor as supervisor_module

    closed = threading.Event()
    real_wait = supervisor_module.wait

    def wait_until_closed(objects: list, timeout: float | None = None) -> list:
        ready = real_wait(objects, timeout)
        if any(isinstance(obj, int) for obj in ready):  # a worker's sentinel: the pool is going
            closed.wait(5.0)
        return ready

    monkeypatch.setattr(supervisor_module, "wait", wait_until_closed)
    supervisor = Supervisor(2)
    supervisor.start()
    pids = supervisor.pids()
    thread, errors = endless_search_in_thread(supervisor)
    supervisor.close(timeout=0)
    closed.set()
    thread.join(2.0)
    assert not thread.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], SearchCancelled), errors
    assert_gone(pids)


@pytest.mark.parametrize("busy", [False, True])
def test_workers_exit_when_their_parent_is_killed(busy: bool) -> None:
    import os
    import signal
    import subprocess
    import sys

    code = (
        "import sys, threading, time, engine\n"
        "s = engine.Supervisor(2); s.start(); s.search('w', 0)\n"
        "print(*s.pids(), flush=True)\n"
        f"s.search('x', 256) if {busy} else time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        pids = [int(p) for p in parent.stdout.readline().split()]
        assert len(pids) == 2
        time.sleep(0.2)
    finally:
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()
    assert_gone(pids, within=2.0)


# --- liveness: the watchdog (issue 10, finding 10) -------------------------------------------------


def suspend_after(supervisor: Supervisor, delay: float, victims: list[int]) -> Callable[[], bool]:
    """A should_stop that SIGSTOPs the pool's first worker once, `delay` s into the search."""
    began = time.perf_counter()

    def stop_one() -> bool:
        if not victims and time.perf_counter() - began > delay:
            pid = supervisor.pids()[0]
            psutil.Process(pid).suspend()
            victims.append(pid)
        return False

    return stop_one


def test_a_stopped_worker_fails_the_search_within_the_stall_bound() -> None:
    # A SIGSTOPped worker used to hang the search forever: it never sends
    # "done", never dies, and the healthy one idles once the chunks below run out.
    with Supervisor(2, stall_seconds=0.5) as supervisor:
        supervisor.search("boot", 0)
        pids = supervisor.pids()
        victims: list[int] = []
        began = time.perf_counter()
        with pytest.raises(WorkerStalled, match=rf"pid {pids[0]}\).*no progress"):
            supervisor.search("never", 256, should_stop=suspend_after(supervisor, 0.2, victims))
        assert 0.6 < time.perf_counter() - began < 2.5
        assert victims == [pids[0]]
        assert_gone(pids)  # the stopped one is killed, the healthy one stopped
        assert isinstance(WorkerStalled("x"), WorkerCrashed)  # callers handling crashes handle stalls
        # The next search runs on a fresh pool and is still exact.
        solution = supervisor.search("after a stall", 12)
        assert (solution.digest, solution.nonce) == reference_search("after a stall", 12)
        assert set(supervisor.pids()).isdisjoint(pids)


def test_a_worker_stopped_while_idle_fails_the_next_search() -> None:
    with Supervisor(2, stall_seconds=0.5) as supervisor:
        supervisor.search("boot", 0)
        pids = supervisor.pids()
        psutil.Process(pids[1]).suspend()
        began = time.perf_counter()
        with pytest.raises(WorkerStalled, match=f"pid {pids[1]}"):
            supervisor.search("never", 256)
        assert time.perf_counter() - began < 2.5
        assert_gone(pids)


def test_a_worker_stopped_while_booting_is_caught_by_the_boot_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    import engine.supervisor as supervisor_module

    monkeypatch.setattr(supervisor_module, "BOOT_SECONDS", 0.8)
    with Supervisor(2, stall_seconds=0.3) as supervisor:
        supervisor.start()
        pids = supervisor.pids()
        psutil.Process(pids[0]).suspend()  # most likely still importing: it may never say "ready"
        began = time.perf_counter()
        with pytest.raises(WorkerStalled, match=f"pid {pids[0]}"):
            supervisor.search("never", 256)
        assert time.perf_counter() - began < 2.5
        assert_gone(pids)


def test_a_healthy_search_longer_than_the_stall_bound_is_not_stalled() -> None:
    with Supervisor(2, kernel="python", stall_seconds=0.5) as supervisor:
        began = time.perf_counter()
        with pytest.raises(SearchCancelled):
            supervisor.search("busy", 256, should_stop=lambda: time.perf_counter() - began > 1.5)
        solution = supervisor.search("busy but solvable", 14)
        assert solution.nonce == reference_search("busy but solvable", 14)[1]


def test_stall_seconds_must_be_positive() -> None:
    for bad in (0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="stall_seconds"):
            Supervisor(1, stall_seconds=bad)


# --- liveness: pool start all or nothing (issue 10, finding 11) --------------------------------------


def fail_on_call(monkeypatch: pytest.MonkeyPatch, owner: object, name: str, k: int) -> list[int]:
    """Make owner.name raise OSError on its k-th call from now on (1-based); returns the call counter."""
    real = getattr(owner, name)
    calls = [0]

    def failing(*args: object, **kw: object) -> object:
        calls[0] += 1
        if calls[0] >= k:
            raise OSError(24, "injected: too many open files")
        return real(*args, **kw)

    monkeypatch.setattr(owner, name, failing)
    return calls


@pytest.mark.parametrize("method", ["fork", "spawn"])
@pytest.mark.parametrize("where", ["process start", "pipe"])
def test_a_pool_start_failing_half_way_leaves_nothing_and_can_be_retried(
    monkeypatch: pytest.MonkeyPatch, where: str, method: str
) -> None:
    import multiprocessing.context

    import engine.supervisor

    monkeypatch.setattr(engine.supervisor, "pool_start_method", lambda: method)

    me = psutil.Process()
    with Supervisor(1) as warm:  # multiprocessing's shared heap keeps one fd: open it before counting
        warm.start()
    fds, children = me.num_fds(), {p.pid for p in me.children()}
    supervisor = Supervisor(3)
    try:
        with monkeypatch.context() as patch:
            if where == "process start":
                process = multiprocessing.context.ForkProcess if method == "fork" else \
                    multiprocessing.context.SpawnProcess
                fail_on_call(patch, process, "start", 2)
            else:
                fail_on_call(patch, multiprocessing.get_context(method), "Pipe", 3)
            with pytest.raises(PoolStartFailed, match=r"worker (2|3) of 3: .*injected"):
                supervisor.start()
            assert supervisor.pids() == []
            assert {p.pid for p in me.children() if p.status() != psutil.STATUS_ZOMBIE} <= children
            assert me.num_fds() == fds
            # While the fault lasts, a search says so instead of IndexError.
            with pytest.raises(PoolStartFailed):
                supervisor.search("during the fault", 4)
            assert me.num_fds() == fds
        # The fault gone, the same supervisor starts and searches on all its workers.
        solution = supervisor.search("after the fault", 10)
        assert (solution.digest, solution.nonce) == reference_search("after the fault", 10)
        assert len(supervisor.pids()) == 3 and solution.workers == 3
    finally:
        supervisor.close()
    assert me.num_fds() == fds


def test_a_pause_of_the_whole_pool_is_not_a_stall() -> None:
    # `docker pause` freezes the supervisor with its workers; the monotonic
    # clock runs on. After the thaw, the time nobody ran must not count as
    # the workers' stillness.
    import os
    import signal
    import subprocess
    import sys

    code = (
        "import time, engine\n"
        "s = engine.Supervisor(2, stall_seconds=0.5); s.search('w', 0)\n"
        "print(*s.pids(), flush=True)\n"
        "t = time.perf_counter()\n"
        "try:\n"
        "    s.search('x', 256, should_stop=lambda: time.perf_counter() - t > 2.5)\n"
        "except engine.SearchCancelled:\n"
        "    print('cancelled', flush=True)\n"
        "except engine.WorkerStalled as e:\n"
        "    print('stalled', e, flush=True)\n"
        "s.close()\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        group = [child.pid, *(int(p) for p in child.stdout.readline().split())]
        time.sleep(0.2)
        for pid in group:
            os.kill(pid, signal.SIGSTOP)
        time.sleep(1.2)  # more than twice the stall bound
        for pid in group:  # the supervisor thaws first: the worst order a freezer may pick
            os.kill(pid, signal.SIGCONT)
        out, _ = child.communicate(timeout=20)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert out.strip() == "cancelled"
    assert_gone(group[1:])


def test_the_watchdog_counts_only_time_it_watched() -> None:
    from engine.supervisor import WATCH_STEP_SECONDS, _Watchdog

    dog = _Watchdog(2, now=0.0)
    dog.look({0: 0, 1: 0}, 0.01)
    for k in range(2, 101):  # one second of looks every 10 ms; worker 1 keeps hashing
        dog.look({0: 0, 1: k}, k * 0.01)
    assert dog.still[0] == pytest.approx(0.99) and dog.still[1] == 0.0
    dog.look({0: 0, 1: 101}, 60.0)  # this process did not run for a minute
    assert dog.still[0] == pytest.approx(0.99 + WATCH_STEP_SECONDS)
    dog.look({0: 5}, 60.01)  # moved: still again from zero; a finished worker is not looked at
    assert dog.still == [0.0, 0.0]
