"""MFU of the policy update: achieved FLOP/s over the matmul peak measured in the same run.

Peak: ``torch.matmul`` of two square n × n matrices in a loop (fp32 and bf16; n in ``peak_sizes``),
``2·n³`` FLOPs per product; the best timed round over all sizes is the peak of that dtype on this
machine with this process's torch threads.

Update: the trainer's own update code (:func:`luffy.train.update.run_update`) for one optimizer step
on one batch of ``seqs`` sequences (``prompt_len`` prompt + ``resp_len`` response ids, no padding,
random ids, random advantages, half of the sequences off-policy): per micro-batch
:func:`~luffy.train.tensors.token_logprobs` → :func:`~luffy.algos.policy_loss` − entropy bonus →
backward; then grad-norm clip and AdamW. Collation is inside the timed region, as in a step. The
first step is a warm-up; the mean of ``steps`` timed steps is reported. ``optim_step_s`` is one
AdamW step timed alone.

FLOPs per update (the issue's formula; PaLM appendix B)::

    6 · N · tokens  +  12 · n_layers · d_attn · ctx · tokens

with N = the parameters that multiply activations (every Linear of the layers plus the output
head; the input-embedding lookup is not a matmul, a tied head is counted once as the head),
tokens = seqs · (prompt_len + resp_len) (no padding here), ctx = prompt_len + resp_len,
d_attn = n_heads · head_dim. The attention term counts the full (non-causal) QKᵀ and AV products,
as PaLM does. Deviation: the optimizer's elementwise work is not counted (its time is).

MFU = FLOPs / update seconds / peak of the update's dtype.
"""

from __future__ import annotations

import copy
import gc
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from . import BenchError
from .common import (
    count_params,
    dtype_name,
    dtype_of,
    envelope,
    finish,
    random_prompts,
    smollm2_shaped_model,
    tiny_model,
    torch_profile_top,
)

SIZES = {
    # model: (seqs, micro_batch_seqs, prompt_len, resp_len)
    "tiny": (32, 32, 40, 96),       # one tiny-DAG mini-batch: 4 prompts x 8 members, <= 96 tokens
    "smollm2": (8, 4, 64, 192),     # env notes §3b: 8 x 256 tokens
}
SMALL = (4, 2, 8, 8)


def matmul_peak(dtype: torch.dtype, sizes: tuple[int, ...], seconds: float) -> dict[str, Any]:
    """FLOP/s of ``a @ b`` (n × n, ``dtype``) for each n in ``sizes`` (best of 3 rounds of ≥ seconds/3/len
    each); the peak is the best over sizes (kernel efficiency depends on n and on the caches)."""
    by_n = {}
    for n in sizes:
        g = torch.Generator().manual_seed(0)
        a = torch.randn(n, n, generator=g).to(dtype)
        b = torch.randn(n, n, generator=g).to(dtype)
        c = torch.empty(n, n, dtype=dtype)
        torch.matmul(a, b, out=c)  # warm-up (oneDNN/MKL kernel selection)
        best = 0.0
        for _ in range(3):
            reps, t0 = 0, time.perf_counter()
            while True:
                torch.matmul(a, b, out=c)
                reps += 1
                dt = time.perf_counter() - t0
                if dt >= seconds / 3 / len(sizes):
                    break
            best = max(best, 2 * n**3 * reps / dt)
        by_n[str(n)] = round(best / 1e9, 2)
    peak = max(by_n.values()) * 1e9
    return {"flops_per_s": peak, "gflops_per_s": round(peak / 1e9, 2), "gflops_per_s_by_n": by_n}


def matmul_flop_params(model: torch.nn.Module) -> int:
    """Parameters that multiply activations: all Linear weights (+ the head once), no embedding lookup."""
    seen, n = set(), 0
    for mod in model.modules():
        if isinstance(mod, torch.nn.Linear) and id(mod.weight) not in seen:
            seen.add(id(mod.weight))
            n += mod.weight.numel()
    return n


def update_flops(model: torch.nn.Module, seqs: int, ctx: int) -> dict[str, float]:
    cfg = model.config
    n_lin = matmul_flop_params(model)
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    d_attn = cfg.num_attention_heads * head_dim
    tokens = seqs * ctx
    dense = 6 * n_lin * tokens
    attn = 12 * cfg.num_hidden_layers * d_attn * ctx * tokens
    return {"matmul_params": n_lin, "tokens": tokens, "dense_flops": float(dense), "attn_flops": float(attn),
            "flops": float(dense + attn)}


def make_batch(seqs: int, prompt_len: int, resp_len: int, vocab: int, pad_id: int, *, seed: int = 0):
    """A micro-batchable update batch: (prompts, responses, off masks, advantages float[seqs])."""
    prompts = random_prompts(seqs, prompt_len, vocab, seed=seed)
    resps = random_prompts(seqs, resp_len, vocab, seed=seed + 1)
    off = [[i % 2 == 1] * resp_len for i in range(seqs)]
    g = torch.Generator().manual_seed(seed + 2)
    adv = torch.randn(seqs, generator=g)
    return prompts, resps, off, adv


