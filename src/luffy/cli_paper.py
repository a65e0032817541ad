"""``python -m luffy fetch-data`` and ``resolve-model``: the paper-scale inputs (spec §2, §3, §8).

``fetch-data`` writes the training, complement and validation parquets plus ``data.json``
(:mod:`luffy.data.paper`); ``resolve-model`` turns the hub model into the paper's "-16k-think"
folder (:mod:`luffy.model.resolve`). Each prints its JSON record on stdout; failures end with one
line ``luffy: error: ...`` and exit status 2 (the errors :mod:`luffy.cli` catches).
"""

from __future__ import annotations

import argparse
import json


def cmd_fetch_data(a: argparse.Namespace) -> int:
    from luffy.data.paper import fetch_paper_data

    info = fetch_paper_data(a.train_dataset, a.complement_dataset, a.eval_dir, a.out)
    print(json.dumps(info, indent=1))
    return 0


def cmd_resolve_model(a: argparse.Namespace) -> int:
    from luffy.model.resolve import parse_edits, resolve_model

    card = resolve_model(a.base, a.out, parse_edits(a.set), a.chat_template)
    print(json.dumps({k: v for k, v in card.items() if k != "files"}, indent=1))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``fetch-data`` and ``resolve-model`` subcommands to ``luffy.cli``'s parser."""
    f = subparsers.add_parser("fetch-data", help="download the paper's training data and validation parquet")
    f.add_argument("--train-dataset", required=True, help="hub id of the training set (spec §3.1)")
    f.add_argument(
        "--complement-dataset", required=True, help="hub id of the held-out SFT->RL prompts (spec §2)"
    )
    f.add_argument("--eval-dir", required=True, help="folder with valid.parquet (else it is downloaded)")
    f.add_argument(
        "--out", required=True, help="output folder: openr1[.complement].parquet, valid.parquet, data.json"
    )
    f.set_defaults(fn=cmd_fetch_data)

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
