"""``python -m luffy fetch-data``: the paper's training, complement and validation parquets plus
``data.json`` (method §2, §3.1; :mod:`luffy.data.paper`). Prints its JSON record on stdout."""

from __future__ import annotations

import argparse
import json


def cmd_fetch_data(a: argparse.Namespace) -> int:
    from ..data.paper import fetch_paper_data

    info = fetch_paper_data(a.train_dataset, a.complement_dataset, a.eval_dir, a.out)
    print(json.dumps(info, indent=1))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``fetch-data`` to the parser."""
    f = subparsers.add_parser("fetch-data", help="download the paper's training data and validation parquet")
    f.add_argument("--train-dataset", required=True, help="hub id of the training set (method §3.1)")
    f.add_argument(
        "--complement-dataset", required=True, help="hub id of the held-out SFT->RL prompts (method §2)"
    )
    f.add_argument("--eval-dir", required=True, help="folder with valid.parquet (else it is downloaded)")
    f.add_argument(
        "--out", required=True, help="output folder: openr1[.complement].parquet, valid.parquet, data.json"
    )
    f.set_defaults(fn=cmd_fetch_data)
