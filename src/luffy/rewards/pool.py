"""Process pool for answer grading with a hard per-answer deadline (method §4, §5.2).

Why a pool: math-verify bounds its own work with ``signal.alarm``, which only works in a process's main
thread (in any other thread its timeouts raise ``ValueError``, and with ``raise_on_error=False`` that turns
into a silent reward of 0). And a SIGALRM handler only runs between Python bytecodes, so a long call into
C code that does not poll for signals cannot be stopped by it. (Every pathological answer tried here, e.g.
``\\boxed{2^{2^{2^{2^{2^{30}}}}}}``, which runs for over 5 minutes unbounded, was stopped by the in-worker
deadline within 0.4 s; the parent-side kill is the backstop.) The reference implementation grades
sequentially in the driver's main thread (method §4); this module grades in worker processes instead.

Design:

* Each worker is a ``multiprocessing`` process (``forkserver`` context by default, ``spawn`` allowed: both
  start from a fresh interpreter, so they are safe after torch/vLLM threads exist) with its own pipe, and
  holds at most one task at a time.
* Inside the worker, a task runs under :func:`call_with_deadline` (a repeating ``ITIMER_REAL`` raising a
  ``BaseException``, so math-verify's ``except Exception`` blocks cannot swallow it): Python-level slowness
  ends cleanly after ``timeout_s``.
* The parent waits on all busy workers with ``multiprocessing.connection.wait``; a worker still busy
  ``kill_grace_s`` after its task's deadline is SIGKILLed and replaced, and the task is reported as
  ``"timeout"``. A worker that dies (segfault, OOM) reports ``"error"`` and is replaced.
* Optionally each worker caps its address-space growth (``RLIMIT_AS``), so a huge power raises
  ``MemoryError`` instead of eating the machine's memory before the deadline.

The pool never raises because of a task: every task gets a :class:`TaskOutcome`.

Costs: a worker needs about 0.4 s (idle machine) to 2 s (loaded) to import math-verify/sympy and warm up
before it takes tasks; the deadline clock starts only when a ready worker receives a task. As with any
spawn/forkserver pool, a script that creates one needs an ``if __name__ == "__main__":`` guard.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import multiprocessing as mp
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any, Literal, Self

from luffy.rewards.scoring import DEFAULT_TIMEOUT_S, score_or_raise

logger = logging.getLogger(__name__)

Status = Literal["ok", "timeout", "error"]

#: How long a newly started worker may take to import its modules and report ready.
START_TIMEOUT_S = 60.0
#: After this many consecutive worker start failures, remaining tasks are reported as errors.
MAX_START_FAILURES = 3


@dataclass(frozen=True)
class TaskOutcome:
    """Result of one task: ``status`` is ``"ok"`` (``value`` holds the return value), ``"timeout"`` or
    ``"error"`` (``value`` is None; ``detail`` says what happened). ``seconds``: from the moment a worker
    received the task to the moment the parent had its outcome (None if it never ran)."""

    status: Status
    value: Any = None
    detail: str = ""
    seconds: float | None = field(default=None, compare=False)  # a measurement, not part of the result


class DeadlineExceeded(BaseException):
    """Raised inside a task by :func:`call_with_deadline`. A ``BaseException`` on purpose: math-verify and
    sympy catch ``Exception`` broadly and would otherwise swallow it."""


def call_with_deadline(fn: Callable[..., Any], args: Sequence[Any], timeout_s: float | None) -> TaskOutcome:
    """Run ``fn(*args)`` in the main thread with a SIGALRM deadline of ``timeout_s`` seconds.

    The timer re-fires every 50 ms after the deadline, so a handler exception swallowed by a bare
    ``except`` is raised again. It cannot interrupt a single long C call (that needs :class:`GradingPool`).
    An itimer already armed by the caller is restored afterwards (minus the elapsed time).
    ``timeout_s=None`` runs without a deadline. Exceptions from ``fn`` become ``status="error"``.
    """
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("call_with_deadline must run in the main thread (it uses SIGALRM)")
    if timeout_s is not None and not timeout_s > 0:
        raise ValueError(f"timeout_s must be a positive number of seconds or None, got {timeout_s!r}")

    def _on_alarm(signum: int, frame: Any) -> None:
        raise DeadlineExceeded()

    start = time.monotonic()
    old_handler = old_timer = None
    if timeout_s is not None:
        old_handler = signal.signal(signal.SIGALRM, _on_alarm)
        old_timer = signal.setitimer(signal.ITIMER_REAL, timeout_s, 0.05)
    try:
        try:
            return TaskOutcome("ok", fn(*args))
        finally:
            if timeout_s is not None:
                _disarm_timer()
    except DeadlineExceeded:
        return TaskOutcome("timeout", None, f"exceeded {timeout_s} s")
    except Exception as exc:  # noqa: BLE001 - any failure of the task is reported, never raised
        return TaskOutcome("error", None, f"{type(exc).__name__}: {exc}")
    finally:
        if old_handler is not None:
            signal.signal(signal.SIGALRM, old_handler)
        if old_timer is not None and old_timer[0] > 0:
            remaining = max(old_timer[0] - (time.monotonic() - start), 1e-3)
            signal.setitimer(signal.ITIMER_REAL, remaining, old_timer[1])


def _disarm_timer() -> None:
    """Stop ITIMER_REAL, absorbing a DeadlineExceeded that fires while doing so."""
    while True:
        try:
            signal.setitimer(signal.ITIMER_REAL, 0)
            return
        except DeadlineExceeded:
            continue


# --------------------------------------------------------------------------- worker side


def _worker_main(conn: Connection, memory_headroom_mb: int | None) -> None:
    """Worker loop: receive ``(task_id, fn, args, timeout_s)``, reply ``(task_id, status, value, detail)``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's business
    if memory_headroom_mb is not None:
        _limit_address_space(memory_headroom_mb)
    _warm_up()
    conn.send(("ready", os.getpid()))
    while True:
        try:
            task_id, fn, args, timeout_s = conn.recv()
        except (EOFError, OSError):  # parent closed the pipe or died
            return
        out = call_with_deadline(fn, args, timeout_s)
        value = out.value
        try:
            conn.send((task_id, out.status, value, out.detail))
        except (EOFError, OSError):
            return
        except Exception as exc:  # noqa: BLE001 - e.g. an unpicklable return value
            conn.send((task_id, "error", None, f"cannot send result: {type(exc).__name__}: {exc}"))


