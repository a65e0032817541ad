"""Build the tiny base model: pretrain it on a task folder's train split and save an HF folder.

The result is the starting point of every tiny-scale run; see :mod:`luffy.model.tiny` for what it
learns and why the build is deterministic and single-threaded by default.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch
from transformers import GenerationConfig, Qwen2ForCausalLM

from luffy.data.loaders import load_rows
from luffy.data.synthetic import SplitSpec
from luffy.model.tiny.accuracy import fact_accuracy, starting_accuracy
from luffy.model.tiny.arch import TinyModelConfig, build_tokenizer, model_config
from luffy.model.tiny.pretrain import deterministic, pretrain


def build_base_model(task_dir: str | Path, out_dir: str | Path, cfg: TinyModelConfig) -> dict[str, Any]:
    """Pretrain the tiny base model on ``task_dir``'s train split and save an HF folder.

    Writes config.json, model.safetensors, generation_config.json, tokenizer files and
    ``model_card.json`` (config, parameter count, loss curve, seconds, starting accuracy greedy
    and at T=1.0 on test_id / test_ood, fact accuracy); returns the model card.
    """
    task_dir, out_dir = Path(task_dir), Path(out_dir)
    spec = _train_spec(task_dir)
    width = _fixed_width(task_dir)
    train = load_rows(task_dir / "train.jsonl", fmt="luffy")
    t0, c0 = time.perf_counter(), time.process_time()
    with deterministic(cfg.threads):
        torch.manual_seed(cfg.seed)
        tok = build_tokenizer()
        model = Qwen2ForCausalLM(model_config(cfg, tok))
        losses = pretrain(model, tok, train, spec, cfg, width)
        train_s, train_cpu_s = time.perf_counter() - t0, time.process_time() - c0
        accuracy = facts = None  # eval_n=0: not measured
        if cfg.eval_n > 0:
            accuracy = {
                s: starting_accuracy(model, tok, task_dir / f"{s}.jsonl", cfg)
                for s in ("test_id", "test_ood")
            }
            facts = fact_accuracy(model, tok, spec, n=cfg.eval_n, seed=cfg.seed + 1, fixed=width > 0)
    model.generation_config = GenerationConfig(eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    card = {
        "architecture": "Qwen2ForCausalLM",
        "config": cfg.model_dump(),
        "n_params": sum(p.numel() for p in model.parameters()),
        "vocab_size": len(tok),
        "task": json.loads((task_dir / "task.json").read_text(encoding="utf-8"))["sha256"],
        "pretrain": {
            "steps": cfg.steps,
            "loss": losses,
            "seconds": round(train_s, 2),
            "cpu_seconds": round(train_cpu_s, 2),
        },
        "starting_accuracy": accuracy,
        "fact_accuracy": facts,
        "seconds_total": round(time.perf_counter() - t0, 2),
    }
    (out_dir / "model_card.json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    return card


def _fixed_width(task_dir: Path) -> int:
    """The task's ``fixed_width`` (0 for plain numbers and for task.json files written before it)."""
    config = json.loads((task_dir / "task.json").read_text(encoding="utf-8"))["config"]
    return int(config.get("fixed_width", 0))


def _train_spec(task_dir: Path) -> SplitSpec:
    path = task_dir / "task.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; build the task first with luffy.data.write_task")
    try:
        return SplitSpec(**json.loads(path.read_text(encoding="utf-8"))["config"]["train"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        msg = " ".join(str(e).split())[:200]
        raise ValueError(
            f"{path}: expected a task.json with config.train ({type(e).__name__}: {msg})"
        ) from None
