"""Tables and figures of the study, pure functions of the JSON/JSONL results (spec §6).

* :mod:`luffy.report.results` -- read ``metrics.jsonl``, ``resolved_config.yaml``, ``suite.json``;
  seed statistics (mean, standard error).
* :mod:`luffy.report.tables`  -- paper Table 1 / Table 4 / γ-sweep layouts as Markdown, CSV, LaTeX.
* :mod:`luffy.report.figures` -- training dynamics, ablation and γ figures, the shaping function.
* :mod:`luffy.report.labels`  -- display names and the paper's published numbers.

The command line is ``python -m luffy report table|figure`` (:mod:`luffy.cli_report`).
"""

from .results import (
    ReportError,
    Series,
    Suite,
    mean_se,
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
