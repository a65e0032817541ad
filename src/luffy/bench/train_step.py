"""Training step: our mixed-policy RL step vs TRL's ``GRPOTrainer`` at identical settings.

Same model folder (the tiny architecture, :func:`luffy.model.tiny.build_base_model`, or
``model=<folder>``), same data (the tiny task's train split, prompts rendered with the model's
chat template, so both sides see identical prompt ids), same group size (8 per prompt), same
prompts per optimizer step, same micro-batch (32 sequences), same max response length, same
sampling (T = 1, top-p 1, no top-k) with HF ``generate`` on both sides, same precision (the
model loaded in ``dtype``), same reward (:func:`luffy.rewards.batch_math_verify_reward` in a
2-process :class:`~luffy.rewards.GradingPool`), no KL / reference model, Dr.GRPO normalisation
(TRL ``loss_type="dr_grpo"``, ``scale_rewards="none"``; ours ``token_sum_norm``, ``scale: none``),
one optimizer step per step (AdamW, same lr / weight decay / grad clip).

Timed: wall seconds of whole steps (rollout, reward, advantages, old log-probs if any, update),
after ``warmup`` untimed steps; everything runs ``rounds`` times in alternating order (see :func:`run`). Ours: :meth:`luffy.train.Trainer.rl_step`; TRL: the time between
its ``on_step_begin`` and ``on_step_end`` callbacks. steps/s = timed steps / their summed seconds;
the median step time is recorded too (robust to a load spike on a shared machine).

Variants of ours: ``luffy`` (7 rollouts + 1 teacher trace per prompt, every fast path on: the
old-log-prob pass is skipped because it provably equals the update's log-probs, eager attention for
a bf16 model on CPU in generation and in the log-prob passes, :mod:`luffy.model.attention`),
``luffy_recompute_old_logp`` (the separate pass forced), ``luffy_sdpa_attention`` (SDPA attention
kept), ``luffy_before_fast_path`` (both off: the "before"), ``on_policy`` (8 rollouts: the same generation work as TRL). The padding waste of the
micro-batches a step builds (old-log-prob pass and update) is recorded for each.

TRL runs twice: with its defaults (``trl``: the model's SDPA attention) and with the model switched
to eager attention (``trl_eager_attention``), the kernel choice our trainer makes for a bf16 model on
CPU -- so the ratio is given with and without that advantage.

Not identical (stated, not hidden): prompt order (each side's own seeded sampler) and therefore
response lengths; TRL logs extra metrics (entropy, clip ratios) every step.
"""

from __future__ import annotations

import gc
import importlib.util
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from . import BenchError
from .common import envelope, finish, torch_profile_top

SIZES = {"prompts": 8, "group": 8, "micro": 32, "max_response": 96, "warmup": 1, "steps": 8}
SMALL = {"prompts": 2, "group": 2, "micro": 4, "max_response": 8, "warmup": 1, "steps": 1}


def _task_and_model(tmp: Path, model: str | None) -> tuple[Path, Path]:
    from luffy.data.synthetic import TaskConfig, write_task
    from luffy.model.tiny import TinyModelConfig, build_base_model

    task = tmp / "task"
    write_task(task, TaskConfig(seed=0, n_train=256, n_train_rl=0, n_test_id=8, n_test_ood=8))
    if model:
        return task, Path(model)
    folder = tmp / "model"
    build_base_model(task, folder, TinyModelConfig(steps=0, warmup_steps=0, eval_n=0))
    return task, folder


