"""``python -m luffy train``: one training run from a config file.

This is where the trainer is chosen: ``resources.backend: local`` runs :class:`luffy.train.Trainer`
in this process, ``ray`` runs :class:`luffy.train.distributed.DistTrainer` (the same loop driving a
Ray group of FSDP2 workers).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def train(cfg, out: str | Path, *, resume: str = "auto", progress: bool = True) -> dict[str, Any]:
    """Run ``cfg`` into ``out`` with the trainer its ``resources`` section asks for."""
    from ..train import Trainer

    if cfg.resources.backend == "ray":
        from ..train.distributed import DistTrainer

        t: Trainer = DistTrainer(cfg, out, resume=resume, progress=progress)
    else:
        t = Trainer(cfg, out, resume=resume, progress=progress)
    try:
        return t.run()
    finally:
        t.close()


def cmd_train(a: argparse.Namespace) -> int:
    from ..config import load_run_config
    from ..train import NothingToDo

    cfg = load_run_config(a.config, a.set)
    try:
        summary = train(cfg, a.out, resume=a.resume, progress=not a.no_progress)
    except NothingToDo as e:
        print(f"luffy: {e}; nothing to do", file=sys.stderr)
        return 0
    print(json.dumps(summary, indent=1))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``train`` to the parser."""
    t = sub.add_parser("train", help="train one run from a config file")
    t.add_argument("--config", required=True)
    t.add_argument("--out", required=True)
    t.add_argument("--resume", choices=["auto", "never"], default="auto",
                   help="auto: continue from the newest complete checkpoint in --out (default)")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set train.steps=10 (repeatable)")
    t.add_argument("--no-progress", action="store_true")
    t.set_defaults(fn=cmd_train)
