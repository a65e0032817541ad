"""The LUFFY training reward: math-verify accuracy on the text after ``</think>`` (method §4, version 3).

Procedure (method §4, steps 2-8), for ``response`` = the decoded text after the generation prompt:

1. ``s = "<think>\\n" + response``; if ``"</think>"`` is not in ``s`` the reward is 0.
2. ``solution = s.split("</think>")[1]`` (the text between the first and second ``</think>``).
3. ``pred = parse(solution)``, ``gold = parse("$" + ground_truth + "$")`` with math-verify's default
   extraction, and ``verify(gold, pred)`` with the gold FIRST.
4. 1.0 if verified else 0.0. Any exception gives 0.0. No format or length terms.

Steps 1-4 without a time limit are :func:`luffy.rewards.scoring.score_or_raise` (re-exported here, with
:func:`~luffy.rewards.scoring.solution_segment` and :func:`~luffy.rewards.scoring.check_text_pairs`);
this module bounds the time and turns failures into 0.

Deliberate deviations from the reference (which calls math-verify with its own SIGALRM timeouts,
sequentially in the driver's main thread):

* math-verify's per-call timeouts (5 s per parse and per comparison in 0.9) are replaced by one deadline
  per answer (``timeout_s``, default 5 s). Only answers that hit a timeout can score differently.
* The batched form grades in a :class:`~luffy.rewards.pool.GradingPool` whose parent kills a worker that
  overruns (a SIGALRM cannot stop a long big-integer computation), so grading never hangs.
* The single form called outside the main thread grades through the shared pool instead of failing (in a
  thread, math-verify's timeouts raise ``ValueError``, which it turns into a silent 0).
* Version pin: the paper used math-verify 0.6.0; this project uses 0.9.0 (method §4 table rows still hold).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from luffy.rewards.pool import GradingPool, Status, call_with_deadline, shared_pool
from luffy.rewards.scoring import (
    DEFAULT_TIMEOUT_S,
    THINK_CLOSE,
    THINK_OPEN,
    check_text_pairs,
    score_or_raise,
    solution_segment,
)

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "THINK_CLOSE",
    "THINK_OPEN",
    "RewardResult",
    "batch_math_verify_reward",
    "check_text_pairs",
    "math_verify_reward",
    "score_or_raise",
    "solution_segment",
]


def math_verify_reward(response: str, ground_truth: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> float:
    """Reward (1.0 / 0.0) of one decoded response against ``ground_truth`` (method §4).

    In the main thread, grades inline under a SIGALRM deadline of ``timeout_s`` (which cannot stop a
    single long C computation; use :func:`batch_math_verify_reward` for untrusted model output at scale).
    In any other thread, grades through the shared :class:`GradingPool`. Timeouts and errors give 0.0;
    non-str arguments raise ValueError (a caller bug, not a grading failure).
    """
    for name, value in (("response", response), ("ground_truth", ground_truth)):
        if not isinstance(value, str):
            raise ValueError(
                f"math_verify_reward: {name} must be a str, got {type(value).__name__}"
            )
    if threading.current_thread() is threading.main_thread():
        out = call_with_deadline(score_or_raise, (response, ground_truth), timeout_s)
    else:
        out = shared_pool().map(score_or_raise, [(response, ground_truth)], timeout_s=timeout_s)[0]
    return float(out.value) if out.status == "ok" else 0.0


@dataclass(frozen=True)
class RewardResult:
    """Rewards of a batch. ``scores[i]`` is 0.0 whenever ``statuses[i]`` is not ``"ok"``."""

    scores: list[float]
    statuses: list[Status]
    details: list[str] = field(default_factory=list)

    @property
    def n_timeouts(self) -> int:
        return sum(s == "timeout" for s in self.statuses)

    @property
    def n_errors(self) -> int:
        return sum(s == "error" for s in self.statuses)


def batch_math_verify_reward(
    responses: Sequence[str],
    ground_truths: Sequence[str],
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    num_workers: int | None = None,
    pool: GradingPool | None = None,
) -> RewardResult:
    """Method §4 rewards of ``responses[i]`` against ``ground_truths[i]``, graded in worker processes.

    Each answer gets ``timeout_s`` seconds (plus the pool's kill grace); an overrunning worker is killed
    and replaced, and that answer scores 0 with status ``"timeout"``. A crashed grader scores 0 with status
    ``"error"``. Uses ``pool`` if given, else the process-wide shared pool with ``num_workers`` workers
    (default 2), started on first use and reused by later calls. Safe to call from any thread.
    """
    check_text_pairs(responses, ground_truths)
    if pool is not None and num_workers is not None:
        raise ValueError("batch_math_verify_reward: pass either pool or num_workers, not both")
    if not responses:
        return RewardResult([], [], [])
    tasks = list(zip(responses, ground_truths))
    outcomes = (pool or shared_pool(num_workers)).map(score_or_raise, tasks, timeout_s=timeout_s)
    return RewardResult(
        scores=[float(o.value) if o.status == "ok" else 0.0 for o in outcomes],
        statuses=[o.status for o in outcomes],
        details=[o.detail for o in outcomes],
    )

