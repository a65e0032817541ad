"""``python -m luffy bench <which> [--small] [--out FILE.json]``: rerun the benchmarks of BENCHMARKS.md.

``which`` is one of :data:`luffy.bench.BENCHMARKS` or ``all`` (then ``--out`` is a folder that gets
one ``<name>.json`` per benchmark). Without ``--out`` the JSON goes to stdout. A benchmark that
cannot run (e.g. TRL or vLLM not installed, no Snakemake run log for ``dag``) ends with one line
``luffy: error: ...`` and exit status 2; under ``all`` only ``dag`` may be skipped, and its file
then says why.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import sys
from pathlib import Path


def _options(name: str, a: argparse.Namespace) -> dict:
    import importlib

    from ..bench import BENCHMARKS

    params = inspect.signature(importlib.import_module(BENCHMARKS[name]).run).parameters
    given = {"profile": a.profile, "threads": a.threads, "model": a.model, "log": a.log,
             "vllm": not a.no_vllm, "trl": not a.no_trl}
    return {k: v for k, v in given.items() if k in params and v is not None}


def cmd_bench(a: argparse.Namespace) -> int:
    from ..bench import ALL, BenchError, run_benchmark
    from ..bench.common import write_json

    names = list(ALL) if a.which == "all" else [a.which]
    out = Path(a.out) if a.out else None
    if out is not None and a.which == "all" and out.suffix == ".json":
        print("luffy: error: bench all --out takes a folder (one <name>.json per benchmark)", file=sys.stderr)
        return 2
    if out is not None and a.which != "all" and out.is_dir():
        print(f"luffy: error: bench {a.which} --out {out}: a folder; give a JSON file path", file=sys.stderr)
        return 2
    records = {}
    for name in names:
        try:
            with contextlib.redirect_stdout(sys.stderr):  # libraries' prints must not corrupt the JSON on stdout
                rec = run_benchmark(name, small=a.small, **_options(name, a))
        except BenchError as e:
            if a.which == "all" and name == "dag":
                print(f"luffy: bench dag skipped: {e}", file=sys.stderr)
                rec = {"benchmark": "dag", "skipped": str(e)}
            else:
                print(f"luffy: error: bench {name}: {str(e).splitlines()[0]}", file=sys.stderr)
                return 2
        records[name] = rec
        if out is not None:
            path = write_json(rec, out / f"{name}.json" if a.which == "all" else out)
            print(f"bench {name}: wrote {path}", file=sys.stderr)
    if out is None:
        print(json.dumps(records if a.which == "all" else records[names[0]], indent=1, default=str))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from ..bench import BENCHMARKS

    b = sub.add_parser("bench", help="run a benchmark (see BENCHMARKS.md) and write its JSON record")
    b.add_argument("which", choices=[*BENCHMARKS, "all"])
    b.add_argument("--small", action="store_true", help="a seconds-long version (checks the code, not speed)")
    b.add_argument("--out", help="JSON file (a folder for 'all'); default: stdout")
    b.add_argument("--profile", action="store_true", help="add the top profiler entries of the timed work")
    b.add_argument("--threads", type=int, help="torch threads (default: torch's own setting)")
    b.add_argument("--model", help="train_step: this model folder instead of a fresh tiny model")
    b.add_argument("--log", help="dag: this Snakemake log instead of the newest run log in .snakemake/log")
    b.add_argument("--no-vllm", action="store_true", help="rollout: HF engine only")
    b.add_argument("--no-trl", action="store_true", help="train_step: our step only")
    b.set_defaults(fn=cmd_bench)
