"""Read the workflow's results for the reports: runs and evaluations (never logs).

A *run* folder (``luffy train --out``) holds ``metrics.jsonl`` (one JSON object per step, key
``step`` plus metric keys such as ``entropy/all``), ``resolved_config.yaml`` and ``summary.json``.
An *evaluation* is a ``suite.json`` (``luffy evaluate``): per-benchmark ``accuracy`` in [0, 1]
under ``benchmarks``, and group averages under ``averages`` whose ``over`` + ``missing`` lists
name the benchmarks of each group (paper suite: ``math_avg``, ``ood_avg``; tiny: ``id``, ``ood``),
and ``checkpoint``, the label of the evaluated model (``final``, ``best_val``; ``base`` for the base
model; absent in evaluations made without ``--checkpoint-label``). :func:`report_checkpoint` checks
that the runs of one table, figure or claims file are evaluations of the same checkpoint.

Seeds: the reports receive several runs/evaluations per experiment name (one per seed) and show
the mean and the standard error of the mean over seeds (sample std with ddof=1, over √n;
:func:`luffy.utils.stats.mean_se`, also importable from here).

Every problem is a :class:`ReportError` whose one-line message names the file, line or key.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from luffy.utils.jsonl import JsonlError, read_jsonl_lines
from luffy.utils.stats import mean_se


class ReportError(ValueError):
    """Bad or missing results; the message names the file (and line or key) and what was expected."""


# ------------------------------------------------------------------------------------ arguments


def parse_pairs(items: list[str], flag: str) -> dict[str, list[Path]]:
    """``["luffy=a", "luffy=b", "sft=c"]`` -> ``{"luffy": [a, b], "sft": [c]}`` in first-mention order."""
    out: dict[str, list[Path]] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ReportError(f"{flag} {item!r}: expected NAME=PATH")
        out.setdefault(name, []).append(Path(path))
    return out


def parse_seeded(items: list[str], flag: str) -> dict[str, dict[int | None, Path]]:
    """``["luffy@0=a", "luffy@1=b", "base=c"]`` -> ``{"luffy": {0: a, 1: b}, "base": {None: c}}``.

    ``NAME@SEED=PATH`` names the seed a result belongs to (the claims pair results by seed);
    ``NAME=PATH`` is one result for every seed (the base model).
    """
    out: dict[str, dict[int | None, Path]] = {}
    for item in items:
        key, sep, path = item.partition("=")
        name, at, seed = key.partition("@")
        if not sep or not name or not path or (at and not seed.isdigit()):
            raise ReportError(f"{flag} {item!r}: expected NAME@SEED=PATH (or NAME=PATH for a model without seeds)")
        s = int(seed) if at else None
        if s in out.get(name, {}):
            raise ReportError(f"{flag} {item!r}: {name} has two results for seed {s}")
        out.setdefault(name, {})[s] = Path(path)
    return out


# ------------------------------------------------------------------------------------ evaluations


@dataclass(frozen=True)
class Suite:
    """One model's evaluation: accuracy per benchmark and per average, in [0, 1] (None = missing)."""

    path: Path
    suite: str
    benchmarks: dict[str, float | None]
    groups: dict[str, list[str]]  # average key -> its benchmarks, in suite order
    averages: dict[str, float | None]
    missing: dict[str, list[str]]  # average key -> benchmarks without a result
    checkpoint: str | None = None  # which model of the run (final, best_val; base); None = not recorded


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise ReportError(f"{path}: file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ReportError(f"{path}: not valid JSON (line {e.lineno}: {e.msg})") from None


def _accuracy(path: Path, where: str, value: Any) -> float | None:
    if value is None:
        return None
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value <= 1.0:
        raise ReportError(f"{path}: {where}: expected an accuracy in [0, 1] or null, got {value!r}")
    return float(value)


def read_suite(path: str | Path) -> Suite:
    """Parse a ``suite.json``; see the module docstring for the keys used."""
    path = Path(path)
    data = _read_json(path)
    if not isinstance(data, dict):
        raise ReportError(f"{path}: expected a JSON object")
    for key in ("suite", "benchmarks", "averages"):
        if key not in data:
            raise ReportError(f"{path}: missing key '{key}' (not a suite.json of luffy evaluate?)")
    if not isinstance(data["benchmarks"], dict) or not isinstance(data["averages"], dict):
        raise ReportError(f"{path}: 'benchmarks' and 'averages' must be objects")
    benchmarks: dict[str, float | None] = {}
    for name, row in data["benchmarks"].items():
        if not isinstance(row, dict) or "accuracy" not in row:
            raise ReportError(f"{path}: benchmarks.{name}: expected an object with 'accuracy'")
        benchmarks[name] = _accuracy(path, f"benchmarks.{name}.accuracy", row["accuracy"])
    groups, averages, missing = {}, {}, {}
    for key, avg in data["averages"].items():
        if not isinstance(avg, dict) or not {"accuracy", "over", "missing"} <= set(avg):
            raise ReportError(f"{path}: averages.{key}: expected an object with 'accuracy', 'over', 'missing'")
        members = list(avg["over"]) + list(avg["missing"])
        order = list(data["benchmarks"])
        groups[key] = sorted(members, key=lambda n: order.index(n) if n in order else len(order))
        averages[key] = _accuracy(path, f"averages.{key}.accuracy", avg["accuracy"])
        missing[key] = list(avg["missing"])
        for name in avg["missing"]:
            benchmarks.setdefault(name, None)
    checkpoint = data.get("checkpoint")
    if checkpoint is not None and not isinstance(checkpoint, str):
        raise ReportError(f"{path}: checkpoint: expected a label or null, got {checkpoint!r}")
    return Suite(path, str(data["suite"]), benchmarks, groups, averages, missing, checkpoint)


#: The one name whose evaluation is not of a run (its single checkpoint is the model itself).
BASE = "base"


def report_checkpoint(evals: dict[str, list[Suite]], checkpoint: str | None) -> str | None:
    """The checkpoint the runs' evaluations (every name but :data:`BASE`) are of.

    With ``checkpoint`` given, every one of them must record that label (else a ReportError naming the
    file); without, they must agree, and their label is returned (None when none records one).
    """
    runs = [s for name, suites in evals.items() if name != BASE for s in suites]
    if checkpoint is not None:
        for s in runs:
            if s.checkpoint != checkpoint:
                what = "records no checkpoint" if s.checkpoint is None else f"is of checkpoint {s.checkpoint!r}"
                raise ReportError(f"{s.path}: the evaluation {what}, the report is of {checkpoint!r} "
                                  "(luffy evaluate --checkpoint-label)")
        return checkpoint
    labels = {s.checkpoint for s in runs}
    if len(labels) > 1:
        raise ReportError(f"the evaluations mix checkpoints ({', '.join(sorted(map(str, labels)))}); "
                          "a report shows one (--checkpoint)")
    return labels.pop() if labels else None


# ------------------------------------------------------------------------------------ runs


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """The step records of ``run_dir/metrics.jsonl``, sorted by step (the last record of a step wins)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise ReportError(f"{path}: file not found (is {run_dir} a finished run of luffy train?)")
    try:
        lines = read_jsonl_lines(path, torn_tail="error")
    except JsonlError as e:
        raise ReportError(str(e)) from None
    by_step: dict[int, dict[str, Any]] = {}
    for i, rec in lines:
        if not isinstance(rec.get("step"), int) or isinstance(rec.get("step"), bool):
            raise ReportError(f"{path}: line {i}: expected an object with an integer 'step'")
        by_step[rec["step"]] = rec
    return [by_step[s] for s in sorted(by_step)]


def read_run_config(run_dir: str | Path) -> dict[str, Any]:
    """``run_dir/resolved_config.yaml`` (the run's full config, written by the trainer)."""
    path = Path(run_dir) / "resolved_config.yaml"
    if not path.is_file():
        raise ReportError(f"{path}: file not found (is {run_dir} a run of luffy train?)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ReportError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ReportError(f"{path}: expected a mapping")
    return data


def config_value(cfg: dict[str, Any], dotted: str, source: str | Path) -> Any:
    """``cfg["loss"]["shaping"]`` for ``"loss.shaping"``; a ReportError naming ``source`` if absent."""
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise ReportError(f"{source}: key '{dotted}' not found")
        node = node[part]
    return node


@dataclass(frozen=True)
class Series:
    """One metric of one experiment over steps, aggregated over seeds."""

    steps: list[int]
    mean: list[float]
    se: list[float | None]
    n_seeds: int


def metric_series(runs: list[list[dict[str, Any]]], key: str) -> Series | None:
    """Mean and SE over seeds of ``key`` at every step where at least one seed logged a finite value.

    ``runs`` holds one :func:`read_metrics` list per seed. None if no seed logged ``key``.
    """
    per_step: dict[int, list[float]] = {}
    for recs in runs:
        for rec in recs:
            v = rec.get(key)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                per_step.setdefault(rec["step"], []).append(float(v))
    if not per_step:
        return None
    steps = sorted(per_step)
    stats = [mean_se(per_step[s]) for s in steps]
    return Series(steps, [m for m, _ in stats], [se for _, se in stats], len(runs))
