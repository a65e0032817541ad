"""``python -m luffy check-config``: the workflow config checks that need code (:mod:`luffy.workflow_config`).

The workflow runs it once before building its DAG (``check-config -``, the effective config on
stdin). By hand: ``luffy check-config config/config.yaml config/smoke.yaml`` (files merged in
order, as Snakemake merges ``--configfile``).
"""

from __future__ import annotations

import argparse
import sys


def cmd_check_config(a: argparse.Namespace) -> int:
    from ..workflow_config import check_workflow_config, read_workflow_config

    def warn(line: str) -> None:
        print(f"luffy: warning: {line}", file=sys.stderr)

    config = read_workflow_config(a.configs, stdin=sys.stdin)
    print(check_workflow_config(config, a.root, data=a.data, warn=warn))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``check-config`` to the parser."""
    m = sub.add_parser("check-config", help="check a workflow config (experiments, their files, the base model)")
    m.add_argument("configs", nargs="*", default=["config/config.yaml"], metavar="CONFIG",
                   help="workflow config files, merged in order (default: config/config.yaml); "
                   "- reads one from stdin")
    m.add_argument("--root", default=".", help="the repository root: relative paths start there")
    m.add_argument("--data", choices=["error", "warn"], default="error",
                   help="missing data (base model files, benchmark parquets): an error (default), or "
                   "a warning line each (what a dry run uses)")
    m.set_defaults(fn=cmd_check_config)