def _config(task: Path, model: Path, s: dict[str, int], dtype: str, n_on: int, n_off: int, steps: int):
    from luffy.config import RunConfig

    r = s["max_response"]
    return RunConfig.model_validate({
        "method": "rl",
        "model": {"path": str(model), "dtype": dtype},
        "data": {"train": str(task / "train.jsonl"), "val": None, "max_prompt_tokens": 64,
                 "max_response_tokens": r},
        "group": {"n_on": n_on, "n_off": n_off, "prefix_ratio": 1.0},
        "advantage": {"stats": "group", "scale": "none"},
        "loss": {"shaping": {"name": "luffy", "gamma": 0.1}, "clip": None, "aggregation": "token_sum_norm",
                 "norm_length": r},
        "entropy_coef": 0.001,
        "rollout": {"engine": "hf", "temperature": 1.0, "top_p": 1.0},
        "optim": {"lr": 2e-4, "weight_decay": 0.01, "grad_clip": 1.0, "schedule": "constant"},
        "train": {"steps": steps, "prompts_per_step": s["prompts"], "mini_batch_prompts": s["prompts"],
                  "micro_batch_seqs": s["micro"], "ppo_epochs": 1, "seed": 0, "val_every": 0,
                  "save_every": 0},
    })


def _ours(cfg, out: Path, warmup: int, steps: int, *, recompute_old: bool, profile: bool,
          eager_attention: bool = True) -> dict[str, Any]:
    from luffy.model import attention

    attention.ENABLED = eager_attention
    try:
        return _ours_run(cfg, out, warmup, steps, recompute_old=recompute_old, profile=profile)
    finally:
        attention.ENABLED = True


def _ours_run(cfg, out: Path, warmup: int, steps: int, *, recompute_old: bool, profile: bool) -> dict[str, Any]:
    from luffy.train import Trainer

    t = Trainer(cfg, out, progress=False, log=lambda *a, **k: None)
    if recompute_old:
        t.always_recompute_old_logp = True
    pad = {"tokens": 0, "slots": 0}
    try:
        t.setup()
        orig = t._micro

        def recording(seqs):  # padding accounting of every micro-batch the step builds
            mb = orig(seqs)
            pad["tokens"] += int(mb.attn.sum())
            pad["slots"] += mb.attn.numel()
            return mb

        t._micro = recording
        times, phases, lengths = [], {}, []
        for step in range(1, warmup + steps + 1):
            t0 = time.perf_counter()
            met = t.rl_step(step)
            dt = time.perf_counter() - t0
            if met.get("bad_step"):
                raise BenchError(f"our step {step}: non-finite loss")
            if step > warmup:
                times.append(dt)
                lengths.append(met["length/on"])
                for k, v in met.items():
                    if k.startswith("time/"):
                        phases[k[5:]] = phases.get(k[5:], 0.0) + v / steps
        rec = {"step_s": [round(x, 4) for x in times], "steps_per_s": round(len(times) / sum(times), 4),
               "median_step_s": round(statistics.median(times), 4),
               "phases_mean_s": {k: round(v, 4) for k, v in phases.items()},
               "mean_on_policy_length": round(sum(lengths) / len(lengths), 2),
               "update_padding_waste": round(1 - pad["tokens"] / max(1, pad["slots"]), 4),
               "old_logp_pass": "recomputed" if recompute_old else "skipped when provably equal"}
        if profile:
            rec["profile_top"] = torch_profile_top(lambda: t.rl_step(warmup + steps + 1))
        return rec
    finally:
        t.close()


