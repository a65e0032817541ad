"""Benchmarks (issue #8): rollout throughput, training step vs TRL, update MFU, grading, DAG wall time,
the before/after of the log-prob fast path, and the hybrid engine's data-parallel rollouts and
weight sync (issue #14). ``python -m luffy bench <name> [--small] [--out F.json]``.

Each benchmark is a module with ``run(small=False, **options) -> dict`` returning a JSON-ready
record (machine description, settings, results; see :mod:`luffy.bench.common`). ``--small`` runs a
seconds-long version that exercises the same code (CI checks the record's fields, not timings).
Method and numbers: BENCHMARKS.md at the repository root.
"""

from __future__ import annotations

import importlib
from typing import Any


class BenchError(RuntimeError):
    """A benchmark cannot run (the message says why, e.g. a missing optional package or log)."""


#: name -> module (imported on demand: e.g. ``grading`` never imports vLLM or TRL)
BENCHMARKS: dict[str, str] = {
    "rollout": "luffy.bench.rollout",
    "train_step": "luffy.bench.train_step",
    "mfu": "luffy.bench.mfu",
    "grading": "luffy.bench.grading",
    "fastpath": "luffy.bench.fastpath",
    "dag": "luffy.bench.dag",
    "hybrid": "luffy.bench.hybrid",
}
#: what ``bench all`` runs (``dag`` only reads a log, so it is included; it needs a finished run)
ALL = ("grading", "mfu", "fastpath", "rollout", "train_step", "hybrid", "dag")


def run_benchmark(name: str, small: bool = False, **options: Any) -> dict[str, Any]:
    if name not in BENCHMARKS:
        raise BenchError(f"unknown benchmark {name!r}; expected one of: {', '.join(BENCHMARKS)}, all")
    return importlib.import_module(BENCHMARKS[name]).run(small=small, **options)


__all__ = ["ALL", "BENCHMARKS", "BenchError", "run_benchmark"]