def _limit_address_space(headroom_mb: int) -> None:
    """Cap virtual memory at (current size + headroom), so growth past it raises MemoryError."""
    try:
        import resource

        with open(f"/proc/{os.getpid()}/statm") as f:
            current = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        limit = current + headroom_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ImportError, OSError, ValueError) as exc:  # not Linux, or a hard limit below ours
        logger.debug("grading worker: address-space limit not applied (%s)", exc)


def _warm_up() -> None:
    """Import math-verify and run one tiny comparison (the first call builds regexes, ~50 ms).

    The same call the training reward makes in a main thread: the method §4 score under a deadline.
    """
    try:
        call_with_deadline(score_or_raise, ("</think>\\boxed{1}", "1"), DEFAULT_TIMEOUT_S)
    except Exception:  # warm-up is an optimisation only
        logger.debug("grading worker warm-up failed", exc_info=True)


# --------------------------------------------------------------------------- parent side


class _Worker:
    def __init__(self, ctx: mp.context.BaseContext, memory_headroom_mb: int | None) -> None:
        self.conn, child_conn = ctx.Pipe(duplex=True)
        self.process = ctx.Process(
            target=_worker_main, args=(child_conn, memory_headroom_mb), daemon=True, name="luffy-grader"
        )
        self.process.start()
        child_conn.close()
        self.started_at = time.monotonic()
        self.ready = False
        self.task: tuple[int, int, float] | None = None  # (task_id, index, hard deadline)

    def kill(self) -> None:
        """SIGKILL (if still alive) and reap; idempotent."""
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5.0)
        self.conn.close()