def update_step(model, optim, sched, batch, micro: int, *, pad_id: int, spec) -> float:
    """One optimizer step of the trainer's update (:func:`luffy.train.update.run_update`, the code the
    trainer and the distributed workers run) on ``batch``; returns its wall seconds."""
    from luffy.train.tensors import collate
    from luffy.train.update import Micro, run_update, with_totals

    prompts, resps, off, adv = batch
    n = len(prompts)
    t0 = time.perf_counter()
    micros = []
    for s in range(0, n, micro):
        idx = list(range(s, min(n, s + micro)))
        mb = collate([prompts[i] for i in idx], [resps[i] for i in idx], [off[i] for i in idx], pad_id)
        old = torch.zeros(mb.resp_mask.shape, dtype=torch.float32)         # [m, R]; value irrelevant here
        micros.append(Micro(mb, old, adv[idx], torch.tensor([o[0] for o in off[s: s + micro]])))
    res = run_update(model, optim, sched, [with_totals(micros)], spec)
    if res.bad:
        raise BenchError("mfu: the update produced a non-finite loss or gradient")
    return time.perf_counter() - t0


def _optim_seconds(model, optim, reps: int = 2) -> float:
    """Wall seconds of one AdamW step alone (gradients set to zero tensors)."""
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        optim.step()
        times.append(time.perf_counter() - t0)
    optim.zero_grad(set_to_none=True)
    return min(times)


def measure_update(model, dtype: torch.dtype, seqs: int, micro: int, prompt_len: int, resp_len: int,
                   steps: int, peak: float, profile: bool) -> dict[str, Any]:
    from luffy.algos.loss import LossConfig
    from luffy.train.update import UpdateSpec

    model = model.to(dtype).train()
    vocab = int(model.get_input_embeddings().weight.shape[0])
    pad = 0
    batch = make_batch(seqs, prompt_len, resp_len, min(vocab, 50_000), pad)
    optim = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-6)
    sched = torch.optim.lr_scheduler.LambdaLR(optim, lambda _: 1.0)
    spec = UpdateSpec(kind="rl", temperature=1.0, loss=LossConfig(norm_length=resp_len),
                      off_policy_objective="policy", sft_coef=1.0, entropy_coef=0.001, grad_clip=1.0)
    kw = {"pad_id": pad, "spec": spec}
    update_step(model, optim, sched, batch, micro, **kw)  # warm-up
    runs = [update_step(model, optim, sched, batch, micro, **kw) for _ in range(steps)]
    mean = sum(runs) / len(runs)
    optim_s = _optim_seconds(model, optim)
    fl = update_flops(model, seqs, prompt_len + resp_len)
    out = {"dtype": dtype_name(dtype), "seqs": seqs, "micro_batch_seqs": micro, "prompt_len": prompt_len,
           "resp_len": resp_len, "steps": steps, "update_s": round(mean, 4),
           "update_s_all": [round(r, 4) for r in runs], "optim_step_s": round(optim_s, 4), **fl,
           "achieved_flops_per_s": fl["flops"] / mean,
           "achieved_gflops_per_s": round(fl["flops"] / mean / 1e9, 2),
           "mfu": round(fl["flops"] / mean / peak, 4),
           "mfu_without_optimizer_step": round(fl["flops"] / max(1e-9, mean - optim_s) / peak, 4)}
    if profile:
        out["profile_top"] = torch_profile_top(lambda: update_step(model, optim, sched, batch, micro, **kw))
    return out


def run(small: bool = False, *, models: tuple[str, ...] = ("tiny", "smollm2"),
        dtypes: tuple[str, ...] = ("bfloat16", "float32"), steps: int | None = None,
        peak_sizes: tuple[int, ...] | None = None, peak_seconds: float | None = None, profile: bool = False,
        threads: int | None = None) -> dict[str, Any]:
    if threads:
        torch.set_num_threads(threads)
    if small:
        models = ("tiny",)
    peak_sizes = peak_sizes or ((256,) if small else (512, 1024, 2048))
    peak_seconds = peak_seconds or (0.3 if small else 9.0)
    steps = steps or (1 if small else 3)
    rec = envelope("mfu", small, {"models": list(models), "dtypes": list(dtypes), "steps": steps,
                                  "peak_sizes": list(peak_sizes), "peak_seconds": peak_seconds,
                                  "formula": "6*N*tokens + 12*layers*d_attn*ctx*tokens"})
    peaks = {}
    for d in dtypes:
        peaks[d] = matmul_peak(dtype_of(d), peak_sizes, peak_seconds)
    rec["results"]["peak"] = peaks
    for name in models:
        with tempfile.TemporaryDirectory(prefix="luffy-bench-mfu-") as tmp:
            if name == "tiny":
                base, _ = tiny_model(Path(tmp) / "m")
            elif name == "smollm2":
                base = smollm2_shaped_model()
            else:
                raise BenchError(f"mfu: unknown model {name!r}; expected tiny or smollm2")
        seqs, micro, plen, rlen = SMALL if small else SIZES[name]
        res = {"params": count_params(base)}
        for d in dtypes:
            m = copy.deepcopy(base)
            res[d] = measure_update(m, dtype_of(d), seqs, micro, plen, rlen, steps, peaks[d]["flops_per_s"],
                                    profile)
            del m
            gc.collect()
        rec["results"][name] = res
        del base
        gc.collect()
    return finish(rec)
