"""The mixed-policy trainer: one RL (or SFT) step, top to bottom (method §1.0; paper §3, Eq. 6).

One RL step::

    prompts  = sampler.next(prompts_per_step)                      # seeded, resumable
    members  = build_groups(prompts, n_on rollouts + n_off traces)  # luffy.rollout.groups
    rewards  = math_verify_reward(member text, answer)              # process pool, per-answer deadline
    adv      = group_advantages(rewards, group, is_off)             # luffy.algos, method §1.2
    old_logp = recompute with the current model (no grad)           # not taken from the engine; skipped
               where π_old is the update's own forward (luffy.train.batching)
    for each mini-batch (mini_batch_prompts groups) × ppo_epochs:   # luffy.train.update
        for each micro-batch: loss = pg − entropy_coef·H [+ sft_coef·SFT]; backward
        clip grad-norm, AdamW step, LR schedule step
    engine.sync_weights(model)                                      # vLLM: in memory

SFT (``method: sft``) trains the NLL of the traces for ``train.epochs`` passes.

The run's files (config, metrics, checkpoints, final model, summary) are :mod:`luffy.train.run_files`;
fault injection is :mod:`luffy.train.drills`; the optimizer is :mod:`luffy.train.optim`. The
``backend hooks`` at the end of :class:`Trainer` are what the distributed trainer
(:class:`luffy.train.distributed.DistTrainer`) re-points at its Ray worker group.

Deliberate deviations (see also :mod:`luffy.algos.loss`, :mod:`luffy.train.optim`):

* Each micro-batch loss is its share of the mini-batch's objective (:mod:`luffy.train.update`), so
  the step does not depend on ``micro_batch_seqs`` or the number of workers (method §1.3).
* Weights and optimizer state are fp32; ``model.dtype`` bf16 means bf16 autocast (method §8).
* The model of the best validation after step 0 is kept in ``best_val/`` (method §5.1).
* A non-finite loss or gradient skips the optimizer step (logged with the step's prompt ids);
  ``train.max_bad_steps`` consecutive ones stop the run, keeping the last good checkpoint.
"""

from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from ..algos import group_advantages
from ..config import RunConfig, dump_config
from ..model.load import load_model, pick_device
from ..rewards import GradingPool, batch_math_verify_reward
from ..rollout import SamplingConfig, make_engine
from ..rollout.groups import Member, build_groups, encode_prompt, encode_trace
from ..utils.files import atomic_write_text
from . import batching as B
from .drills import check_drill_env, drill
from .errors import NothingToDo, TrainingError
from .metrics import progress_bar, progress_line, rl_step_metrics
from .optim import build_optimizer
from .run_files import (
    CheckpointManager,
    MetricsLog,
    RunPaths,
    save_best_model,
    save_final_model,
    set_aside_previous,
    write_summary,
)
from .tensors import MicroBatch
from .update import Micro, UpdateResult, UpdateSpec, old_logprobs, run_update, summarize, with_totals


