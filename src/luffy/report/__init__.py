"""Tables and figures of the study, pure functions of the JSON/JSONL results (method §6).

* :mod:`luffy.report.results` -- read ``metrics.jsonl``, ``resolved_config.yaml``, ``suite.json``;
  metric series over seeds (mean and standard error from :func:`luffy.utils.stats.mean_se`); the
  checkpoint the evaluations of a report are of.
* :mod:`luffy.report.tables`  -- paper Table 1 / Table 4 / γ-sweep layouts as Markdown, CSV, LaTeX,
  mean ± 95% confidence interval over seeds.
* :mod:`luffy.report.claims`  -- the paper's headline claims tested on the runs (paired by seed).
* :mod:`luffy.report.figures` -- training dynamics, ablation and γ figures, the shaping function.
* :mod:`luffy.report.labels`  -- display names and the paper's published numbers.

The command line is ``python -m luffy report table|figure|claims`` (:mod:`luffy.cli.report`).
"""

from luffy.utils.stats import mean_se

from .results import (
    ReportError,
    Series,
    Suite,
    metric_series,
    parse_pairs,
    read_metrics,
    read_run_config,
    read_suite,
)
from .tables import Table, build_table, to_csv, to_latex, to_markdown, write_table

__all__ = [
    "ReportError",
    "Series",
    "Suite",
    "Table",
    "build_table",
    "mean_se",
    "metric_series",
    "parse_pairs",
    "read_metrics",
    "read_run_config",
    "read_suite",
    "to_csv",
    "to_latex",
    "to_markdown",
    "write_table",
]
