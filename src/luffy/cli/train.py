"""``python -m luffy train``: one training run from a config file.

This is where the trainer is chosen: ``resources.backend: local`` runs :class:`luffy.train.Trainer`
in this process, ``ray`` runs :class:`luffy.train.distributed.DistTrainer` (the same loop driving a
Ray group of FSDP2 workers).
"""

from __future__ import annotations

import argparse
import json
import os
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


#: Slurm's variables naming the GPUs of a job (``sbatch --gpus`` / ``--gres=gpu``).
SLURM_GPU_VARS = ("SLURM_JOB_GPUS", "SLURM_STEP_GPUS", "SLURM_GPUS_ON_NODE")


def _gpus_given(environ) -> str | None:
    """``VAR=value`` of the first Slurm variable saying this job has GPUs, else None."""
    for var in SLURM_GPU_VARS:
        val = environ.get(var, "").strip()
        if val and val != "NoDevFiles" and not (var == "SLURM_GPUS_ON_NODE" and val == "0"):
            return f"{var}={val}"  # SLURM_JOB_GPUS=0 is GPU number 0, SLURM_GPUS_ON_NODE=0 none
    return None


def refuse_cpu_training_on_gpus(cfg, environ=os.environ) -> None:
    """A Slurm job that was given GPUs must train on them: ConfigError (one line) when the run
    config would train on the CPU (``device: cpu``, or the local backend where torch sees no GPU)."""
    from ..config import ConfigError

    given = _gpus_given(environ)
    if given is None:
        return
    import torch

    r = cfg.resources
    local_cpu = r.backend == "local" and (r.device == "cpu" or (r.device == "auto" and not torch.cuda.is_available()))
    if local_cpu or r.device == "cpu":
        where = "resources.device is cpu" if r.device == "cpu" else "resources.backend is local and torch sees no GPU"
        raise ConfigError(f"this job was given GPUs ({given}) but {where}, which trains on the CPU: set "
                          "resources.backend: ray, resources.device: cuda and one worker per GPU "
                          "(resources.workers_per_node)")


def cmd_train(a: argparse.Namespace) -> int:
    from ..config import load_run_config
    from ..train import NothingToDo

    cfg = load_run_config(a.config, a.set)
    refuse_cpu_training_on_gpus(cfg)
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
