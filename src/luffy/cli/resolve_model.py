"""``python -m luffy resolve-model``: the hub model turned into the paper's "-16k-think" base-model
folder (method §8; :mod:`luffy.model.resolve`). Prints the model card on stdout."""

from __future__ import annotations

import argparse
import json


def cmd_resolve_model(a: argparse.Namespace) -> int:
    from ..model.resolve import parse_edits, resolve_model

    card = resolve_model(a.base, a.out, parse_edits(a.set), a.chat_template)
    print(json.dumps({k: v for k, v in card.items() if k != "files"}, indent=1))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``resolve-model`` to the parser."""
    r = subparsers.add_parser(
        "resolve-model", help="make the paper's base model folder (config edit, chat template)"
    )
    r.add_argument("--base", required=True, help="hub id or local model folder")
    r.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="replace an existing config.json key (YAML value; dotted keys reach nested ones; repeatable)",
    )
    r.add_argument("--chat-template", default=None, help="name in luffy.data.templates, e.g. luffy_think")
    r.add_argument("--out", required=True, help="output folder; model_card.json is written last")
    r.set_defaults(fn=cmd_resolve_model)
