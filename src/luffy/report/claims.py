"""The paper's headline claims, tested on this study's runs: ``claims.csv`` and ``claims.md``.

Every claim says that a *left* experiment beats the *right* one(s) on one metric. The comparison is
paired by seed: for each seed that both sides have, the difference left − right; ``diff`` is the
mean of these differences, ``ci_low`` / ``ci_high`` their two-sided 95% Student t interval
(:func:`luffy.utils.stats.estimate`), and the claim ``holds`` when ``ci_low > 0``. With one seed
there is no interval, so such a claim does not hold (the note says why).

The five claims (:data:`CLAIMS`, the rows of ``claims.csv``):

1. LUFFY > On-Policy RL on in-distribution accuracy;
2. LUFFY > On-Policy RL on out-of-distribution accuracy;
3. LUFFY > SFT on out-of-distribution accuracy;
4. LUFFY > Mixed-Policy RL without shaping (``mixed_clip``, Table 4's first row) on (ID + OOD)/2;
5. LUFFY's generation entropy > On-Policy RL's and > unshaped Mixed-Policy RL's. One row with both
   experiments on the right: per seed the difference is the smaller of the two margins, and the
   claim holds when it is > 0 in every seed, i.e. both comparisons hold in every seed (one seed
   included: this rule needs no interval). Its interval is reported, not used.

``claims.md`` shows the same rows and, below them, comparisons that are reported without being
claimed (:data:`OTHER_COMPARISONS`): LUFFY vs SFT in distribution, and On-Policy RL vs the base
model (ID and OOD). The base model has one evaluation, compared with every seed of the other side.

Metrics: accuracy in percent of a group of the evaluation suite -- in distribution, the ``id``
group of the tiny suite (its ID test split, Table 1's "ID test" column; ``math_avg`` at paper
scale), out of distribution the ``ood`` group (``ood_avg``) -- so differences are percentage
points; generation entropy is ``entropy/on`` of ``metrics.jsonl`` (the mean entropy of the
generated tokens of a step), averaged over the last 20% of the training steps (at least the last).

A claim whose runs were not given (an experiment missing from the study's config) or lack the
metric gets ``holds`` false and a note, never an error.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from luffy.utils.stats import estimate, finite

from .labels import benchmark_label, checkpoint_label, experiment_label, group_label
from .results import BASE, Suite

ID_KEYS = ("id", "math_avg")  # the in-distribution group of the tiny / paper suite
OOD_KEYS = ("ood", "ood_avg")
ENTROPY_KEY = "entropy/on"
LAST_FRACTION = 0.2

Seed = int | None  # None: one evaluation that stands for every seed (the base model)


@dataclass(frozen=True)
class ClaimSpec:
    id: str
    left: str
    right: tuple[str, ...]
    metric: str  # "id", "ood", "id_ood" (their mean) or "entropy"


CLAIMS = (
    ClaimSpec("luffy_gt_on_policy_id", "luffy", ("on_policy",), "id"),
    ClaimSpec("luffy_gt_on_policy_ood", "luffy", ("on_policy",), "ood"),
    ClaimSpec("luffy_gt_sft_ood", "luffy", ("sft",), "ood"),
    ClaimSpec("luffy_gt_mixed_clip_id_ood", "luffy", ("mixed_clip",), "id_ood"),
    ClaimSpec("luffy_entropy_gt_on_policy_and_mixed_clip", "luffy", ("on_policy", "mixed_clip"), "entropy"),
)
OTHER_COMPARISONS = (
    ClaimSpec("luffy_vs_sft_id", "luffy", ("sft",), "id"),
    ClaimSpec("on_policy_vs_base_id", "on_policy", (BASE,), "id"),
    ClaimSpec("on_policy_vs_base_ood", "on_policy", (BASE,), "ood"),
)
ALL_SPECS = CLAIMS + OTHER_COMPARISONS
#: The evaluations and the training runs the comparisons read (the workflow passes these).
EVAL_NAMES = tuple(dict.fromkeys(n for c in ALL_SPECS if c.metric != "entropy" for n in (c.left, *c.right)))
RUN_NAMES = tuple(dict.fromkeys(n for c in ALL_SPECS if c.metric == "entropy" for n in (c.left, *c.right)))

COLUMNS = ("claim", "left", "right", "metric", "diff", "ci_low", "ci_high", "n_seeds", "holds", "note")


@dataclass(frozen=True)
class ClaimRow:
    claim: str
    left: str
    right: str
    metric: str
    diff: float | None
    ci_low: float | None
    ci_high: float | None
    n_seeds: int
    holds: bool
    note: str
    per_seed: dict[Seed, float]
    spec: ClaimSpec


# ------------------------------------------------------------------------------------ values


def _group_key(suite: Suite, keys: tuple[str, ...]) -> str | None:
    return next((k for k in keys if k in suite.averages), None)


def _accuracy(suite: Suite, metric: str) -> float | None:
    """Accuracy (percent) of ``suite`` on ``metric``; None when the suite lacks it."""
    if metric == "id_ood":
        a, b = _accuracy(suite, "id"), _accuracy(suite, "ood")
        return None if a is None or b is None else (a + b) / 2
    key = _group_key(suite, ID_KEYS if metric == "id" else OOD_KEYS)
    value = suite.averages.get(key) if key else None
    return None if value is None else 100.0 * value


def last_steps_mean(records: list[dict[str, Any]], key: str = ENTROPY_KEY, fraction: float = LAST_FRACTION
                    ) -> float | None:
    """Mean of ``key`` over the last ``fraction`` of the training steps (at least the last step).

    The run's length is its last logged step; steps are ``step > last - max(1, ceil(fraction * last))``.
    None without a finite value there.
    """
    if not records:
        return None
    last = max(r["step"] for r in records)
    first = last - max(1, math.ceil(fraction * last))
    vals = finite(r.get(key) for r in records if r["step"] > first and isinstance(r.get(key), (int, float))
                  and not isinstance(r.get(key), bool))
    return sum(vals) / len(vals) if vals else None


def _values(spec: ClaimSpec, name: str, evals: Mapping[str, Mapping[Seed, Suite]],
            runs: Mapping[str, Mapping[Seed, list[dict[str, Any]]]]) -> dict[Seed, float] | None:
    """Per-seed values of one side (None when the experiment was not given at all)."""
    if spec.metric == "entropy":
        if not runs.get(name):
            return None
        vals = {seed: last_steps_mean(recs) for seed, recs in runs[name].items()}
    else:
        if not evals.get(name):
            return None
        vals = {seed: _accuracy(s, spec.metric) for seed, s in evals[name].items()}
    return {seed: v for seed, v in vals.items() if v is not None}


def _paired(sides: list[dict[Seed, float]]) -> tuple[dict[Seed, list[float]], list[Seed]]:
    """Seed -> one value per side, for the seeds every side has (a side keyed None has one value for
    every seed); and the seeds some side lacks."""
    seeds = sorted({s for side in sides for s in side if s is not None})
    if not seeds:
        seeds = [None]
    out, unpaired = {}, []
    for s in seeds:
        vals = [side.get(s, side.get(None)) for side in sides]
        if all(v is not None for v in vals):
            out[s] = vals
        else:
            unpaired.append(s)
    return out, unpaired


# ------------------------------------------------------------------------------------ claims


def metric_label(metric: str, suites: list[Suite]) -> str:
    """How the metric reads in the outputs; accuracy groups named as Table 1 names their columns."""
    if metric == "entropy":
        return f"{ENTROPY_KEY} (generation entropy), mean over the last {LAST_FRACTION:.0%} of training steps"

    def column(keys: tuple[str, ...], fallback: str) -> str:
        suite = suites[0] if suites else None
        key = _group_key(suite, keys) if suite else None
        if key is None:
            return fallback
        members = suite.groups.get(key, [])
        return benchmark_label(members[0]) if len(members) == 1 else f"{group_label(key)} average"

    id_col, ood_col = column(ID_KEYS, "in-distribution"), column(OOD_KEYS, "out-of-distribution")
    text = {"id": id_col, "ood": ood_col, "id_ood": f"({id_col} + {ood_col})/2"}[metric]
    return f"{text} accuracy (%)"


def side_label(name: str) -> str:
    """The experiment's label; the unshaped mixed-policy run spelled out as in Table 4."""
    return experiment_label(name, "table4" if name == "mixed_clip" else None)


