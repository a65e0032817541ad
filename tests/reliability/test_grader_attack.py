"""The grader under attack: >= 200 adversarial answers (tests/reliability/adversarial.py), each graded
within its 5 s deadline (plus the pool's 1 s kill grace), no crash, no hang, timeouts counted.

Both the training reward (method §4, ``score_or_raise``) and the evaluation graders (method §5.2,
``math_verify`` and ``boxed``) run the whole corpus through one deadline-enforcing GradingPool with 2
workers, as the trainer and the evaluator do. Per-answer time is measured by the pool from the moment
a worker received the answer (``TaskOutcome.seconds``).
"""

from __future__ import annotations

import collections
import os
import time

import pytest
from adversarial import corpus
from support import record

from luffy.eval.graders import _run_grader
from luffy.rewards.math_verify_reward import score_or_raise
from luffy.rewards.pool import GradingPool

DEADLINE_S, GRACE_S = 5.0, 1.0
#: Measurement slack on top of deadline + grace: the parent's wake-up and bookkeeping on a loaded machine.
SLACK_S = 1.0


@pytest.fixture(scope="module")
def pool():
    with GradingPool(num_workers=2, kill_grace_s=GRACE_S) as p:
        yield p


def test_corpus_is_large_and_varied():
    c = corpus()
    cats = collections.Counter(cat for cat, _, _ in c)
    assert len(c) >= 200
    assert set(cats) == {"huge_power", "factorial", "nesting", "long_100kb", "unbalanced", "lookalike",
                         "latex_macro", "empty_binary", "symbolic"}
    assert max(len(r) for _, r, _ in c) >= 100 * 1024


#: CI grades the corpus with the training reward (~100 s: ~34 answers run into the 5 s deadline on 2
#: workers); ``make reliability`` (LUFFY_KILL_TRIALS set) adds the two evaluation graders.
GRADERS = ["reward", "math_verify", "boxed"] if os.environ.get("LUFFY_KILL_TRIALS") else ["reward"]


@pytest.mark.parametrize("grader", GRADERS)
def test_every_adversarial_answer_is_graded_within_its_deadline(grader, pool):
    c = corpus()
    if grader == "reward":
        fn, tasks = score_or_raise, [(r, g) for _, r, g in c]
    else:
        fn, tasks = _run_grader, [(r, g, grader) for _, r, g in c]
    t0, replaced0 = time.monotonic(), pool.n_replaced
    outcomes = pool.map(fn, tasks, timeout_s=DEADLINE_S)
    wall = time.monotonic() - t0
    assert len(outcomes) == len(c)
    slowest = max(outcomes, key=lambda o: o.seconds or 0.0)
    by_status = collections.Counter(o.status for o in outcomes)
    per_cat: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for (cat, _, _), o in zip(c, outcomes):
        per_cat[cat][o.status] += 1
    fig = {"grader": grader, "answers": len(c), "wall_s": round(wall, 1), "status": dict(by_status),
           "max_answer_s": round(slowest.seconds, 2), "per_category": {k: dict(v) for k, v in per_cat.items()},
           "workers_replaced": pool.n_replaced - replaced0}
    record(f"grader_attack_{grader}", fig)
    assert all(o.seconds is not None for o in outcomes), fig
    assert slowest.seconds <= DEADLINE_S + GRACE_S + SLACK_S, (slowest, fig)
    # the framing attacks without a solution segment are simply wrong, never an error
    assert all(o.status == "ok" and not o.value for (cat, r, _), o in zip(c, outcomes)
               if cat == "empty_binary" and "</think>" not in r), fig
    # after the attack the pool still grades correctly
    again = pool.map(fn, [tasks[0][:0] + ("x</think>\\boxed{42}", "42") + tasks[0][2:]], timeout_s=DEADLINE_S)
    assert again[0].status == "ok" and again[0].value