def _stderr_line(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class Trainer:
    #: Run the separate old-log-prob pass for every sequence (benchmarks/tests of the skip in rl_step).
    always_recompute_old_logp: bool = False

    def __init__(self, cfg: RunConfig, out: str | Path, *, resume: str = "auto", progress: bool = True,
                 log=None, stop_after: int | None = None) -> None:
        self.cfg = cfg
        self.paths = RunPaths(Path(out))
        self.metrics = MetricsLog(self.paths)
        self.resume_mode = resume
        self.progress = progress
        self.log = log or _stderr_line  # stdout stays for the CLI's JSON summary
        self.stop_after = stop_after  # simulate an interruption after this step (tests, drills)
        check_drill_env()             # a malformed drill is an error before any work
        self.engine = None
        self.pool = None

    # ============================================================================ set-up
    def setup(self) -> None:
        c = self.cfg
        self.rows, self.val_rows = B.read_run_data(c)   # bad data fails before any model is loaded
        self._start_backend()
        torch.manual_seed(c.train.seed)
        random.seed(c.train.seed)
        np.random.seed(c.train.seed)
        self.device = self._local_device()
        self.spec = UpdateSpec.from_config(c, self.device)  # compute_dtype: bf16 autocast where model.dtype says so
        self.model, self.tok = self._load_model()       # fp32 master weights, always
        if self.tok.pad_token_id is None:
            self.tok.pad_token = self.tok.eos_token
        if c.model.gradient_checkpointing:
            self.model.gradient_checkpointing_enable()
        self.rows = B.drop_long_prompts(self.rows, self.tok, c.data.max_prompt_tokens, self.log)
        self.model.train()
        self.total_steps, self.opt_steps_total = B.plan_steps(c, len(self.rows))
        self.optim, self.sched = self._make_optimizer()
        self.sampler = B.Sampler(len(self.rows), c.train.prompts_per_step, c.train.seed)
        if c.method == "rl" or self.val_rows:
            self.engine = self._make_engine()
        self.ckpt = CheckpointManager(self.paths.checkpoints, keep=c.train.keep_checkpoints)
        self.pool = GradingPool(num_workers=min(2, os.cpu_count() or 1))

    # ============================================================================ steps
    def rl_step(self, step: int) -> dict[str, Any]:
        c, times = self.cfg, {}
        torch.manual_seed(B.step_seed(c.train.seed, step))
        rows = [self.rows[i] for i in self.sampler.next()]

        t0 = time.perf_counter()                                                  # 1. rollouts + traces
        self.engine.sync_weights(self.model)
        members, gstats = build_groups(rows, self.tok, self.engine, n_on=c.group.n_on, n_off=c.group.n_off,
                                       prefix_ratio=c.group.prefix_ratio, sampling=self._sampling(step),
                                       max_response_tokens=c.data.max_response_tokens)
        times["gen"] = time.perf_counter() - t0
        drill("gen", step)

        t0 = time.perf_counter()                                                  # 2. verifiable reward
        scores, n_to, n_err = self._rewards([self._decode(m.response_ids) for m in members],
                                            [m.row.answer for m in members])
        times["reward"] = time.perf_counter() - t0
        drill("reward", step)

        rewards = torch.tensor(scores, dtype=torch.float32)                       # 3. advantages [N]
        gids = torch.tensor([m.group for m in members])
        is_off = torch.tensor([m.is_off for m in members])
        adv = group_advantages(rewards, gids, is_off, stats=c.advantage.stats, scale=c.advantage.scale,
                               eps=c.advantage.eps)

        t0 = time.perf_counter()                                                  # 4. π_old log-probs
        layout = B.layout_step(members, len(rows), c.train.mini_batch_prompts, c.train.ppo_epochs,
                               recompute_all=self.always_recompute_old_logp)
        lp_batches = B.old_logp_batches(layout, members, c.train.micro_batch_seqs)
        lps = self._old_logprobs([self._micro([members[i] for i in idx]) for idx in lp_batches]) if lp_batches else []
        old = {i: lps[k][j, : len(members[i].response_ids)] for k, idx in enumerate(lp_batches)
               for j, i in enumerate(idx)}
        times["old_logp"] = time.perf_counter() - t0

        t0 = time.perf_counter()                                                  # 5. the update
        plan = B.build_plan(layout, members, adv, old, c.train.micro_batch_seqs, self._micro)
        upd = self._update(plan * c.train.ppo_epochs, step)
        times["update"] = time.perf_counter() - t0

        met = rl_step_metrics(members, len(rows), rewards, gids, is_off, adv, gstats.truncated_traces, n_to, n_err)
        met["optim/lr"] = upd.lr
        gen_tokens = sum(len(m.response_ids) - sum(m.off_mask) for m in members)
        met["tokens_per_s/gen"] = gen_tokens / max(times["gen"], 1e-9)
        met.update(summarize(upd))
        met.update({f"time/{k}": v for k, v in times.items()})
        met["bad_step"] = upd.bad
        met["batch_ids"] = [r.id for r in rows] if upd.bad else None
        return met

    def sft_step(self, step: int) -> dict[str, Any]:
        c = self.cfg
        torch.manual_seed(B.step_seed(c.train.seed, step))
        rows = [self.rows[i] for i in self.sampler.next()]
        t0 = time.perf_counter()
        seqs, trunc = [], 0
        for r in rows:
            ptext, pids = encode_prompt(self.tok, r)
            ids, t = encode_trace(self.tok, ptext, r.traces[0].text, c.data.max_response_tokens)
            trunc += int(t)
            seqs.append(Member(0, r, pids, ids, [True] * len(ids), "stop", 0))
        micros = [Micro(self._micro([seqs[i] for i in idx]))
                  for idx in B.chunks(list(range(len(seqs))), c.train.micro_batch_seqs)]
        upd = self._update([with_totals(micros)], step)
        met = summarize(upd, ("all",))
        return {"actor/sft_loss": met.get("actor/sft_loss", float("nan")),
                "entropy/all": met["entropy/all"], "entropy/off": met["entropy/all"],
                "optim/lr": upd.lr, "optim/grad_norm": met["optim/grad_norm"],
                "data/truncated_traces": trunc, "time/update": time.perf_counter() - t0,
                "bad_step": upd.bad, "batch_ids": [r.id for r in rows] if upd.bad else None}

    def validate(self, step: int) -> dict[str, float]:
        """Accuracy of one sample per held-out prompt at ``train.val_temperature`` (method §5.1)."""
        if not self.val_rows or self.engine is None:
            return {}
        t0 = time.perf_counter()
        self.engine.sync_weights(self.model)
        prompts = [encode_prompt(self.tok, r)[1] for r in self.val_rows]
        outs = self.engine.generate(prompts, 1, self._sampling(10**6 + step, self.cfg.train.val_temperature))
        scores, _, _ = self._rewards([self._decode(o[0].response_ids) for o in outs],
                                     [r.answer for r in self.val_rows])
        return {"val/accuracy": float(np.mean(scores)), "val/n": len(scores),
                "val/response_length": float(np.mean([len(o[0].response_ids) for o in outs])),
                "time/val": time.perf_counter() - t0}

    # ============================================================================ the run
    def run(self) -> dict[str, Any]:
        c = self.cfg
        start = self._begin()
        bar = progress_bar(self.total_steps, start, f"train {self.paths.out.name}") if self.progress else None
        step_times, last_val = [], None
        for step in range(start + 1, self.total_steps + 1):
            t0 = time.perf_counter()
            met = self.rl_step(step) if c.method == "rl" else self.sft_step(step)
            met["time/step"] = time.perf_counter() - t0
            step_times.append(met["time/step"])
            met["skipped_update"] = met.pop("bad_step")
            if met["skipped_update"]:
                self._bad_streak += 1
                self.log(f"step {step}: non-finite loss or gradient; update skipped "
                         f"(batch ids: {met.get('batch_ids')})")
            else:
                self._bad_streak = 0
                met.pop("batch_ids", None)
            if step == self.total_steps or (c.train.val_every and step % c.train.val_every == 0):
                met.update(self.validate(step))
                self._keep_if_best(step, met.get("val/accuracy"))
            self.metrics.append({"step": step, **met})
            drill("metrics", step)
            if "val/accuracy" in met:
                last_val = (step, met["val/accuracy"])
            if bar is None and c.train.log_every and (step % c.train.log_every == 0 or step == self.total_steps):
                self.log(progress_line(step, self.total_steps, met, last_val, step_times))
            if self._bad_streak >= c.train.max_bad_steps:
                raise TrainingError(f"{self._bad_streak} consecutive non-finite steps at step {step}; stopping "
                                    f"(last good checkpoint kept in {self.paths.checkpoints})")
            if bar is not None:
                bar.update(1)
                bar.set_postfix({k.split("/")[-1]: round(met[k], 3) for k in ("reward/mean", "actor/sft_loss")
                                 if k in met})
            if (c.train.save_every and step % c.train.save_every == 0) or step == self.total_steps:
                self._checkpoint(step, self._bad_streak)
            if self.stop_after is not None and self.stop_after <= step < self.total_steps:
                if bar is not None:
                    bar.close()
                self.log(f"stopping after step {step} as requested (resume with --resume auto)")
                return {"stopped_at": step}
        if bar is not None:
            bar.close()
        return self._finish()

    def _begin(self) -> int:
        """Write the resolved config, set up, resume; return the last step already done (0 if none)."""
        if self.paths.summary.exists():
            raise NothingToDo(f"{self.paths.out}: run already finished (summary.json exists)")
        self.paths.out.mkdir(parents=True, exist_ok=True)
        resolved = yaml.safe_dump(dump_config(self.cfg), sort_keys=False)
        self.setup()  # bad data or a bad model fail here, before an earlier run is moved aside
        if self.resume_mode == "auto" and (why := set_aside_previous(self.paths, resolved)):
            self.log(f"{self.paths.out}: the earlier run there ({why}) was moved to "
                     f"{self.paths.previous}/; training from step 0")
        atomic_write_text(self.paths.config, resolved)
        self._bad_streak, self._best = 0, None
        start = self._resume()
        self.metrics.open_tensorboard(start)
        self.metrics.open_wandb(self.cfg.train.wandb, self.cfg.train.wandb_project, dump_config(self.cfg))
        if start == 0 and (v0 := self.validate(0)):
            self.metrics.append({"step": 0, **v0})
        return start

    def _keep_if_best(self, step: int, score: float | None) -> None:
        """Save ``best_val/`` when this validation beats every earlier one after step 0."""
        if score is None or (self._best is not None and score <= self._best[1]):
            return
        self._best = [step, score]
        save_best_model(self._model_writer(), self.tok, self.paths, step, score)

    def _resume(self) -> int:
        """Restore the newest complete checkpoint (``--resume auto``); return its step (0 for none)."""
        latest = self.ckpt.latest() if self.resume_mode == "auto" else None
        if self.resume_mode == "never" and self.ckpt.latest():
            raise TrainingError(f"{self.paths.out}: checkpoints exist; use --resume auto or a new --out")
        if latest is None:
            self.metrics.reset()
            return 0
        step, path = latest
        ck = self._restore(path)
        B.set_rng_state(ck["rng"])
        self.sampler.load(ck["state"]["sampler"])
        self._bad_streak = ck["state"]["bad_streak"]
        self._best = ck["state"].get("best_val")
        self.metrics.truncate(step)
        self.log(f"resume: continuing from {path} (step {step} of {self.total_steps})")
        return step

    def _finish(self) -> dict[str, Any]:
        save_final_model(self._model_writer(), self.tok, self.paths.model)
        if self._best is None:  # no validation data: the best-validation model is the final one
            save_best_model(self._model_writer(), self.tok, self.paths, self.total_steps, None)
        drill("finish", self.total_steps)
        recs = self.metrics.read()
        vals = [r["val/accuracy"] for r in recs if "val/accuracy" in r]
        times = [r["time/step"] for r in recs if "time/step" in r]
        summary = {
            "method": self.cfg.method, "steps": self.total_steps, "engine": self.cfg.rollout.engine,
            "val_accuracy_start": vals[0] if vals else None,
            "val_accuracy_final": vals[-1] if vals else None,
            "best_val_step": self._best[0] if self._best else None,
            "best_val_accuracy": self._best[1] if self._best else None,
            "seconds_per_step_mean": float(np.mean(times)) if times else None,
            "model": str(self.paths.model),
            "best_val_model": str(self.paths.best_model),
        }
        write_summary(self.paths, summary)
        self.close()
        return summary

    def close(self) -> None:
        for obj in (self.engine, self.pool):
            try:
                if obj is not None:
                    obj.close()
            except Exception as e:  # noqa: BLE001 - closing must not mask the run's own outcome
                self.log(f"close: {type(obj).__name__}: {e}")
        self.metrics.close()

    # ============================================================================ small helpers
    def _sampling(self, step: int, temperature: float | None = None) -> SamplingConfig:
        c = self.cfg
        return SamplingConfig(temperature=c.rollout.temperature if temperature is None else temperature,
                              top_p=c.rollout.top_p, max_new_tokens=c.data.max_response_tokens,
                              seed=B.step_seed(c.train.seed, step))

    def _decode(self, ids: list[int]) -> str:
        return self.tok.decode(ids, skip_special_tokens=False)

    def _rewards(self, texts: list[str], answers: list[str]) -> tuple[list[float], int, int]:
        res = batch_math_verify_reward(texts, answers, pool=self.pool)
        return list(res.scores), res.n_timeouts, res.n_errors

    def _micro(self, seqs: list[Member]) -> MicroBatch:
        return B.collate_members(seqs, self.tok.pad_token_id)

    # ============================================================================ backend hooks
    # Where the distributed trainer (luffy.train.distributed.DistTrainer) differs: it runs these on a
    # Ray worker group; everything above is shared.
    def _start_backend(self) -> None:
        """Called after the data files are read, before any model is loaded (nothing to start here)."""

    def _make_optimizer(self):
        return build_optimizer(self.model, self.cfg, self.opt_steps_total)

    def _load_model(self):
        """(model, tokenizer) of ``model.path``: float32 on this process's device."""
        return load_model(self.cfg.model.path, dtype="float32", device=self.device)

    def _local_device(self) -> str:
        """Where this process trains: ``resources.device`` (auto = CUDA when torch sees a GPU, else CPU)."""
        return pick_device(self.cfg.resources.device)

    def _make_engine(self):
        """The rollout engine (after the model and optimizer exist)."""
        c, r = self.cfg, self.cfg.rollout
        return make_engine(r.engine, model=self.model, model_path=c.model.path, tokenizer=self.tok,
                           max_batch_size=r.max_batch_size, decode=r.hf_decode, autocast_dtype=self.spec.compute_dtype,
                           enforce_eager=r.vllm_enforce_eager, gpu_memory_utilization=r.vllm_gpu_memory_utilization,
                           tensor_parallel_size=r.vllm_tensor_parallel_size,
                           max_model_len=c.data.max_prompt_tokens + c.data.max_response_tokens)

    def _model_writer(self):
        """What ``save_final_model`` saves: the model (``save_pretrained``) or a function writing a folder."""
        return self.model

    def _old_logprobs(self, batches: list[MicroBatch]) -> list[torch.Tensor]:
        """logp float[m, R] of each batch under the current weights."""
        batches = [b.to(self.device) for b in batches]
        lps = old_logprobs(self.model, batches, self.cfg.rollout.temperature, compute_dtype=self.spec.compute_dtype)
        return [lps[j].cpu() for j in range(len(batches))]

    def _update(self, plan: list[list[Micro]], step: int) -> UpdateResult:
        if self.device != "cpu":
            plan = [[mu.to(self.device) for mu in micros] for micros in plan]
        return run_update(self.model, self.optim, self.sched, plan, self.spec,
                          after_backward=lambda: drill("update", step))

    def _state(self, step: int, bad_streak: int) -> dict[str, Any]:
        """The driver's part of a checkpoint."""
        return {"step": step, "sampler": self.sampler.state(), "bad_streak": bad_streak, "best_val": self._best,
                "rng": B.rng_state()}

    def _checkpoint(self, step: int, bad_streak: int) -> None:
        state = self._state(step, bad_streak)
        self.ckpt.save(step, self.model, self.optim, self.sched, state, midway=lambda: drill("checkpoint", step))

    def _restore(self, path: Path) -> dict[str, Any]:
        """Load a checkpoint's model/optimizer/scheduler; return its ``rng`` and ``state``."""
        ck = CheckpointManager.load(path)
        self.model.load_state_dict(ck["model"])
        self.optim.load_state_dict(ck["optim"])
        self.sched.load_state_dict(ck["sched"])
        return ck