def claim_text(spec: ClaimSpec) -> str:
    """E.g. 'LUFFY > On-Policy RL and > Mixed-Policy RL (f(p)=p, clip)'."""
    return f"{side_label(spec.left)} > " + " and > ".join(side_label(r) for r in spec.right)


def compute_claim(spec: ClaimSpec, evals: Mapping[str, Mapping[Seed, Suite]],
                  runs: Mapping[str, Mapping[Seed, list[dict[str, Any]]]]) -> ClaimRow:
    """One row: the paired differences, their interval, and whether the claim holds (module docstring)."""
    suites = [s for by_seed in evals.values() for s in by_seed.values()]
    metric = metric_label(spec.metric, suites)
    right = "+".join(spec.right)

    def row(per_seed: dict[Seed, float], holds: bool, note: str) -> ClaimRow:
        e = estimate(per_seed.values())
        return ClaimRow(spec.id, spec.left, right, metric, e.mean, e.ci_low, e.ci_high, e.n, holds, note,
                        per_seed, spec)

    names = [spec.left, *spec.right]
    sides = [_values(spec, n, evals, runs) for n in names]
    absent = [n for n, side in zip(names, sides) if side is None]
    if absent:
        what = "training runs" if spec.metric == "entropy" else "evaluations"
        return row({}, False, f"no {what} of {', '.join(absent)} in this study (not in the config), so not tested")
    empty = [n for n, side in zip(names, sides) if not side]
    if empty:
        what = ENTROPY_KEY if spec.metric == "entropy" else "accuracy on this metric"
        return row({}, False, f"no {what} in the results of {', '.join(empty)}")
    pairs, unpaired = _paired(sides)
    per_seed = {s: min(v[0] - r for r in v[1:]) for s, v in pairs.items()}
    lacking = f"; seeds {unpaired} lack a side and are left out" if unpaired else ""
    if not per_seed:
        return row({}, False, f"no seed has values on both sides{lacking}")
    if spec.metric == "entropy":
        k, n = sum(d > 0 for d in per_seed.values()), len(per_seed)
        both = " (the smaller of the two margins per seed)" if len(spec.right) > 1 else ""
        return row(per_seed, k == n, f"> 0 in {k} of {n} seed(s){both}{lacking}")
    e = estimate(per_seed.values())
    if e.ci_low is None:
        return row(per_seed, False, f"one seed: no 95% CI (it needs two or more seeds), so not shown{lacking}")
    if e.ci_low > 0:
        note = "the 95% CI is above 0"
    elif e.ci_high < 0:
        note = "the 95% CI is below 0: the right side is better"
    else:
        note = "the 95% CI includes 0"
    return row(per_seed, e.ci_low > 0, note + lacking)


