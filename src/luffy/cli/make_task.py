"""``python -m luffy make-task``: write the embedded verifiable task's splits (:mod:`luffy.data.synthetic`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ._common import section_config


def cmd_make_task(a: argparse.Namespace) -> int:
    from ..data.synthetic import TaskConfig, write_task

    info = write_task(Path(a.out), section_config(a, TaskConfig))
    print(json.dumps({k: v for k, v in info.items() if k != "config"}, indent=1, default=str))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``make-task`` to the parser."""
    m = sub.add_parser("make-task", help="write the synthetic verifiable task's splits")
    m.add_argument("--config", help="YAML holding a TaskConfig (or a section of it, see --section)")
    m.add_argument("--section", default=None)
    m.add_argument("--out", required=True)
    m.set_defaults(fn=cmd_make_task)