class GradingPool:
    """A reusable pool of grading processes with a per-task deadline enforced by the parent.

    Args:
        num_workers: number of worker processes; default :func:`default_num_workers`.
        context: ``"forkserver"`` (default where available) or ``"spawn"``. ``"fork"`` is refused: forking a
            process that runs torch/vLLM threads can deadlock.
        kill_grace_s: a worker still busy this long after its task's deadline is killed and replaced.
        memory_headroom_mb: address-space growth allowed per worker (``RLIMIT_AS``); None for no cap.

    Use as a context manager, or call :meth:`close`. :meth:`map` is thread-safe (calls are serialised), so
    the pool may be called from any thread.
    """

    def __init__(
        self,
        num_workers: int | None = None,
        *,
        context: str | None = None,
        kill_grace_s: float = 1.0,
        memory_headroom_mb: int | None = 4096,
    ) -> None:
        if num_workers is None:
            num_workers = default_num_workers()
        if not isinstance(num_workers, int) or num_workers < 1:
            raise ValueError(f"GradingPool: num_workers must be a positive int, got {num_workers!r}")
        if context is None:
            context = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
        if context not in ("forkserver", "spawn"):
            raise ValueError(f"GradingPool: context must be 'forkserver' or 'spawn', got {context!r}")
        if not kill_grace_s >= 0:
            raise ValueError(f"GradingPool: kill_grace_s must be >= 0, got {kill_grace_s!r}")
        self.num_workers = num_workers
        self.kill_grace_s = float(kill_grace_s)
        self._ctx = mp.get_context(context)
        self._headroom = memory_headroom_mb
        self._lock = threading.Lock()
        self._closed = False
        self._next_task_id = 0
        #: Workers killed (timeouts) or found dead (crashes) and replaced since the pool started.
        self.n_replaced = 0
        self._workers = [_Worker(self._ctx, self._headroom) for _ in range(num_workers)]

    # -- public API -------------------------------------------------------------------------------

    def map(
        self, fn: Callable[..., Any], arg_tuples: Sequence[Sequence[Any]], *, timeout_s: float
    ) -> list[TaskOutcome]:
        """Run ``fn(*args)`` for every element of ``arg_tuples``; return outcomes in input order.

        ``fn`` must be a module-level function (it is pickled by reference). Each task has ``timeout_s``
        seconds from the moment a ready worker receives it.
        """
        if not (isinstance(timeout_s, (int, float)) and timeout_s > 0):
            raise ValueError(f"GradingPool.map: timeout_s must be a positive number, got {timeout_s!r}")
        with self._lock:
            if self._closed:
                raise RuntimeError("GradingPool.map called after close()")
            return self._run(fn, list(arg_tuples), float(timeout_s))

    def close(self) -> None:
        """Stop all workers (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for w in self._workers:
                w.kill()
            self._workers = []

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # best effort; close() is the real API
        with contextlib.suppress(Exception):
            if not self._closed:
                self.close()

    # -- scheduling loop --------------------------------------------------------------------------

    def _run(self, fn: Callable[..., Any], tasks: list[Sequence[Any]], timeout_s: float) -> list[TaskOutcome]:
        results: list[TaskOutcome | None] = [None] * len(tasks)
        pending = deque(range(len(tasks)))
        start_failures = 0
        while pending or any(w.task is not None for w in self._workers):
            # 1. hand tasks to ready, idle workers
            for i, w in enumerate(self._workers):
                if not pending:
                    break
                if w.ready and w.task is None:
                    idx = pending.popleft()
                    task_id = self._next_task_id
                    self._next_task_id += 1
                    try:
                        w.conn.send((task_id, fn, tuple(tasks[idx]), timeout_s))
                    except (OSError, ValueError):  # died while idle
                        pending.appendleft(idx)
                        self._replace(i)
                        continue
                    except Exception as exc:  # noqa: BLE001 - unpicklable task
                        results[idx] = TaskOutcome(
                            "error", None, f"cannot send task: {type(exc).__name__}: {exc}"
                        )
                        continue
                    sent = time.monotonic()
                    w.task = (task_id, idx, sent + timeout_s + self.kill_grace_s, sent)
            if start_failures >= MAX_START_FAILURES:
                while pending:
                    results[pending.popleft()] = TaskOutcome("error", None, "grading workers fail to start")
                if not any(w.task is not None for w in self._workers):
                    break

            # 2. wait for a reply, a death, or the nearest deadline
            now = time.monotonic()
            deadlines = [w.task[2] for w in self._workers if w.task is not None]
            deadlines += [w.started_at + START_TIMEOUT_S for w in self._workers if not w.ready]
            wait_s = max(0.0, min(deadlines) - now) if deadlines else None
            watch = [w.conn for w in self._workers] + [w.process.sentinel for w in self._workers]
            ready_objs = set(wait(watch, timeout=wait_s))

            # 3. collect
            now = time.monotonic()
            for i, w in enumerate(list(self._workers)):
                if w.conn in ready_objs:
                    try:
                        msg = w.conn.recv()
                    except (EOFError, OSError):
                        msg = None
                    if msg is None:
                        start_failures += self._on_death(i, results, "worker died")
                    elif msg[0] == "ready":
                        w.ready = True
                        start_failures = 0
                    elif w.task is not None and msg[0] == w.task[0]:
                        _, status, value, detail = msg
                        results[w.task[1]] = TaskOutcome(status, value, detail, now - w.task[3])
                        w.task = None
                elif w.process.sentinel in ready_objs:
                    start_failures += self._on_death(i, results, "worker died")
                elif w.task is not None and now >= w.task[2]:
                    results[w.task[1]] = TaskOutcome(
                        "timeout", None, f"killed after {timeout_s} s + {self.kill_grace_s} s grace", now - w.task[3]
                    )
                    w.task = None
                    self._replace(i)
                elif not w.ready and now >= w.started_at + START_TIMEOUT_S:
                    start_failures += self._on_death(i, results, "worker did not start")
        return [r if r is not None else TaskOutcome("error", None, "not run") for r in results]

    def _on_death(self, i: int, results: list[TaskOutcome | None], detail: str) -> int:
        """Record the dead worker's task as an error and replace it; return 1 if it died before ready."""
        w = self._workers[i]
        w.kill()
        detail = f"{detail} (exit code {w.process.exitcode})"
        if w.task is not None:
            results[w.task[1]] = TaskOutcome("error", None, detail, time.monotonic() - w.task[3])
            w.task = None
        was_starting = not w.ready
        if was_starting:
            logger.warning("grading worker failed to start: %s", detail)
        self._replace(i)
        return int(was_starting)

    def _replace(self, i: int) -> None:
        self._workers[i].kill()
        self._workers[i] = _Worker(self._ctx, self._headroom)
        self.n_replaced += 1


# --------------------------------------------------------------------------- shared default pool

_shared: dict[int, GradingPool] = {}
_shared_lock = threading.Lock()


def default_num_workers() -> int:
    """Default worker count: 2, or 1 on a single-core machine."""
    return min(2, os.cpu_count() or 1)


def shared_pool(num_workers: int | None = None) -> GradingPool:
    """A process-wide pool with ``num_workers`` workers (default :func:`default_num_workers`), created on
    first use, reused by later calls with the same count, and closed at interpreter exit."""
    n = default_num_workers() if num_workers is None else num_workers
    with _shared_lock:
        pool = _shared.get(n)
        if pool is None or pool._closed:
            pool = _shared[n] = GradingPool(n)
            atexit.register(pool.close)
        return pool
