"""How well the tiny base model does: reward accuracy on task rows and step-fact accuracy (greedy).

:func:`measure_accuracy` samples one HF ``generate`` response per row and scores it with the training
reward (:func:`luffy.rewards.math_verify_reward`); :func:`fact_accuracy` checks single-operation facts.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedTokenizerFast, Qwen2ForCausalLM

from luffy.data.loaders import load_rows
from luffy.data.schema import TrainRow
from luffy.data.synthetic import SplitSpec, fact_line
from luffy.data.templates import render_prompt
from luffy.model.tiny.arch import TinyModelConfig
from luffy.model.tiny.pretrain import sample_fact
from luffy.rewards import math_verify_reward


@torch.no_grad()
def fact_accuracy(
    model: Any, tok: PreTrainedTokenizerFast, spec: SplitSpec, *, n: int, seed: int, fixed: bool = False
) -> float:
    """Share of ``n`` random step facts (:func:`sample_fact`) the model completes exactly (greedy).

    The prompt is ``"a op b="``; the answer must be ``r`` followed by a newline (``fixed``: all
    numbers 2-digit, as :func:`~luffy.data.synthetic.fact_line` writes them). A diagnostic of
    whether the teacher's steps are within the base model's reach.
    """
    rng = random.Random(f"facts:{seed}")
    lines = [fact_line(*sample_fact(rng, spec), fixed=fixed) for _ in range(n)]
    prompts, answers = zip(*(line.split("=") for line in lines))
    old_side, tok.padding_side = tok.padding_side, "left"
    try:
        enc = tok([f"{q}=" for q in prompts], return_tensors="pt", padding=True)
        out = model.generate(**enc, max_new_tokens=5, do_sample=False, pad_token_id=tok.pad_token_id)
    finally:
        tok.padding_side = old_side
    texts = tok.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
    return sum(t.startswith(r) for r, t in zip(answers, texts)) / n


def starting_accuracy(
    model: Qwen2ForCausalLM, tok: PreTrainedTokenizerFast, path: Path, cfg: TinyModelConfig
) -> dict:
    rows = load_rows(path, fmt="luffy")[: cfg.eval_n]
    greedy = measure_accuracy(
        model,
        tok,
        rows,
        temperature=0.0,
        max_new_tokens=cfg.eval_max_new_tokens,
        batch_size=cfg.eval_batch_size,
        seed=cfg.seed,
    )
    sampled = measure_accuracy(
        model,
        tok,
        rows,
        temperature=1.0,
        max_new_tokens=cfg.eval_max_new_tokens,
        batch_size=cfg.eval_batch_size,
        seed=cfg.seed,
    )
    return {"n": len(rows), "greedy": greedy, "t1": sampled}


@torch.no_grad()
def measure_accuracy(
    model: Any,
    tok: PreTrainedTokenizerFast,
    rows: list[TrainRow],
    *,
    temperature: float,
    max_new_tokens: int,
    batch_size: int = 64,
    seed: int = 0,
) -> dict[str, float]:
    """Mean reward of one HF ``generate`` sample per row (``temperature=0`` is greedy).

    Batched with left padding; full-distribution sampling (``top_k=0, top_p=1``). Returns
    ``accuracy`` and ``mean_tokens`` (generated tokens per response, eos included).
    """
    if not rows:
        raise ValueError("measure_accuracy: no rows to evaluate")
    torch.manual_seed(seed)
    old_side, tok.padding_side = tok.padding_side, "left"
    rewards, lengths = [], []
    try:
        for start in range(0, len(rows), batch_size):
            batch = rows[start : start + batch_size]
            enc = tok([render_prompt(tok, r.prompt) for r in batch], return_tensors="pt", padding=True)
            sampling = {"temperature": temperature, "top_k": 0, "top_p": 1.0} if temperature > 0 else {}
            out = model.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                do_sample=temperature > 0,
                pad_token_id=tok.pad_token_id,
                eos_token_id=tok.eos_token_id,
                **sampling,
            )
            new = out[:, enc["input_ids"].shape[1] :]  # [B, <=max_new_tokens]
            for r, seq in zip(batch, new.tolist()):
                n = seq.index(tok.eos_token_id) + 1 if tok.eos_token_id in seq else len(seq)
                lengths.append(n)
                rewards.append(math_verify_reward(tok.decode(seq[:n], skip_special_tokens=True), r.answer))
    finally:
        tok.padding_side = old_side
    return {"accuracy": sum(rewards) / len(rewards), "mean_tokens": sum(lengths) / len(lengths)}
