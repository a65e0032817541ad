"""The tiny base model of the embedded task: a char-level tokenizer and a small Qwen2 LM.

The base model stands in for Qwen2.5-Math-7B (spec §8) on the tiny task (tiny-task design):
it is pretrained briefly on the TRAIN split only, on two kinds of documents,

* problems with short, direct answers, rendered with the ``tiny_think`` chat template::

      User: Compute 3+4*2-5.\\nAssistant: <think>\\n</think>\\nThe answer is \\boxed{6}.<|endoftext|>

* lines of single-operation facts (``14-5=9``), so that the teacher's steps are learnable later.

It never sees the teacher's step-by-step traces or the test splits. The result knows the answer
format but rarely the answer of a multi-step problem: low, non-zero reward on ``test_id`` and
about zero on ``test_ood`` -- a base model that RL can improve.

Determinism: seeded init and data order, ``torch.use_deterministic_algorithms(True)`` and a
fixed thread count; the same config and task give bit-identical weights on the same machine.
The default is ONE thread: the matrices are tiny, so a second thread gains little, while a
busy 2-core host (two jobs, or a vLLM worker beside the build) makes OpenMP spin-waits cost
5-30x (measured: one train step 3.3 s wall with 1 thread vs 15.9 s with 2 at load 12).
Deviations from the paper's model side: no system prompt; a 260-token byte vocabulary (one
token per character of the task's ASCII text) instead of Qwen's BPE.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers
from transformers import GenerationConfig, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

from luffy.data.loaders import load_rows
from luffy.data.schema import TrainRow
from luffy.data.synthetic import SplitSpec, sample_problem
from luffy.data.templates import get_chat_template, render_prompt
from luffy.rewards import math_verify_reward

PAD, EOS = "<|pad|>", "<|endoftext|>"
SPECIALS = (PAD, EOS)
THINK_TAGS = ("<think>", "</think>")
VLLM_CPU_HEAD_DIMS = (32, 64, 80, 96, 112, 128)


class TinyModelConfig(BaseModel):
    """Every knob of the tiny base model and its pretraining.

    Defaults (2 layers x 128, 0.56 M parameters, 600 steps of 32 documents, ~75 s on one
    thread) were tuned on the default task: at the same budget, 3-4 layers, width 256, batch 64
    or a higher learning rate all taught fewer step facts and gave no better starting accuracy.
    Deviation from the design note's "1-5 M parameters": smaller trains further in the budget.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = Field(0, description="seeds weight init and the pretraining data order")
    hidden_size: int = Field(128, ge=32)
    num_layers: int = Field(2, ge=1)
    num_heads: int = Field(4, ge=1, description="head_dim = hidden_size / num_heads must suit vLLM CPU")
    num_kv_heads: int = Field(4, ge=1)
    intermediate_size: int = Field(512, ge=32)
    max_position_embeddings: int = Field(512, ge=64)
    rope_theta: float = Field(10000.0, gt=0)
    steps: int = Field(600, ge=0, description="pretraining optimizer steps")
    batch_size: int = Field(32, ge=1, description="documents per step")
    lr: float = Field(5e-3, gt=0, description="peak AdamW learning rate (linear warmup, cosine decay)")
    warmup_steps: int = Field(30, ge=0)
    weight_decay: float = Field(0.01, ge=0)
    fact_fraction: float = Field(0.5, ge=0, le=1, description="share of documents that are fact lines")
    facts_per_doc: int = Field(8, ge=1)
    threads: int = Field(1, ge=1, description="torch threads during the build (1: see module docstring)")
    eval_n: int = Field(500, ge=0, description="prompts per test split for the starting accuracy")
    eval_max_new_tokens: int = Field(48, ge=1)
    eval_batch_size: int = Field(100, ge=1)

    @model_validator(mode="after")
    def _shapes(self) -> TinyModelConfig:
        if self.hidden_size % self.num_heads or self.num_heads % self.num_kv_heads:
            raise ValueError("hidden_size must divide by num_heads and num_heads by num_kv_heads")
        if self.hidden_size // self.num_heads not in VLLM_CPU_HEAD_DIMS:
            raise ValueError(
                f"head_dim {self.hidden_size // self.num_heads} not in {VLLM_CPU_HEAD_DIMS} (vLLM CPU)"
            )
        if self.warmup_steps > self.steps:
            raise ValueError(f"warmup_steps={self.warmup_steps} > steps={self.steps}")
        return self