def _trl(task: Path, model_dir: Path, s: dict[str, int], dtype: str, warmup: int, steps: int,
         out: Path, attention: str | None = None) -> dict[str, Any]:
    if importlib.util.find_spec("trl") is None:
        raise BenchError("the TRL comparison needs TRL: pip install -e '.[bench]'")
    import trl
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from luffy.data.loaders import load_rows
    from luffy.model.load import load_model
    from luffy.rewards import GradingPool, batch_math_verify_reward
    from luffy.rollout.groups import encode_prompt

    model, tok = load_model(model_dir, dtype=dtype)
    if attention is not None:
        model.set_attn_implementation(attention)
    model.train()
    rows = load_rows(task / "train.jsonl")
    ds = Dataset.from_list([{"prompt": encode_prompt(tok, r)[0], "answer": r.answer} for r in rows])
    pool = GradingPool(2)

    def accuracy(prompts, completions, answer, **_):
        t0 = time.perf_counter()
        out = batch_math_verify_reward(list(completions), list(answer), pool=pool).scores
        clock.phase["reward"] = clock.phase.get("reward", 0.0) + time.perf_counter() - t0
        return out

    class Clock(TrainerCallback):
        """Step wall times, and per step the seconds spent in ``model.generate`` and in the reward."""

        def __init__(self) -> None:
            self.t0, self.times, self.phase, self.phases = 0.0, [], {}, []

        def on_step_begin(self, args, state, control, **kw):
            self.t0, self.phase = time.perf_counter(), {"gen": 0.0, "reward": 0.0}

        def on_step_end(self, args, state, control, **kw):
            self.times.append(time.perf_counter() - self.t0)
            self.phases.append(self.phase)

    clock = Clock()

    def timed_phase(name, fn):
        def wrapper(*a, **k):
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                clock.phase[name] = clock.phase.get(name, 0.0) + time.perf_counter() - t0
        return wrapper

    model.generate = timed_phase("gen", model.generate)  # TRL calls the (unwrapped) model's generate

    n_seqs = s["prompts"] * s["group"]
    if n_seqs % s["micro"]:
        raise BenchError(f"prompts x group = {n_seqs} must be a multiple of the micro-batch {s['micro']}")
    known = set(GRPOConfig.__dataclass_fields__)
    kw: dict[str, Any] = {
        "output_dir": str(out), "per_device_train_batch_size": s["micro"],
        "gradient_accumulation_steps": n_seqs // s["micro"], "num_generations": s["group"],
        "max_completion_length": s["max_response"], "temperature": 1.0, "top_p": 1.0, "top_k": 0,
        "beta": 0.0, "loss_type": "dr_grpo", "scale_rewards": "none", "num_iterations": 1,
        "learning_rate": 2e-4, "weight_decay": 0.01, "max_grad_norm": 1.0, "lr_scheduler_type": "constant",
        "warmup_steps": 0, "max_steps": warmup + steps, "logging_steps": 1, "report_to": "none",
        "save_strategy": "no", "use_cpu": True, "seed": 0, "bf16": False, "fp16": False,
        "dataloader_num_workers": 0, "disable_dropout": True, "log_completions": False,
        "mask_truncated_completions": False, "remove_unused_columns": False,
    }
    args = GRPOConfig(**{k: v for k, v in kw.items() if k in known})
    try:
        trainer = GRPOTrainer(model=model, reward_funcs=[accuracy], args=args, train_dataset=ds,
                              processing_class=tok, callbacks=[clock])
        trainer.train()
        lengths = [h["completions/mean_length"] for h in trainer.state.log_history
                   if "completions/mean_length" in h]
    finally:
        pool.close()
    times = clock.times[warmup:]
    if len(times) != steps:
        raise BenchError(f"TRL ran {len(clock.times)} steps, expected {warmup + steps}")
    return {"trl_version": trl.__version__, "step_s": [round(x, 4) for x in times],
            "steps_per_s": round(len(times) / sum(times), 4), "median_step_s": round(statistics.median(times), 4),
            "phases_mean_s": {k: round(sum(p[k] for p in clock.phases[warmup:]) / steps, 4) for k in ("gen", "reward")},
            "mean_completion_length": round(sum(lengths[warmup:]) / max(1, len(lengths[warmup:])), 2)
            if lengths else None,
            "settings_used": {k: v for k, v in kw.items() if k in known and k != "output_dir"},
            "settings_unknown_to_this_trl": sorted(set(kw) - known)}


