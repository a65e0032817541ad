"""GradingPool: ordering, soft and hard deadlines, crashes, memory cap, threads, argument checks.

Task functions live at module level so worker processes can import them by reference.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable

import pytest

from luffy.rewards.pool import GradingPool, TaskOutcome, call_with_deadline


def _square(x: int) -> int:
    return x * x


def _raise(msg: str) -> None:
    raise KeyError(msg)


def _sleep_swallowing_exceptions(seconds: float) -> str:
    """Python-level slowness that swallows ``Exception`` (as math-verify does) - still interruptible."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        with contextlib.suppress(Exception):  # deliberately swallowing, like math-verify
            time.sleep(0.01)
    return "finished"


def _uninterruptible_sleep(seconds: float) -> str:
    """Stands in for a long C computation: SIGALRM is blocked, so the in-worker deadline cannot fire."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    time.sleep(seconds)
    return "finished"


def _dispatch(kind: str, arg: int) -> object:
    return _uninterruptible_sleep(arg) if kind == "stuck" else _square(arg)


def _exit_hard(code: int) -> None:
    os._exit(code)


def _allocate_mb(mb: int) -> int:
    return len(bytearray(mb * 2**20))


@pytest.fixture(scope="module")
def pool() -> GradingPool:
    with GradingPool(2, kill_grace_s=0.5) as p:
        yield p


def test_map_returns_results_in_input_order(pool: GradingPool) -> None:
    out = pool.map(_square, [(i,) for i in range(50)], timeout_s=5.0)
    assert out == [TaskOutcome("ok", i * i, "") for i in range(50)]


def test_task_exception_is_an_error_not_a_crash(pool: GradingPool) -> None:
    out = pool.map(_raise, [("bad",)], timeout_s=5.0)[0]
    assert out.status == "error" and out.value is None
    assert "KeyError" in out.detail
    assert pool.map(_square, [(3,)], timeout_s=5.0)[0].value == 9


def test_soft_deadline_fires_inside_worker_without_replacing_it(pool: GradingPool) -> None:
    replaced = pool.n_replaced
    start = time.monotonic()
    out = pool.map(_sleep_swallowing_exceptions, [(30.0,)], timeout_s=0.5)[0]
    assert out.status == "timeout"
    assert time.monotonic() - start < 0.5 + pool.kill_grace_s
    assert pool.n_replaced == replaced


def test_hard_deadline_kills_and_replaces_worker(pool: GradingPool) -> None:
    replaced = pool.n_replaced
    tasks = [(1,), (2,), (3,)]
    start = time.monotonic()
    stuck = pool.map(_uninterruptible_sleep, [(30.0,)], timeout_s=0.5)[0]
    elapsed = time.monotonic() - start
    assert stuck.status == "timeout" and "killed" in stuck.detail
    assert elapsed < 0.5 + pool.kill_grace_s + 1.0, elapsed
    assert pool.n_replaced == replaced + 1
    assert [o.value for o in pool.map(_square, tasks, timeout_s=5.0)] == [1, 4, 9]


def test_stuck_task_does_not_block_the_rest_of_the_batch(pool: GradingPool) -> None:
    tasks = [("square", 1), ("stuck", 30), ("square", 2), ("square", 3), ("square", 4)]
    start = time.monotonic()
    out = pool.map(_dispatch, tasks, timeout_s=1.0)
    assert [o.status for o in out] == ["ok", "timeout", "ok", "ok", "ok"]
    assert [o.value for o in out] == [1, None, 4, 9, 16]
    assert time.monotonic() - start < 1.0 + pool.kill_grace_s + 1.0


def test_worker_crash_is_an_error_and_pool_recovers(pool: GradingPool) -> None:
    replaced = pool.n_replaced
    out = pool.map(_exit_hard, [(3,)], timeout_s=5.0)[0]
    assert out.status == "error" and "died (exit code 3)" in out.detail
    assert pool.n_replaced == replaced + 1
    assert [o.value for o in pool.map(_square, [(4,), (5,)], timeout_s=5.0)] == [16, 25]


def test_memory_cap_turns_huge_allocation_into_error() -> None:
    with GradingPool(1, memory_headroom_mb=256) as small:
        out = small.map(_allocate_mb, [(2048,), (16,)], timeout_s=10.0)
    assert out[0].status == "error" and "MemoryError" in out[0].detail
    assert out[1] == TaskOutcome("ok", 16 * 2**20, "")


def test_concurrent_maps_from_threads_are_serialised(pool: GradingPool) -> None:
    results: dict[int, list[int]] = {}

    def run(k: int) -> None:
        results[k] = [o.value for o in pool.map(_square, [(k * 10 + i,) for i in range(10)], timeout_s=5.0)]

    threads = [threading.Thread(target=run, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert results == {k: [(k * 10 + i) ** 2 for i in range(10)] for k in range(3)}


def test_close_stops_workers_and_rejects_further_use() -> None:
    with GradingPool(1, context="spawn") as p:
        procs = [w.process for w in p._workers]
        assert p.map(_square, [(2,)], timeout_s=5.0)[0].value == 4
    assert not any(proc.is_alive() for proc in procs)
    with pytest.raises(RuntimeError, match="after close"):
        p.map(_square, [(2,)], timeout_s=5.0)
    p.close()  # idempotent


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_workers": 0}, "num_workers must be a positive int"),
        ({"context": "fork"}, "context must be 'forkserver' or 'spawn'"),
        ({"kill_grace_s": -1.0}, "kill_grace_s must be >= 0"),
    ],
)
def test_constructor_rejects_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GradingPool(**kwargs)


@pytest.mark.parametrize("timeout_s", [0, -1.0, float("nan"), "5"])
def test_map_rejects_bad_timeout(pool: GradingPool, timeout_s: object) -> None:
    with pytest.raises(ValueError, match="timeout_s must be a positive number"):
        pool.map(_square, [(1,)], timeout_s=timeout_s)  # type: ignore[arg-type]


def test_call_with_deadline_restores_handler_and_refuses_threads() -> None:
    def mine(signum: int, frame: object) -> None:
        pass

    previous = signal.signal(signal.SIGALRM, mine)
    try:
        assert call_with_deadline(_sleep_swallowing_exceptions, (10.0,), 0.2).status == "timeout"
        assert signal.getsignal(signal.SIGALRM) is mine
        assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
        assert call_with_deadline(_square, (7,), None) == TaskOutcome("ok", 49, "")
    finally:
        signal.signal(signal.SIGALRM, previous)

    caught: list[BaseException] = []
    t = threading.Thread(target=lambda: _capture(caught, lambda: call_with_deadline(_square, (1,), 1.0)))
    t.start()
    t.join()
    assert len(caught) == 1 and isinstance(caught[0], RuntimeError) and "main thread" in str(caught[0])


def _capture(sink: list[BaseException], fn: Callable[[], object]) -> None:
    try:
        fn()
    except BaseException as exc:  # noqa: BLE001
        sink.append(exc)
