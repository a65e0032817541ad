"""The paper's evaluation parquets (method §3.4) against the graders (method §5.2).

For every benchmark, a response ``"...</think>\\nThe answer is \\boxed{<ground truth>}."`` must be graded
correct, and the same response carrying a DIFFERENT answer of the same data_source (the next one, in file
order, whose :func:`normalize_answer` form differs) must be graded wrong, each for >= 99% of rows, by
``math_verify`` and ``boxed`` (math sets) or ``multiple_choice`` and ``boxed`` (ARC-c, GPQA).

To save time, rows that repeat a (data_source, ground_truth) pair are graded once: the graded response
depends only on the ground truth, so every distinct grading input of every question is still covered
(AIME/AMC are 32 copies of each question; e.g. ARC-c reduces to its 8 distinct labels).

Data: ``$LUFFY_EVAL_DATA`` or ``<repo>/data/luffy-eval``; skipped (with the reason) if absent.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import EVAL_DATA

from luffy.eval import grade_many, normalize_answer
from luffy.rewards import GradingPool

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = EVAL_DATA
FILES = {"valid.all.parquet": "math", "valid.arc_c.parquet": "choice", "valid.gpqa.parquet": "choice"}
GRADERS_FOR = {"math": ("math_verify", "boxed"), "choice": ("multiple_choice", "boxed")}
MIN_RATE = 0.99
TIMEOUT_S = 5.0

pytestmark = pytest.mark.skipif(
    not all((DATA_DIR / f).is_file() for f in FILES),
    reason=f"evaluation parquets not found in {DATA_DIR} (set LUFFY_EVAL_DATA)",
)


def _unique_answers() -> dict[str, tuple[str, list[str]]]:
    """data_source -> (kind, distinct ground truths in file order)."""
    import pandas as pd

    out: dict[str, tuple[str, list[str]]] = {}
    for name, kind in FILES.items():
        df = pd.read_parquet(DATA_DIR / name, columns=["data_source", "reward_model"])
        gts = df["reward_model"].map(lambda rm: rm["ground_truth"])
        for source, gt in dict.fromkeys(zip(df["data_source"], gts)):
            out.setdefault(source, (kind, []))[1].append(gt)
    return out


def _different_answer(gts: list[str], i: int) -> str:
    """The next ground truth (cyclically) whose normalised form differs from ``gts[i]``'s."""
    own = normalize_answer(gts[i])
    for k in range(1, len(gts)):
        other = gts[(i + k) % len(gts)]
        if normalize_answer(other) != own:
            return other
    raise AssertionError(f"no different answer for {gts[i]!r}")


def _response(answer: str) -> str:
    return f"...</think>\nThe answer is \\boxed{{{answer}}}."


@pytest.fixture(scope="module")
def rates() -> dict[tuple[str, str, str], float]:
    """(data_source, grader, case) -> fraction of rows graded as expected; case is "right" or "wrong".

    All rows for one grader go to the pool in a single batch, for load balancing.
    """
    answers = _unique_answers()
    jobs: dict[str, list[tuple[str, str, str, str]]] = {}  # grader -> [(source, case, response, gt)]
    for source, (kind, gts) in answers.items():
        for grader in GRADERS_FOR[kind]:
            for i, gt in enumerate(gts):
                jobs.setdefault(grader, []).append((source, "right", _response(gt), gt))
                jobs.setdefault(grader, []).append(
                    (source, "wrong", _response(_different_answer(gts, i)), gt)
                )
    hits: dict[tuple[str, str, str], list[bool]] = {}
    with GradingPool(2) as pool:
        for grader, items in jobs.items():
            graded = grade_many(
                [r for _, _, r, _ in items], [g for *_, g in items], grader, timeout_s=TIMEOUT_S, pool=pool
            )
            for (source, case, _, _), (correct, _status) in zip(items, graded):
                hits.setdefault((source, grader, case), []).append(correct == (case == "right"))
    result = {key: sum(v) / len(v) for key, v in hits.items()}
    print("\nper-benchmark pass rates:\n" + _table(result, answers))
    return result


def _table(rates: dict[tuple[str, str, str], float], answers: dict[str, tuple[str, list[str]]]) -> str:
    rows = [
        f"{source:15s} {grader:16s} n={len(answers[source][1]):4d} "
        f"right={rates[(source, grader, 'right')]:.4f} wrong-rejected={rates[(source, grader, 'wrong')]:.4f}"
        for (source, grader, case) in sorted(rates)
        if case == "right"
    ]
    return "\n".join(rows)


def test_every_benchmark_and_grader_is_covered(rates: dict[tuple[str, str, str], float]) -> None:
    sources = {s for s, _, _ in rates}
    assert sources == {"math", "olympiad_bench", "minerva", "aime", "amc", "aime25", "arc_c", "gpqa"}


@pytest.mark.parametrize("case", ["right", "wrong"])
def test_pass_rates(rates: dict[tuple[str, str, str], float], case: str) -> None:
    failing = {f"{s}/{g}": r for (s, g, c), r in rates.items() if c == case and r < MIN_RATE}
    all_rates = json.dumps({f"{s}/{g}/{c}": round(r, 4) for (s, g, c), r in sorted(rates.items())}, indent=1)
    assert not failing, f"{case}-answer rate below {MIN_RATE}: {failing}\nall rates: {all_rates}"