def compute_claims(evals: Mapping[str, Mapping[Seed, Suite]], runs: Mapping[str, Mapping[Seed, list[dict[str, Any]]]],
                   specs: tuple[ClaimSpec, ...] = CLAIMS) -> list[ClaimRow]:
    """``evals``: experiment -> seed -> its evaluation (``base``: seed None); ``runs``: experiment -> seed ->
    its ``metrics.jsonl`` records."""
    return [compute_claim(spec, evals, runs) for spec in specs]


# ------------------------------------------------------------------------------------ rendering


def _num(v: float | None, digits: int = 4) -> str:
    return "" if v is None else f"{v:.{digits}f}"


def to_csv(rows: list[ClaimRow]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for r in rows:
        w.writerow([r.claim, r.left, r.right, r.metric, _num(r.diff), _num(r.ci_low), _num(r.ci_high), r.n_seeds,
                    "true" if r.holds else "false", r.note])
    return buf.getvalue()


def _md_rows(rows: list[ClaimRow], start: int) -> list[str]:
    out = ["| # | claim | metric | diff | 95% CI | seeds | holds | note |", "|---|---|---|---:|---|---:|---|---|"]
    for i, r in enumerate(rows, start):
        diff = "–" if r.diff is None else f"{r.diff:+.3g}" if r.spec.metric == "entropy" else f"{r.diff:+.1f}"
        ci = "–"
        if r.ci_low is not None:
            fmt = "{:+.3g}" if r.spec.metric == "entropy" else "{:+.1f}"
            ci = f"[{fmt.format(r.ci_low)}, {fmt.format(r.ci_high)}]"
        holds = "**yes**" if r.holds else "no"
        out.append(f"| {i} | {claim_text(r.spec)} (`{r.claim}`) | {r.metric} | {diff} | {ci} | {r.n_seeds} | "
                   f"{holds} | {r.note} |")
    return out


def to_markdown(claims: list[ClaimRow], others: list[ClaimRow], checkpoint: str | None) -> str:
    seeds = sorted({r.n_seeds for r in claims + others if r.n_seeds})
    if not seeds:
        seed_text = "no seed"
    elif len(seeds) == 1:
        seed_text = "1 seed" if seeds[0] == 1 else f"{seeds[0]} seeds"
    else:
        seed_text = f"{seeds[0]}–{seeds[-1]} seeds"
    where = f"{checkpoint_label(checkpoint)}; " if checkpoint else ""
    lines = [f"**The paper's claims on this study's runs** ({where}{seed_text})", "", *_md_rows(claims, 1), "",
             "**Other comparisons** (reported, not claimed: they may or may not hold)", "",
             *_md_rows(others, len(claims) + 1), "",
             ("diff: the mean over seeds of left − right, paired by seed (accuracies in percentage points). "
              "95% CI: the Student t interval of that mean over the per-seed differences. holds: the CI's lower "
              "end is above 0, so one seed never suffices."),
             "",
             ("Entropy claim: per seed, the smaller of the margins over On-Policy RL and over unshaped "
              "Mixed-Policy RL; it holds when that is above 0 in every seed (its CI is shown, not used). "
              f"{ENTROPY_KEY} is the mean entropy of the generated tokens of a step."),
             ""]
    if any(BASE in r.spec.right for r in others):
        lines += ["The base model has one evaluation, compared with every seed of the other side.", ""]
    if checkpoint:
        lines += [f"Accuracies: the {checkpoint_label(checkpoint)} (the checkpoint the tables show).", ""]
    return "\n".join(lines)


def write_claims(claims: list[ClaimRow], others: list[ClaimRow], prefix: str | Path,
                 checkpoint: str | None) -> list[Path]:
    """``<prefix>.csv`` (the claims only) and ``<prefix>.md`` (the claims and the other comparisons)."""
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = prefix.with_name(prefix.name + ".csv"), prefix.with_name(prefix.name + ".md")
    csv_path.write_text(to_csv(claims), encoding="utf-8")
    md_path.write_text(to_markdown(claims, others, checkpoint), encoding="utf-8")
    return [csv_path, md_path]