def build_tokenizer(chat_template: str = "tiny_think") -> PreTrainedTokenizerFast:
    """Byte-level character tokenizer: ids 0-1 ``<|pad|> <|endoftext|>``, 2-3 think tags, then bytes.

    Byte ``b`` has id ``4 + b``, so every ASCII character (the task's whole alphabet) is one
    token and nothing is ever dropped. There are no merges. The pipeline (NFC, Qwen2's split
    regex, ByteLevel, BPE, ByteLevel decoder) is exactly what ``AutoTokenizer`` rebuilds for a
    ``qwen2`` folder, so the saved folder tokenizes identically everywhere (HF, vLLM).
    (AutoTokenizer also adds a word-splitting regex; without merges it cannot change any id.)
    The think tags are ordinary added tokens (they decode as text with ``skip_special_tokens``);
    nothing is added on encode (no bos/eos), so ``decode(encode(s)) == s``.
    """
    vocab = {t: i for i, t in enumerate([*SPECIALS, *THINK_TAGS])}
    vocab.update({sym: len(vocab) + b for b, sym in byte_symbols().items()})
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIALS])
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in THINK_TAGS])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=EOS,  # what AutoTokenizer sets for qwen2 folders; byte-level input never needs it
        clean_up_tokenization_spaces=False,
        model_max_length=512,
        chat_template=get_chat_template(chat_template),
    )


def byte_symbols() -> dict[int, str]:
    """The byte-level stand-in character of each byte (the GPT-2 convention ByteLevel uses).

    Printable Latin-1 bytes stand for themselves; the other 68 bytes take code points 256+.
    """
    printable = {*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)}
    spare = iter(range(256, 512))
    return {b: chr(b) if b in printable else chr(next(spare)) for b in range(256)}


def model_config(cfg: TinyModelConfig, tokenizer: PreTrainedTokenizerFast) -> Qwen2Config:
    """The Qwen2 architecture (vLLM-supported) sized by ``cfg``, with tied embeddings."""
    return Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_kv_heads,
        max_position_embeddings=cfg.max_position_embeddings,
        rope_parameters={"rope_type": "default", "rope_theta": cfg.rope_theta},
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def build_base_model(task_dir: str | Path, out_dir: str | Path, cfg: TinyModelConfig) -> dict[str, Any]:
    """Pretrain the tiny base model on ``task_dir``'s train split and save an HF folder.

    Writes config.json, model.safetensors, generation_config.json, tokenizer files and
    ``model_card.json`` (config, parameter count, loss curve, seconds, starting accuracy greedy
    and at T=1.0 on test_id / test_ood, fact accuracy); returns the model card.
    """
    task_dir, out_dir = Path(task_dir), Path(out_dir)
    spec = _train_spec(task_dir)
    train = load_rows(task_dir / "train.jsonl", fmt="luffy")
    t0, c0 = time.perf_counter(), time.process_time()
    with _deterministic(cfg.threads):
        torch.manual_seed(cfg.seed)
        tok = build_tokenizer()
        model = Qwen2ForCausalLM(model_config(cfg, tok))
        losses = _pretrain(model, tok, train, spec, cfg)
        train_s, train_cpu_s = time.perf_counter() - t0, time.process_time() - c0
        accuracy = facts = None  # eval_n=0: not measured
        if cfg.eval_n > 0:
            accuracy = {
                s: _starting_accuracy(model, tok, task_dir / f"{s}.jsonl", cfg)
                for s in ("test_id", "test_ood")
            }
            facts = fact_accuracy(model, tok, spec, n=cfg.eval_n, seed=cfg.seed + 1)
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


# --------------------------------------------------------------------------------- pretraining


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


def _pretrain(
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


@contextmanager
def _deterministic(threads: int) -> Iterator[None]:
    """Fixed threads and deterministic kernels, restored afterwards."""
    old_threads, old_det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(old_det)
        torch.set_num_threads(old_threads)


# ------------------------------------------------------------------------------------ evaluation


@torch.no_grad()
def fact_accuracy(model: Any, tok: PreTrainedTokenizerFast, spec: SplitSpec, *, n: int, seed: int) -> float:
    """Share of ``n`` random step facts (:func:`sample_fact`) the model completes exactly (greedy).

    The prompt is ``"a op b="``; the answer must be ``r`` followed by a newline. A diagnostic of
    whether the teacher's steps are within the base model's reach.
    """
    rng = random.Random(f"facts:{seed}")
    facts = [sample_fact(rng, spec) for _ in range(n)]
    old_side, tok.padding_side = tok.padding_side, "left"
    try:
        enc = tok([f"{a}{op}{b}=" for a, op, b, _ in facts], return_tensors="pt", padding=True)
        out = model.generate(**enc, max_new_tokens=5, do_sample=False, pad_token_id=tok.pad_token_id)
    finally:
        tok.padding_side = old_side
    texts = tok.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
    return sum(t.startswith(f"{r}\n") for (*_, r), t in zip(facts, texts)) / n


def _starting_accuracy(
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