def run(small: bool = False, *, model: str | None = None, dtype: str = "auto", trl: bool = True,
        variants: tuple[str, ...] = ("luffy", "luffy_recompute_old_logp", "luffy_sdpa_attention",
                                     "luffy_before_fast_path", "on_policy"), steps: int | None = None,
        rounds: int | None = None, profile: bool = False, threads: int | None = None) -> dict[str, Any]:
    """Run every variant (and TRL) ``rounds`` times, the order reversed in every other round (so a load
    drift on a shared machine hits all of them); each variant reports its best round (lowest median
    step time) and every round's median. Ratios compare best-round medians."""
    if threads:
        torch.set_num_threads(threads)
    s = dict(SMALL if small else SIZES)
    if steps:
        s["steps"] = steps
    rounds = rounds or (1 if small else 2)
    rec = envelope("train_step", small, {**s, "rounds": rounds, "dtype": dtype,
                                         "model": model or "tiny (random init)", "variants": list(variants),
                                         "trl": trl})
    groups = {"luffy": (s["group"] - 1, 1, False, True),
              "luffy_recompute_old_logp": (s["group"] - 1, 1, True, True),
              "luffy_sdpa_attention": (s["group"] - 1, 1, False, False),
              "luffy_before_fast_path": (s["group"] - 1, 1, True, False),
              "on_policy": (s["group"], 0, False, True)}
    for v in variants:
        if v not in groups:
            raise BenchError(f"train_step: unknown variant {v!r}; expected one of {sorted(groups)}")
    order = [*variants, *(["trl", "trl_eager_attention"] if trl else [])]
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in order}
    with tempfile.TemporaryDirectory(prefix="luffy-bench-step-") as tmp:
        task, folder = _task_and_model(Path(tmp), model)
        for r in range(rounds):
            for v in order if r % 2 == 0 else order[::-1]:
                out = Path(tmp) / f"run-{v}-{r}"
                if v.startswith("trl"):
                    runs[v].append(_trl(task, folder, s, dtype, s["warmup"], s["steps"], out,
                                        attention="eager" if v == "trl_eager_attention" else None))
                else:
                    n_on, n_off, recompute, eager = groups[v]
                    prof = profile and v == "luffy" and r == 0
                    total = s["warmup"] + s["steps"] + (1 if prof else 0)
                    cfg = _config(task, folder, s, dtype, n_on, n_off, total)
                    runs[v].append(_ours(cfg, out, s["warmup"], s["steps"], recompute_old=recompute,
                                         profile=prof, eager_attention=eager))
                gc.collect()
    res = rec["results"]
    for v, rs in runs.items():
        best = min(rs, key=lambda x: x["median_step_s"])
        res[v] = {**best, "round_median_step_s": [x["median_step_s"] for x in rs],
                  "all_step_s": [x["step_s"] for x in rs]}
        if profile and v == "luffy" and "profile_top" in rs[0]:
            res[v]["profile_top"] = rs[0]["profile_top"]
    ratios = {}
    if "trl" in res:
        for v in variants:
            ratios[f"{v}_over_trl"] = round(res["trl"]["median_step_s"] / res[v]["median_step_s"], 3)
        for v in ("luffy", "on_policy"):
            if v in res:
                ratios[f"{v}_over_trl_eager_attention"] = round(
                    res["trl_eager_attention"]["median_step_s"] / res[v]["median_step_s"], 3)
    for before, key in (("luffy_recompute_old_logp", "old_logp_skip"), ("luffy_sdpa_attention", "eager_attention"),
                        ("luffy_before_fast_path", "fast_path")):
        if "luffy" in res and before in res:
            a, b = res[before], res["luffy"]
            ratios[f"{key}_step_speedup"] = round(a["median_step_s"] / b["median_step_s"], 3)
            ratios[f"{key}_update_speedup"] = round(  # update = old-log-prob pass + update phase
                (a["phases_mean_s"]["update"] + a["phases_mean_s"]["old_logp"])
                / (b["phases_mean_s"]["update"] + b["phases_mean_s"]["old_logp"]), 3)
    res["ratios"] = ratios
    return finish(rec)
