"""``python -m luffy <command>``: the thin entry points the Snakemake rules call.

Every known failure (bad config, bad data, missing model, unfinishable run) ends with one line
``luffy: error: ...`` on stderr and exit status 2; no traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def _known_errors() -> tuple[type[BaseException], ...]:
    from .config import ConfigError
    from .data.schema import DataFormatError
    from .train import TrainingError

    errs: list[type[BaseException]] = [ConfigError, DataFormatError, TrainingError, FileNotFoundError]
    try:
        from .model.load import ModelLoadError
        errs.append(ModelLoadError)
    except ImportError:
        pass
    return tuple(errs)


def cmd_train(a: argparse.Namespace) -> int:
    from .config import load_run_config
    from .train import NothingToDo, train

    cfg = load_run_config(a.config, a.set)
    try:
        summary = train(cfg, a.out, resume=a.resume, progress=not a.no_progress)
    except NothingToDo as e:
        print(f"luffy: {e}; nothing to do", file=sys.stderr)
        return 0
    print(json.dumps(summary, indent=1))
    return 0


def _section_config(a: argparse.Namespace, model_cls):
    """Validate ``--config`` (or its ``--section``) as ``model_cls``; errors name the file and key."""
    from pydantic import ValidationError

    from .config import ConfigError, format_validation_error, read_yaml

    data = read_yaml(a.config) if a.config else {}
    if a.section:
        data = data.get(a.section, {})
    try:
        return model_cls.model_validate(data)
    except ValidationError as e:
        raise ConfigError(format_validation_error(f"{a.config}:{a.section or ''}", e)) from None


def cmd_make_task(a: argparse.Namespace) -> int:
    from .data.synthetic import TaskConfig, write_task

    info = write_task(Path(a.out), _section_config(a, TaskConfig))
    print(json.dumps({k: v for k, v in info.items() if k != "config"}, indent=1, default=str))
    return 0


def cmd_build_model(a: argparse.Namespace) -> int:
    from .model.tiny import TinyModelConfig, build_base_model

    card = build_base_model(Path(a.task), Path(a.out), _section_config(a, TinyModelConfig))
    print(json.dumps(card, indent=1, default=str))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="luffy", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train one run from a config file")
    t.add_argument("--config", required=True)
    t.add_argument("--out", required=True)
    t.add_argument("--resume", choices=["auto", "never"], default="auto",
                   help="auto: continue from the newest complete checkpoint in --out (default)")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set train.steps=10 (repeatable)")
    t.add_argument("--no-progress", action="store_true")
    t.set_defaults(fn=cmd_train)

    m = sub.add_parser("make-task", help="write the synthetic verifiable task's splits")
    m.add_argument("--config", help="YAML holding a TaskConfig (or a section of it, see --section)")
    m.add_argument("--section", default=None)
    m.add_argument("--out", required=True)
    m.set_defaults(fn=cmd_make_task)

    b = sub.add_parser("build-model", help="build and briefly pretrain the tiny base model")
    b.add_argument("--task", required=True, help="folder written by make-task")
    b.add_argument("--config", help="YAML holding a TinyModelConfig (or a section of it)")
    b.add_argument("--section", default=None)
    b.add_argument("--out", required=True)
    b.set_defaults(fn=cmd_build_model)

    for extra in ("evaluate", "report", "bench", "paper"):
        try:
            mod = __import__(f"luffy.cli_{extra}", fromlist=["register"])
        except ImportError:
            continue
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
