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
from luffy.data.synthetic import SplitSpec, answer_text, fact_line, restate_fixed_trace, sample_problem
from luffy.data.templates import render_prompt
from luffy.model.tiny.arch import TinyModelConfig


def direct_answer_doc(tok: PreTrainedTokenizerFast, row: TrainRow, fixed: bool = False) -> str:
    """A problem with its short, direct answer (no steps), as pretraining text.

    ``fixed``: the task's numbers are fixed-width (2-digit answer, as the teacher writes it).
    """
    return render_prompt(tok, row.prompt) + answer_text(int(row.answer), fixed) + tok.eos_token


def restate_answer_doc(tok: PreTrainedTokenizerFast, row: TrainRow) -> str:
    """A fixed-width problem whose response first restates the padded expression on its own line,
    then answers directly (no steps): the teacher's first copy, at the teacher's offset."""
    expr = row.question.removeprefix("Compute ").removesuffix(".")
    body = render_prompt(tok, row.prompt) + expr + "\n"
    return body + answer_text(int(row.answer), True) + tok.eos_token


def copy_drill_doc(tok: PreTrainedTokenizerFast, rng: random.Random, spec: SplitSpec, width: int) -> str:
    """``Repeat: <expression>.`` answered by the expression on a line, then ``</think>`` (no answer).

    The expression is a fresh random one from ``spec`` written ``width`` wide; ``Repeat: `` has
    the length of ``Compute `` so the copy sits at the offset of the teacher's state line 0.
    """
    while (problem := sample_problem(rng, spec, width)) is None:
        pass
    prompt = render_prompt(tok, [{"role": "user", "content": f"Repeat: {problem.expr}."}])
    return prompt + problem.expr + "\n</think>\n" + tok.eos_token


def sample_fact(rng: random.Random, spec: SplitSpec) -> tuple[int, str, int, int]:
    """One single-operation fact ``(a, op, b, a op b)`` distributed like the task's steps.

    Draws a fresh random problem from the training distribution ``spec`` (not from the train
    split) and returns one of its evaluation steps, so facts cover exactly the operand and
    result ranges a step-by-step solution needs -- as isolated facts, never as a trace.
    """
    while (problem := sample_problem(rng, spec)) is None:
        pass
    return rng.choice(problem.steps)


def fact_doc(rng: random.Random, n: int, spec: SplitSpec, fixed: bool = False) -> str:
    """``n`` lines ``a op b=r`` (the teacher's step-line format), each from a different problem.

    ``fixed``: numbers zero-padded to 2 digits, as in a fixed-width task.
    """
    return "".join(fact_line(*sample_fact(rng, spec), fixed=fixed) for _ in range(n))


def step_drill_doc(rng: random.Random, n: int, spec: SplitSpec, width: int) -> str:
    """``n`` single steps of the fixed-offset trace, each from a different problem, blank-line separated.

    A step is a state line, its fact line and the next state line (just the two lines for a
    problem's last step), exactly as :func:`~luffy.data.synthetic.restate_fixed_trace` writes
    them: the copies at the trace's offsets, but never a chain of steps, a prompt or an answer.
    """
    blocks = []
    for _ in range(n):
        while (problem := sample_problem(rng, spec, width)) is None:
            pass
        lines = (
            restate_fixed_trace(problem, width).removeprefix("<think>\n").split("</think>")[0].splitlines()
        )
        k = 2 * rng.randrange(problem.n_ops)
        blocks.append("".join(line + "\n" for line in lines[k : k + 3]))
    return "\n".join(blocks)


def draw_document(rng: random.Random, tok: PreTrainedTokenizerFast, cfg: TinyModelConfig, spec: SplitSpec,
                  copy_spec: SplitSpec, width: int, problems: list[list[int]],
                  restated: list[list[int]]) -> list[int]:
    """One pretraining document's token ids (the mix of :func:`pretrain`'s docstring).

    The random stream is part of the result: a base model is reproducible only while every option
    at its default draws exactly what it drew when that base was built. So the copy-drill draw
    happens only when ``copy_drill_fraction`` > 0, while the step-drill draw of fixed-width tasks is
    unconditional (the base of the miniature's gate runs was built that way; tests pin the stream).
    """
    fixed = width > 0
    if rng.random() < cfg.fact_fraction:
        if fixed and rng.random() < cfg.step_drill_fraction:
            text = step_drill_doc(rng, cfg.steps_per_drill, spec, width)
        else:
            text = fact_doc(rng, cfg.facts_per_doc, spec, fixed)
        return tok(text + tok.eos_token)["input_ids"]
    if fixed and cfg.copy_drill_fraction > 0 and rng.random() < cfg.copy_drill_fraction:
        return tok(copy_drill_doc(tok, rng, copy_spec, width))["input_ids"]
    if restated and rng.random() < cfg.restate_fraction:
        return rng.choice(restated)
    return rng.choice(problems)


def pretrain(
    model: Qwen2ForCausalLM,
    tok: PreTrainedTokenizerFast,
    train: list[TrainRow],
    spec: SplitSpec,
    cfg: TinyModelConfig,
    width: int = 0,
) -> list[list[float]]:
    """Plain next-token LM training on a mix of direct-answer and fact documents.

    ``width``: the task's ``fixed_width`` (> 0: 2-digit numbers in facts and answers; then a share
    ``cfg.restate_fraction`` of the direct answers first restate the expression
    (:func:`restate_answer_doc`), a share ``cfg.copy_drill_fraction`` of them are copy drills
    (:func:`copy_drill_doc`) and a share ``cfg.step_drill_fraction`` of the fact documents are
    step drills (:func:`step_drill_doc`)). Returns ``[step, mean loss]`` pairs: step 0 alone, then the
    mean over each ~5% of the steps.
    """
    rng = random.Random(cfg.seed)
    fixed = width > 0
    problems = [tok(direct_answer_doc(tok, r, fixed))["input_ids"] for r in train]
    restated = [tok(restate_answer_doc(tok, r))["input_ids"] for r in train] if fixed else []
    copy_spec = spec.model_copy(update={"min_ops": 1, "max_ops": cfg.copy_max_ops or spec.max_ops})
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.95), weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_factor(s, cfg.warmup_steps, cfg.steps))
    log, every, window = [], max(1, cfg.steps // 20), []
    model.train()
    for step in range(cfg.steps):
        docs = []
        for _ in range(cfg.batch_size):
            docs.append(draw_document(rng, tok, cfg, spec, copy_spec, width, problems, restated))
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
