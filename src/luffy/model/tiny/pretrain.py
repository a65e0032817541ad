"""Pretraining of the tiny base model: its documents and the plain next-token training loop.

Two kinds of documents, from the TRAIN split and the training distribution only: problems with short,
direct answers (:func:`direct_answer_doc`), and lines of single-operation facts (:func:`fact_doc`),
so that the teacher's steps are learnable later. The teacher's traces and the test splits are never
seen. :func:`deterministic` fixes threads and kernels for bit-identical builds.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from transformers import PreTrainedTokenizerFast, Qwen2ForCausalLM

from luffy.data.schema import TrainRow
from luffy.data.synthetic import SplitSpec, sample_problem
from luffy.data.templates import render_prompt
from luffy.model.tiny.arch import TinyModelConfig


def direct_answer_doc(tok: PreTrainedTokenizerFast, row: TrainRow) -> str:
    """A problem with its short, direct answer (no steps), as pretraining text."""
    return (
        render_prompt(tok, row.prompt) + f"</think>\nThe answer is \\boxed{{{row.answer}}}." + tok.eos_token
    )


def sample_fact(rng: random.Random, spec: SplitSpec) -> tuple[int, str, int, int]:
    """One single-operation fact ``(a, op, b, a op b)`` distributed like the task's steps.

    Draws a fresh random problem from the training distribution ``spec`` (not from the train
    split) and returns one of its evaluation steps, so facts cover exactly the operand and
    result ranges a step-by-step solution needs -- as isolated facts, never as a trace.
    """
    while (problem := sample_problem(rng, spec)) is None:
        pass
    return rng.choice(problem.steps)


def fact_doc(rng: random.Random, n: int, spec: SplitSpec) -> str:
    """``n`` lines ``a op b=r`` (the teacher's step-line format), each from a different problem."""
    return "".join(f"{a}{op}{b}={r}\n" for a, op, b, r in (sample_fact(rng, spec) for _ in range(n)))


def pretrain(
    model: Qwen2ForCausalLM,
    tok: PreTrainedTokenizerFast,
    train: list[TrainRow],
    spec: SplitSpec,
    cfg: TinyModelConfig,
) -> list[list[float]]:
    """Plain next-token LM training on a mix of direct-answer and fact documents.

    Returns ``[step, mean loss]`` pairs: step 0 alone, then the mean over each ~5% of the steps.
    """
    rng = random.Random(cfg.seed)
    problems = [tok(direct_answer_doc(tok, r))["input_ids"] for r in train]
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.95), weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_factor(s, cfg.warmup_steps, cfg.steps))
    log, every, window = [], max(1, cfg.steps // 20), []
    model.train()
    for step in range(cfg.steps):
        docs = []
        for _ in range(cfg.batch_size):
            if rng.random() < cfg.fact_fraction:
                text = fact_doc(rng, cfg.facts_per_doc, spec)
                docs.append(tok(text + tok.eos_token)["input_ids"])
            else:
                docs.append(rng.choice(problems))
        ids, mask = _pad_right(docs, tok.pad_token_id)  # [B, T]
        labels = ids.masked_fill(mask == 0, -100)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        window.append(loss.item())
        if step % every == 0 or step == cfg.steps - 1:
            log.append([step, round(sum(window) / len(window), 4)])
            window = []
    model.eval()
    return log


def _lr_factor(step: int, warmup: int, total: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))


def _pad_right(seqs: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad to ``[B, T]`` ids and a 0/1 attention mask."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s)
        mask[i, : len(s)] = 1
    return ids, mask


@contextmanager
def deterministic(threads: int) -> Iterator[None]:
    """Fixed threads and deterministic kernels, restored afterwards."""
    old_threads, old_det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(old_det)
        torch.set_num_threads(old_threads)
