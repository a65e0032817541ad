"""Evaluation summaries (method §5.2): ``<out>/<benchmark>/summary.json`` and ``<out>/suite.json``.

* ``summary.json`` -- accuracy per grader (mean over questions of the per-question mean over k
  samples), its standard error over questions (:func:`luffy.utils.stats.mean_se`), counts, timing and
  the full protocol.
* ``suite.json`` -- every benchmark summary of the suite found in the output folder and the paper's
  averages: unweighted means of the math and OOD groups (``math_avg``, ``ood_avg``; tiny: ``id``,
  ``ood``), each saying which benchmarks it covers and which are missing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from luffy.config import ConfigError
from luffy.eval.benchmarks import AVERAGES, REGISTRY
from luffy.eval.protocol import EvalConfig
from luffy.eval.samples import BenchmarkJob
from luffy.utils.stats import mean_se

SUMMARY, SUITE = "summary.json", "suite.json"


def summarize(job: BenchmarkJob, header: dict[str, Any], fingerprint: dict[str, Any], versions: dict[str, Any],
              cfg: EvalConfig, timing: dict[str, float] | None) -> dict[str, Any]:
    """The ``summary.json`` of one benchmark over its selected questions."""
    p = job.protocol
    recs = [r for q in job.questions for r in job.done[q.id]]
    accuracy, stderr = {}, {}
    for gr in p.graders:
        per_q = [sum(r["verdicts"][gr] for r in job.done[q.id]) / p.k for q in job.questions]
        accuracy[gr], stderr[gr] = mean_se(per_q)
    bench = REGISTRY[job.name]
    return {
        "benchmark": job.name,
        "suite": bench.suite,
        "group": bench.group,
        "primary_grader": p.primary_grader,
        "accuracy": accuracy[p.primary_grader],
        "stderr": stderr[p.primary_grader],
        "accuracy_by_grader": accuracy,
        "stderr_by_grader": stderr,
        "k": p.k,
        "n_questions": len(job.questions),
        "n_samples": len(recs),
        "n_timeouts": {gr: sum(r["status"][gr] == "timeout" for r in recs) for gr in p.graders},
        "n_errors": {gr: sum(r["status"][gr] == "error" for r in recs) for gr in p.graders},
        "finish_reasons": {fr: sum(r["finish_reason"] == fr for r in recs) for fr in ("stop", "length")},
        "mean_tokens": sum(r["n_tokens"] for r in recs) / len(recs),
        "paper_table1_percent": bench.paper or None,
        "protocol": {
            **header,
            "model_files": fingerprint["files"],
            **p.model_dump(mode="json"),
            "engine_options": cfg.engine_options,
            "grade_timeout_s": cfg.grade_timeout_s,
            "libraries": versions,
        },
        "timing": timing or {"questions_generated": 0},
    }


def suite_summary(out_dir: Path, cfg: EvalConfig, header: dict[str, Any], missing: dict[str, str]) -> dict[str, Any]:
    """``suite.json``: every summary of this suite's benchmarks in ``out_dir`` and the group averages."""
    rows: dict[str, dict[str, Any]] = {}
    for name in (n for n, b in REGISTRY.items() if b.suite == cfg.suite):
        path = out_dir / name / SUMMARY
        if not path.is_file():
            continue
        s = json.loads(path.read_text(encoding="utf-8"))
        if s["protocol"]["model_sha256"] != header["model_sha256"]:
            raise ConfigError(f"{path}: results of another model (sha256 {s['protocol']['model_sha256'][:12]}…) "
                              f"in the same --out; use one folder per model")
        acc = s["accuracy_by_grader"].get(cfg.primary_grader)
        rows[name] = {"accuracy": acc, "stderr": s["stderr_by_grader"].get(cfg.primary_grader),
                      "accuracy_by_grader": s["accuracy_by_grader"], "k": s["k"], "n_questions": s["n_questions"],
                      "n_timeouts": s["n_timeouts"], "engine": s["protocol"]["engine"]}
    averages = {}
    for key, group in AVERAGES[cfg.suite].items():
        members = [n for n, b in REGISTRY.items() if b.suite == cfg.suite and b.group == group]
        over = [n for n in members if n in rows and rows[n]["accuracy"] is not None]
        value = sum(rows[n]["accuracy"] for n in over) / len(over) if over else None
        averages[key] = {"accuracy": value, "over": over, "missing": [n for n in members if n not in over]}
    return {"suite": cfg.suite, **header, "primary_grader": cfg.primary_grader, "benchmarks": rows,
            "averages": averages, "skipped": missing}


def paper_average(values: dict[str, float], group: str) -> float:
    """Unweighted mean of ``values`` over the paper benchmarks of ``group`` (method §5.2 "Avg.")."""
    members = [n for n, b in REGISTRY.items() if b.suite == "paper" and b.group == group]
    return sum(values[n] for n in members) / len(members)

