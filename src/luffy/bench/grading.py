"""Grading throughput: answers/min of the training reward (method §4) in the GradingPool.

Answers are what the tiny task's policy writes (the text after the generation prompt
``…<think>\\n``), drawn from the task's own problems (:mod:`luffy.data.synthetic`), in fixed
shares: 40% the teacher's correct step-by-step solution, 30% the same with a wrong boxed answer,
20% a short direct answer (``</think>\\nThe answer is \\boxed{k}.``, right or wrong), 10% text with
no ``</think>`` (reward 0 without parsing). Every answer's expected reward is known and checked.

Cases (one process, one pool of ``workers`` processes, started and warmed up before timing):

* ``pool``: :func:`~luffy.rewards.batch_math_verify_reward` over ``n`` answers;
  answers/min = n / wall seconds · 60.
* ``pool_with_timeouts``: the same answers plus ``n_bad`` pathological ones
  (``\\boxed{2^{2^{2^{2^{2^{30}}}}}}``, unbounded for minutes) at ``timeout_s``; reports the
  timeouts, the extra wall time over ``pool`` and whether every normal answer still got its
  expected reward (the timeouts are isolated: a killed worker is replaced, the others go on).
* ``sequential``: :func:`~luffy.rewards.score_or_raise` in this process's main thread, no pool,
  no deadline (what math-verify itself costs per answer); with ``profile`` its cProfile top.
"""

from __future__ import annotations

import random
import time
from typing import Any

from . import BenchError
from .common import cprofile_top, envelope, finish

PATHOLOGICAL = "</think>\nThe answer is \\boxed{2^{2^{2^{2^{2^{30}}}}}}."


def make_answers(n: int, seed: int = 0) -> tuple[list[str], list[str], list[float]]:
    """``(responses, ground_truths, expected_rewards)`` of ``n`` answers (shares in the module docstring)."""
    from luffy.data.synthetic import TaskConfig, sample_problem, teacher_trace

    spec = TaskConfig().train
    rng = random.Random(f"luffy-bench-grading:{seed}")
    out_r, out_g, out_e = [], [], []
    while len(out_r) < n:
        p = sample_problem(rng, spec)
        if p is None:
            continue
        body = teacher_trace(p).removeprefix("<think>\n")
        u = rng.random()
        wrong = p.answer + rng.choice([-3, -2, -1, 1, 2, 3])
        if u < 0.4:
            resp, exp = body, 1.0
        elif u < 0.7:
            resp, exp = body.replace(f"\\boxed{{{p.answer}}}", f"\\boxed{{{wrong}}}"), 0.0
        elif u < 0.9:
            k = p.answer if rng.random() < 0.3 else wrong
            resp, exp = f"</think>\nThe answer is \\boxed{{{k}}}.", float(k == p.answer)
        else:
            resp, exp = f"{p.expr} is about {wrong}", 0.0
        out_r.append(resp)
        out_g.append(str(p.answer))
        out_e.append(exp)
    return out_r, out_g, out_e


def run(small: bool = False, *, n: int | None = None, n_bad: int | None = None, workers: int = 2,
        timeout_s: float = 1.0, profile: bool = False) -> dict[str, Any]:
    from luffy.rewards import GradingPool, batch_math_verify_reward, score_or_raise

    n = n or (40 if small else 2000)
    n_bad = n_bad if n_bad is not None else (1 if small else 4)
    n_seq = min(n, 40 if small else 500)
    rec = envelope("grading", small, {"n": n, "n_bad": n_bad, "workers": workers, "timeout_s": timeout_s,
                                      "n_sequential": n_seq,
                                      "mix": "40% correct trace, 30% wrong trace, 20% short answer, "
                                             "10% no </think>"})
    resp, gold, exp = make_answers(n)
    res = rec["results"]
    t0 = time.perf_counter()
    with GradingPool(workers) as pool:
        batch_math_verify_reward(resp[:workers * 2], gold[:workers * 2], pool=pool, timeout_s=timeout_s)
        res["pool_start_s"] = round(time.perf_counter() - t0, 3)

        t0 = time.perf_counter()
        clean = batch_math_verify_reward(resp, gold, pool=pool, timeout_s=timeout_s)
        dt = time.perf_counter() - t0
        agree = sum(a == b for a, b in zip(clean.scores, exp))
        res["pool"] = {"answers": n, "seconds": round(dt, 3), "answers_per_min": round(n / dt * 60, 1),
                       "expected_rewards_matched": agree, "timeouts": clean.n_timeouts,
                       "errors": clean.n_errors}
        if agree != n:
            raise BenchError(f"grading: {n - agree} of {n} rewards differ from the expected ones")

        if n_bad:
            mixed_r, mixed_g = list(resp), list(gold)
            step = max(1, n // (n_bad + 1))
            bad_at = [step * (i + 1) + i for i in range(n_bad)]
            for i in bad_at:
                mixed_r.insert(i, PATHOLOGICAL)
                mixed_g.insert(i, "1")
            t0 = time.perf_counter()
            out = batch_math_verify_reward(mixed_r, mixed_g, pool=pool, timeout_s=timeout_s)
            dt2 = time.perf_counter() - t0
            normal = [s for i, s in enumerate(out.scores) if i not in set(bad_at)]
            res["pool_with_timeouts"] = {
                "answers": len(mixed_r), "pathological": n_bad, "seconds": round(dt2, 3),
                "answers_per_min": round(len(mixed_r) / dt2 * 60, 1),
                "timeouts": out.n_timeouts, "errors": out.n_errors,
                "extra_seconds_over_pool": round(dt2 - dt, 3),
                "normal_rewards_unchanged": normal == clean.scores,
                "workers_replaced": pool.n_replaced,
            }

    def seq() -> None:
        for r, g in zip(resp[:n_seq], gold[:n_seq]):
            score_or_raise(r, g)

    seq()  # warm-up: math-verify's first call builds its regexes
    t0 = time.perf_counter()
    seq()
    dt = time.perf_counter() - t0
    res["sequential"] = {"answers": n_seq, "seconds": round(dt, 3), "answers_per_min": round(n_seq / dt * 60, 1),
                         "ms_per_answer": round(dt / n_seq * 1e3, 3)}
    if profile:
        res["sequential"]["profile_top"] = cprofile_top(seq)
    res["pool_speedup_over_sequential"] = round(res["pool"]["answers_per_min"]
                                                / res["sequential"]["answers_per_min"], 3)
    return finish(rec)
