"""``python -m luffy report table|figure|claims``: the report commands the workflow's report rules call.

Inputs are named result files, repeated once per seed::

    python -m luffy report table --kind table1 --scale tiny \\
        --eval base=results/tiny/eval/base/suite.json --eval luffy=results/tiny/eval/luffy-s0/suite.json \\
        --out results/tiny/reports/table1                  # -> table1.md, table1.csv, table1.tex
    python -m luffy report figure --kind entropy --run luffy=results/tiny/runs/luffy-s0 \\
        --out results/tiny/reports/figures/entropy        # -> entropy.png, entropy.pdf
    python -m luffy report claims --checkpoint best_val --eval base=results/tiny/eval/base/suite.json \
        --eval luffy@0=results/tiny/eval/luffy-s0/best_val/suite.json --run luffy@0=results/tiny/runs/luffy-s0 \
        ... --out results/tiny/reports/claims               # -> claims.csv, claims.md

``--checkpoint final|best_val`` makes a table, figure or claims file refuse evaluations of another
checkpoint of the runs (``suite.json``'s ``checkpoint``) and names the checkpoint in its caption.
The claims pair results by seed, so their inputs are ``NAME@SEED=PATH`` (the base model: ``base=PATH``).

Rows, bars and curves follow the order in which the names first appear. Bad input ends with one
line ``luffy: error: ...`` on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..report.results import (
    ReportError,
    config_value,
    parse_pairs,
    parse_seeded,
    read_metrics,
    read_run_config,
    read_suite,
    report_checkpoint,
)


def _evals(items: list[str]) -> dict:
    return {name: [read_suite(p) for p in paths] for name, paths in parse_pairs(items, "--eval").items()}


def _runs(items: list[str]) -> dict:
    return {name: [read_metrics(p) for p in paths] for name, paths in parse_pairs(items, "--run").items()}


def gammas_of(items: list[str]) -> dict[str, float]:
    """γ of each experiment from its runs' resolved configs (all seeds must agree; shaping 'luffy')."""
    out: dict[str, float] = {}
    for name, dirs in parse_pairs(items, "--run").items():
        values = set()
        for d in dirs:
            cfg = read_run_config(d)
            src = Path(d) / "resolved_config.yaml"
            shaping = config_value(cfg, "loss.shaping.name", src)
            if shaping != "luffy":
                raise ReportError(f"{src}: loss.shaping is {shaping!r}; the γ sweep needs 'luffy' runs")
            values.add(float(config_value(cfg, "loss.shaping.gamma", src)))
        if len(values) != 1:
            raise ReportError(f"--run {name}: seeds disagree on loss.shaping.gamma ({sorted(values)})")
        out[name] = values.pop()
    return out


def cmd_table(a: argparse.Namespace) -> int:
    from ..report.tables import build_table, write_table

    gammas = gammas_of(a.run) if a.kind == "gamma" else None
    table = build_table(a.kind, _evals(a.eval), scale=a.scale, gammas=gammas, checkpoint=a.checkpoint)
    for p in write_table(table, a.out):
        print(p)
    return 0


def cmd_figure(a: argparse.Namespace) -> int:
    from ..report import figures as F

    dynamics = {"entropy": F.fig_entropy, "training": F.fig_training,
                "off_policy_prob": F.fig_off_policy_prob, "validation": F.fig_validation}
    if a.kind in dynamics:
        fig = dynamics[a.kind](_runs(a.run))
    elif a.kind == "ablations":
        fig = F.fig_ablations(_evals(a.eval), a.scale, a.checkpoint)
    elif a.kind == "gamma_sweep":
        fig = F.fig_gamma(_evals(a.eval), gammas_of(a.run), a.scale, a.checkpoint)
    else:
        fig = F.fig_shaping()
    for p in F.save_figure(fig, a.out):
        print(p)
    return 0


def cmd_claims(a: argparse.Namespace) -> int:
    from ..report import claims as C

    evals = {name: {seed: read_suite(p) for seed, p in by_seed.items()}
             for name, by_seed in parse_seeded(a.eval, "--eval").items()}
    runs = {name: {seed: read_metrics(p) for seed, p in by_seed.items()}
            for name, by_seed in parse_seeded(a.run, "--run").items()}
    checkpoint = report_checkpoint({n: list(v.values()) for n, v in evals.items()}, a.checkpoint)
    rows = C.compute_claims(evals, runs)
    others = C.compute_claims(evals, runs, C.OTHER_COMPARISONS)
    for p in C.write_claims(rows, others, a.out, checkpoint):
        print(p)
    return 0


def _guarded(fn):
    def run(a: argparse.Namespace) -> int:
        try:
            return fn(a)
        except ReportError as e:
            print(f"luffy: error: {str(e).splitlines()[0]}", file=sys.stderr)
            return 2
    return run


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``report table`` and ``report figure`` to ``luffy.cli``'s parser."""
    from ..report.labels import FIGURE_KINDS, TABLE_KINDS

    rep = subparsers.add_parser("report", help="tables and figures from the results (JSON/JSONL)")
    sub = rep.add_subparsers(dest="report_command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--scale", choices=["tiny", "paper"], default="tiny",
                        help="paper: show the paper's published numbers beside ours")
    common.add_argument("--eval", action="append", default=[], metavar="NAME=SUITE_JSON",
                        help="an evaluation (suite.json) of experiment NAME; repeat per seed")
    common.add_argument("--run", action="append", default=[], metavar="NAME=RUN_DIR",
                        help="a training run folder of experiment NAME; repeat per seed")
    common.add_argument("--out", required=True, help="output path without extension")
    common.add_argument("--checkpoint", default=None, metavar="LABEL",
                        help="the checkpoint of the runs every evaluation must be of (final, best_val)")

    t = sub.add_parser("table", parents=[common], help="a table as .md, .csv and .tex")
    t.add_argument("--kind", required=True, choices=TABLE_KINDS)
    t.set_defaults(fn=_guarded(cmd_table))
    f = sub.add_parser("figure", parents=[common], help="a figure as .png and .pdf")
    f.add_argument("--kind", required=True, choices=FIGURE_KINDS)
    f.set_defaults(fn=_guarded(cmd_figure))
    c = sub.add_parser("claims", help="the paper's claims tested on the runs, as .csv and .md")
    c.add_argument("--eval", action="append", default=[], metavar="NAME@SEED=SUITE_JSON",
                   help="an evaluation of experiment NAME for SEED (the base model: base=SUITE_JSON); repeat")
    c.add_argument("--run", action="append", default=[], metavar="NAME@SEED=RUN_DIR",
                   help="a training run folder of experiment NAME for SEED; repeat")
    c.add_argument("--checkpoint", default=None, metavar="LABEL",
                   help="the checkpoint of the runs every evaluation must be of (final, best_val)")
    c.add_argument("--out", required=True, help="output path without extension")
    c.set_defaults(fn=_guarded(cmd_claims))
