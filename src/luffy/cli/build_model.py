"""``python -m luffy build-model``: build and briefly pretrain the tiny base model (:mod:`luffy.model.tiny`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ._common import section_config


def cmd_build_model(a: argparse.Namespace) -> int:
    from ..model.tiny import TinyModelConfig, build_base_model

    card = build_base_model(Path(a.task), Path(a.out), section_config(a, TinyModelConfig))
    print(json.dumps(card, indent=1, default=str))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``build-model`` to the parser."""
    b = sub.add_parser("build-model", help="build and briefly pretrain the tiny base model")
    b.add_argument("--task", required=True, help="folder written by make-task")
    b.add_argument("--config", help="YAML holding a TinyModelConfig (or a section of it)")
    b.add_argument("--section", default=None)
    b.add_argument("--out", required=True)
    b.set_defaults(fn=cmd_build_model)
