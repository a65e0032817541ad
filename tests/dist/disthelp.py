"""Helpers shared by the distributed-training tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "config" / "experiments" / "tiny"


def tiny_sets(task_dir: Path, model: Path, steps: int = 2, **extra) -> list[str]:
    """Overrides for a fast tiny LUFFY run: 4 prompts × (3 on + 1 off), mini-batches of 2 prompts, fp32."""
    sets = {
        "model.path": str(model),
        "model.dtype": "float32",
        "data.train": str(task_dir / "train.jsonl"),
        "data.val": str(task_dir / "test_id.jsonl"),
        "data.val_limit": 4,
        "data.max_response_tokens": 48,
        "loss.norm_length": "null",
        "train.steps": steps,
        "train.prompts_per_step": 4,
        "train.mini_batch_prompts": 2,
        "train.micro_batch_seqs": 3,
        "train.val_every": 0,
        "train.save_every": 1,
        "group.n_on": 3,
    }
    sets.update(extra)
    return [f"{k}={v}" for k, v in sets.items()]


def ray_sets(workers: int = 2, **extra) -> dict[str, object]:
    return {"resources.backend": "ray", "resources.workers_per_node": workers, **extra}


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def max_abs_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


def cli(args: list[str], timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    """``python -m luffy ARGS`` in a fresh process (no inherited Ray address)."""
    e = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    e.update(env)
    return subprocess.run([sys.executable, "-m", "luffy", *args], check=False, capture_output=True, text=True,
                          timeout=timeout, env=e)


def train_args(config: Path, out: Path, sets: list[str]) -> list[str]:
    cmd = ["train", "--config", str(config), "--out", str(out), "--no-progress"]
    for s in sets:
        cmd += ["--set", s]
    return cmd
