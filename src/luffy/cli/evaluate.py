"""``python -m luffy evaluate``: run a benchmark suite on one model (method §5.2; :mod:`luffy.eval.runner`).

Prints the suite summary (``DIR/suite.json``, shortened) as JSON on stdout; vLLM's log goes to stderr. Bad input ends with one line on
stderr and exit status 2 (the errors :mod:`luffy.cli` catches).
"""

from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path

from ..config import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[3]


def default_config(suite: str) -> Path:
    """``config/eval/<suite>.yaml`` under the working directory, else under the repository root."""
    for root in (Path.cwd(), REPO_ROOT):
        path = root / "config" / "eval" / f"{suite}.yaml"
        if path.is_file():
            return path
    raise ConfigError(f"--config: no config/eval/{suite}.yaml here or in {REPO_ROOT}; pass --config PATH")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _label(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", text):
        raise argparse.ArgumentTypeError(f"expected letters, digits, '_', '.' or '-', got {text!r}")
    return text


def cmd_evaluate(a: argparse.Namespace) -> int:
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")  # keep stdout for the JSON summary
    from ..eval.protocol import load_eval_config
    from ..eval.runner import evaluate

    path = a.config or default_config(a.suite)
    cfg = load_eval_config(path, a.set)
    if cfg.suite != a.suite:
        raise ConfigError(f"--suite {a.suite} but {path} is a {cfg.suite} config")
    names = [n.strip() for n in a.benchmarks.split(",") if n.strip()] if a.benchmarks is not None else None
    if a.reuse_samples is not None and not Path(a.reuse_samples).is_dir():
        raise ConfigError(f"--reuse-samples {a.reuse_samples}: not an evaluation folder")
    suite = evaluate(a.model, cfg, a.out, benchmarks=names, data=a.data, engine=a.engine, k=a.k, limit=a.limit,
                     progress=not a.no_progress, checkpoint=a.checkpoint_label, reuse_from=a.reuse_samples)
    reused = suite["reused_samples"]["benchmarks"] if suite["reused_samples"] else None
    print(json.dumps({key: suite[key] for key in ("suite", "checkpoint", "engine", "averages", "skipped")}
                     | {"reused_samples": reused}
                     | {"accuracy": {n: b["accuracy"] for n, b in suite["benchmarks"].items()}}, indent=1))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``evaluate`` subcommand to ``luffy.cli``'s parser."""
    e = subparsers.add_parser("evaluate", help="evaluate a model on the tiny or paper benchmark suite")
    e.add_argument("--model", required=True, help="local model folder (weights, config, tokenizer)")
    e.add_argument("--suite", required=True, choices=["tiny", "paper"])
    e.add_argument("--out", required=True, help="output folder: <benchmark>/samples.jsonl, summary.json; suite.json")
    e.add_argument("--config", default=None, help="eval config YAML (default: config/eval/<suite>.yaml)")
    e.add_argument("--benchmarks", default=None, help="comma-separated subset, e.g. aime24,math500")
    e.add_argument("--data", default=None, help="paper: parquet folder or file; tiny: task folder")
    e.add_argument("--engine", default=None, choices=["hf", "vllm"], help="default: the config's (auto = vllm if importable)")
    e.add_argument("--k", type=_positive, default=None, help="samples per question for every benchmark")
    e.add_argument("--limit", type=_positive, default=None, help="first N questions of each benchmark")
    e.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set sampling.max_new_tokens=64 (repeatable)")
    e.add_argument("--checkpoint-label", default=None, metavar="LABEL", type=_label,
                   help="which model of a run this is (e.g. final, best_val, base); recorded as 'checkpoint'")
    e.add_argument("--reuse-samples", default=None, metavar="EVAL_DIR",
                   help="an earlier --out: copy its samples of benchmarks evaluated from the same weights under "
                        "the same protocol instead of generating them (recorded in suite.json)")
    e.add_argument("--no-progress", action="store_true")
    e.set_defaults(fn=cmd_evaluate)
