"""Before/after of the log-prob fast path (:func:`luffy.train.tensors.token_logprobs`).

``before`` = :func:`~luffy.train.tensors.token_logprobs_reference` (logits at every position, one
float32 ``[m, R, V]`` copy plus its softmax, the model's SDPA attention), ``after`` =
:func:`~luffy.train.tensors.token_logprobs` (head on the response positions only, chunked float32
statistics under checkpointing, eager attention for a bf16 model on CPU), ``after_sdpa`` = the same
without the attention switch (:data:`luffy.model.attention.ENABLED` False).

Per model shape and variant, a fresh worker process (``spawn``) builds the same seeded model,
runs one untimed warm-up and ``repeats`` timed rounds of ``token_logprobs → Σ logp + Σ H →
backward`` on one micro-batch, and reports the best wall time and its peak resident memory above
the memory it had right before the first round (the high-water mark ``VmHWM``, reset after the model
is built; each variant in its own process, so one cannot reuse the other's freed pages). Values are compared in the parent (float32 model): the largest
absolute difference of logp and of entropy between the variants.
"""

from __future__ import annotations

import multiprocessing as mp
import resource
import time
from typing import Any

import torch

from . import BenchError
from .common import envelope, finish, random_prompts, smollm2_shaped_model

SIZES = {
    # model: (seqs, prompt_len, resp_len)
    "tiny": (32, 40, 96),
    "smollm2": (8, 64, 192),
}
SMALL = (2, 8, 8)


def _model(name: str, dtype: torch.dtype):
    if name == "tiny":
        from transformers import Qwen2ForCausalLM

        from luffy.model.tiny import TinyModelConfig, build_tokenizer, model_config

        torch.manual_seed(0)
        return Qwen2ForCausalLM(model_config(TinyModelConfig(), build_tokenizer())).to(dtype).train()
    return smollm2_shaped_model().to(dtype).train()


def _batch(model, seqs: int, plen: int, rlen: int):
    from luffy.train.tensors import collate

    vocab = int(model.get_input_embeddings().weight.shape[0])
    p = random_prompts(seqs, plen, vocab, seed=3)
    # ragged responses (as in a real step): lengths rlen/2 .. rlen
    r = [row[: rlen // 2 + (i * (rlen // 2)) // max(1, seqs - 1)] for i, row in
         enumerate(random_prompts(seqs, rlen, vocab, seed=4))]
    return collate(p, r, [[False] * len(x) for x in r], pad_id=0)


def _fn(variant: str):
    """before: the reference; after_sdpa: the fast path with the model's own attention; after: all of it."""
    from luffy.model import attention
    from luffy.train import tensors

    if variant == "before":
        return tensors.token_logprobs_reference
    attention.ENABLED = variant == "after"  # this worker process only
    return tensors.token_logprobs


def _status_kib(field: str) -> int:
    with open("/proc/self/status", encoding="utf-8") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak() -> bool:
    """Reset this process's resident-memory high-water mark (Linux ``clear_refs`` 5); False if unsupported."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="utf-8") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _worker(name: str, dtype: str, variant: str, shape: tuple[int, int, int], repeats: int, threads: int,
            q) -> None:
    torch.set_num_threads(threads)
    model = _model(name, getattr(torch, dtype))
    mb = _batch(model, *shape)
    fn = _fn(variant)
    base = _status_kib("VmRSS")
    reset = _reset_peak()  # else ru_maxrss, which also holds the model build's peak (an upper bound)
    times = []
    for i in range(repeats + 1):
        t0 = time.perf_counter()
        lp, ent = fn(model, mb)
        (lp.sum() + ent.sum()).backward()
        model.zero_grad(set_to_none=True)
        if i:
            times.append(time.perf_counter() - t0)
    peak = _status_kib("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
    q.put({"best_s": round(min(times), 4), "seconds": [round(t, 4) for t in times],
           "peak_rss_over_start_mib": round((peak - base) / 1024, 1), "peak_from": "VmHWM" if reset
           else "ru_maxrss (upper bound)"})


def _in_worker(*args, limit_s: float = 1800) -> dict[str, Any]:
    """Run one measurement in a fresh process; a worker that dies is an error, not a wait."""
    import queue

    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_worker, args=(*args, q))
    p.start()
    deadline = time.monotonic() + limit_s
    try:
        while True:
            try:
                return q.get(timeout=1.0)
            except queue.Empty:
                if not p.is_alive():
                    raise BenchError(f"fastpath: the measuring process for {args[:3]} exited with status "
                                     f"{p.exitcode} without a result") from None
                if time.monotonic() > deadline:
                    raise BenchError(f"fastpath: no result for {args[:3]} within {limit_s:.0f} s") from None
    finally:
        p.join(timeout=60)
        if p.is_alive():
            p.kill()


def _max_diff(name: str, shape) -> dict[str, float]:
    from luffy.train import tensors

    model = _model(name, torch.float32)
    mb = _batch(model, *shape)
    a_lp, a_h = tensors.token_logprobs_reference(model, mb)
    b_lp, b_h = tensors.token_logprobs(model, mb)
    m = mb.resp_mask
    return {"max_abs_diff_logp": float((a_lp - b_lp).detach()[m].abs().max()),
            "max_abs_diff_entropy": float((a_h - b_h).detach()[m].abs().max())}


def run(small: bool = False, *, models: tuple[str, ...] = ("tiny", "smollm2"), dtype: str = "bfloat16",
        repeats: int | None = None, threads: int | None = None) -> dict[str, Any]:
    threads = threads or torch.get_num_threads()
    if small:
        models = ("tiny",)
    repeats = repeats or (1 if small else 3)
    rec = envelope("fastpath", small, {"models": list(models), "dtype": dtype, "repeats": repeats,
                                       "threads": threads, "what": "token_logprobs fwd+bwd, one micro-batch"})
    for name in models:
        shape = SMALL if small else SIZES[name]
        res: dict[str, Any] = {"seqs": shape[0], "prompt_len": shape[1], "resp_len_max": shape[2]}
        for variant in ("before", "after_sdpa", "after"):
            res[variant] = _in_worker(name, dtype, variant, shape, repeats, threads)
        res["speedup"] = round(res["before"]["best_s"] / res["after"]["best_s"], 3)
        res["speedup_without_eager_attention"] = round(res["before"]["best_s"] / res["after_sdpa"]["best_s"], 3)
        res["float32_equality"] = _max_diff(name, shape)
        rec["results"][name] = res
    return finish(rec)
