"""``python -m luffy <command>``: the thin entry points the Snakemake rules call.

The CLI is the one place that wires components together (the trainer with its backend, the
evaluation runner with its config, the report with the results). One module per sub-command, each
with ``register(subparsers)``; they are imported explicitly, so a broken sub-command is an import
error, never a missing command.

Every known failure (bad config, bad data, missing model, unfinishable run) ends with one line
``luffy: error: ...`` on stderr and exit status 2; no traceback.
"""

from __future__ import annotations

import argparse
import os
import sys

from . import bench, build_model, check_config, evaluate, fetch_data, make_task, report, resolve_model, train

#: The sub-command modules, in ``--help`` order.
COMMANDS = (train, make_task, build_model, evaluate, report, bench, fetch_data, resolve_model, check_config)


def _known_errors() -> tuple[type[BaseException], ...]:
    from ..config import ConfigError
    from ..data.schema import DataFormatError
    from ..model.load import ModelLoadError
    from ..train import TrainingError
    from ..utils.jsonl import JsonlError

    return (ConfigError, DataFormatError, TrainingError, ModelLoadError, JsonlError, FileNotFoundError)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="luffy", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    for mod in COMMANDS:
        mod.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = build_parser().parse_args(argv)
    try:
        return int(args.fn(args) or 0)
    except _known_errors() as e:
        print(f"luffy: error: {str(e).splitlines()[0] if str(e) else type(e).__name__}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("luffy: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
