"""The single-machine mixed-policy trainer (spec §1.0 step order; paper §3).

One RL step::

    prompts  = sampler.next(prompts_per_step)                      # seeded, resumable
    members  = build_groups(prompts, n_on rollouts + n_off traces)  # luffy.rollout.groups
    rewards  = math_verify_reward(member text, answer)              # process pool, per-answer deadline
    adv      = group_advantages(rewards, group, is_off)             # luffy.algos, spec §1.2
    old_logp = recompute with the current model (no grad)           # not taken from the engine
    for each mini-batch (mini_batch_prompts groups) × ppo_epochs:
        for each micro-batch: loss = pg − entropy_coef·H [+ sft_coef·SFT]; backward
        clip grad-norm, AdamW step, LR schedule step
    engine.sync_weights(model)                                      # vLLM: in memory

SFT (``method: sft``) trains the NLL of the traces for ``train.epochs`` passes.

Deliberate deviations (see also luffy.algos.loss):

* The LR is not 0 on the first optimizer step (the reference's constant-with-warmup schedule gives
  λ(0) = 0, spec §1.8 #1); warmup is linear from 1/warmup_steps.
* Micro-batch losses are averaged (weighted by sequence count) — the reference averages over
  data-parallel ranks with one micro-batch each; here a micro-batch plays the role of a rank.
* The scheduler steps once per optimizer step (the reference: once per training step; identical
  for the constant RL schedule).
* A non-finite loss or gradient skips the optimizer step (logged with the step's prompt ids);
  ``train.max_bad_steps`` consecutive ones stop the run, keeping the last good checkpoint.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from ..algos import entropy_bonus, group_advantages, policy_loss, sft_loss
from ..config import RunConfig, dump_config
from ..data.loaders import load_rows
from ..data.schema import DataFormatError, TrainRow
from ..rollout.groups import Member, build_groups, check_rows_have_traces, encode_prompt, encode_trace
from .checkpoint import CheckpointManager, atomic_write_text
from .tensors import collate, token_logprobs


class TrainingError(RuntimeError):
    """The run cannot continue (the message says why); checkpoints written so far are kept."""


class NothingToDo(RuntimeError):
    """``--resume`` found a run that is already finished."""


# ------------------------------------------------------------------------------------------------
# data order


class Sampler:
    """Seeded epoch permutations with a resumable position (drop_last, like the reference)."""

    def __init__(self, n: int, batch: int, seed: int) -> None:
        if n < batch:
            raise TrainingError(f"training data has {n} usable rows, fewer than one batch of {batch}")
        self.n, self.batch, self.seed = n, batch, seed
        self.epoch, self.pos = 0, 0

    def _perm(self) -> list[int]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return torch.randperm(self.n, generator=g).tolist()

    def next(self) -> list[int]:
        if self.pos + self.batch > self.n:
            self.epoch, self.pos = self.epoch + 1, 0
        idx = self._perm()[self.pos: self.pos + self.batch]
        self.pos += self.batch
        return idx

    def state(self) -> dict:
        return {"epoch": self.epoch, "pos": self.pos}

    def load(self, s: dict) -> None:
        self.epoch, self.pos = int(s["epoch"]), int(s["pos"])


def lr_lambda(schedule: str, warmup: int, total: int):
    def f(s: int) -> float:
        if warmup > 0 and s < warmup:
            return (s + 1) / warmup
        if schedule == "constant":
            return 1.0
        frac = (s - warmup) / max(1, total - warmup)
        if schedule == "linear":
            return max(0.0, 1.0 - frac)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, frac)))
    return f


def _rng_state() -> dict:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def _set_rng_state(s: dict) -> None:
    random.setstate(s["python"])
    np.random.set_state(s["numpy"])
    torch.set_rng_state(s["torch"])


def _seed_step(seed: int, step: int) -> int:
    return (seed * 1_000_003 + step * 7919) % (2**31 - 1)


# ------------------------------------------------------------------------------------------------


@dataclass
class RunPaths:
    out: Path

    @property
    def metrics(self) -> Path:
        return self.out / "metrics.jsonl"

    @property
    def checkpoints(self) -> Path:
        return self.out / "checkpoints"

    @property
    def model(self) -> Path:
        return self.out / "model"

    @property
    def summary(self) -> Path:
        return self.out / "summary.json"

    @property
    def config(self) -> Path:
        return self.out / "resolved_config.yaml"


class Trainer:
    def __init__(self, cfg: RunConfig, out: str | Path, *, resume: str = "auto", progress: bool = True,
                 log=print, stop_after: int | None = None) -> None:
        self.cfg = cfg
        self.paths = RunPaths(Path(out))
        self.resume_mode = resume
        self.progress = progress
        self.log = log
        self.stop_after = stop_after  # simulate an interruption after this step (tests, drills)
        self._tb = None
        self.engine = None
        self.pool = None

    # -------------------------------------------------------------------------------- set-up
    def _read_data(self) -> None:
        """Read and check the data files before any model is loaded (bad data fails fast)."""
        c = self.cfg
        self._raw_rows = load_rows(c.data.train)
        if c.method == "sft" or c.group.n_off > 0:
            check_rows_have_traces(self._raw_rows, max(1, c.group.n_off), c.data.train)
        self.val_rows: list[TrainRow] = load_rows(c.data.val) if c.data.val else []
        if c.data.val_limit is not None:
            self.val_rows = self.val_rows[: c.data.val_limit]

    def _load_data(self) -> None:
        c = self.cfg
        rows = self._raw_rows
        kept = []
        for r in rows:
            _, ids = encode_prompt(self.tok, r)
            if len(ids) <= c.data.max_prompt_tokens:
                kept.append(r)
        if len(kept) < len(rows):
            self.log(f"data: dropped {len(rows) - len(kept)} of {len(rows)} rows with prompts over "
                     f"{c.data.max_prompt_tokens} tokens")
        self.rows = kept

    def setup(self) -> None:
        from ..model.load import load_model
        from ..rollout import SamplingConfig, make_engine

        c = self.cfg
        self._read_data()
        torch.manual_seed(c.train.seed)
        random.seed(c.train.seed)
        np.random.seed(c.train.seed)
        self.model, self.tok = load_model(c.model.path, dtype=c.model.dtype)
        if self.tok.pad_token_id is None:
            self.tok.pad_token = self.tok.eos_token
        if c.model.gradient_checkpointing:
            self.model.gradient_checkpointing_enable()
        self._load_data()
        self.model.train()
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optim = torch.optim.AdamW(params, lr=c.optim.lr, betas=c.optim.betas,
                                       weight_decay=c.optim.weight_decay)
        self.total_steps, self.opt_steps_total = self._plan()
        warm = int(round(c.optim.warmup_ratio * self.opt_steps_total))
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.optim, lr_lambda(c.optim.schedule, warm, self.opt_steps_total))
        self.sampler = Sampler(len(self.rows), c.train.prompts_per_step, c.train.seed)
        self.SamplingConfig = SamplingConfig
        self.engine = None
        if c.method == "rl" or self.val_rows:
            self.engine = make_engine(c.rollout.engine, model=self.model, model_path=c.model.path,
                                      tokenizer=self.tok, max_batch_size=c.rollout.max_batch_size,
                                      enforce_eager=c.rollout.vllm_enforce_eager,
                                      gpu_memory_utilization=c.rollout.vllm_gpu_memory_utilization,
                                      tensor_parallel_size=c.rollout.vllm_tensor_parallel_size,
                                      max_model_len=c.data.max_prompt_tokens + c.data.max_response_tokens)
        self.ckpt = CheckpointManager(self.paths.checkpoints, keep=c.train.keep_checkpoints)
        from ..rewards import GradingPool
        self.pool = GradingPool(num_workers=min(2, os.cpu_count() or 1))

    def _plan(self) -> tuple[int, int]:
        c = self.cfg
        if c.method == "sft":
            per_epoch = len(self.rows) // c.train.prompts_per_step
            if per_epoch == 0:
                raise TrainingError(f"{c.data.train}: {len(self.rows)} rows < one batch of "
                                    f"{c.train.prompts_per_step}")
            steps = per_epoch * c.train.epochs
            return steps, steps
        per_step = (c.train.prompts_per_step // c.train.mini_batch_prompts) * c.train.ppo_epochs
        return c.train.steps, c.train.steps * per_step

    # -------------------------------------------------------------------------------- helpers
    def _sampling(self, step: int, temperature: float | None = None):
        c = self.cfg
        return self.SamplingConfig(temperature=c.rollout.temperature if temperature is None else temperature,
                                   top_p=c.rollout.top_p, max_new_tokens=c.data.max_response_tokens,
                                   seed=_seed_step(c.train.seed, step))

    def _decode(self, ids: list[int]) -> str:
        return self.tok.decode(ids, skip_special_tokens=False)

    def _rewards(self, texts: list[str], answers: list[str]) -> tuple[list[float], int, int]:
        from ..rewards import batch_math_verify_reward
        res = batch_math_verify_reward(texts, answers, pool=self.pool)
        return list(res.scores), res.n_timeouts, res.n_errors

    def _micro(self, seqs: list[Member]):
        return collate([m.prompt_ids for m in seqs], [m.response_ids for m in seqs],
                       [m.off_mask for m in seqs], self.tok.pad_token_id)

    def _chunks(self, items: list, size: int) -> list[list]:
        return [items[i: i + size] for i in range(0, len(items), size)]

    # -------------------------------------------------------------------------------- validation
    def validate(self, step: int) -> dict[str, float]:
        if not self.val_rows or self.engine is None:
            return {}
        t0 = time.perf_counter()
        self.engine.sync_weights(self.model)
        prompts = [encode_prompt(self.tok, r)[1] for r in self.val_rows]
        sp = self._sampling(10**6 + step, temperature=self.cfg.train.val_temperature)
        outs = self.engine.generate(prompts, 1, sp)
        texts = [self._decode(o[0].response_ids) for o in outs]
        scores, _, _ = self._rewards(texts, [r.answer for r in self.val_rows])
        return {"val/accuracy": float(np.mean(scores)), "val/n": len(scores),
                "val/response_length": float(np.mean([len(o[0].response_ids) for o in outs])),
                "time/val": time.perf_counter() - t0}

    # -------------------------------------------------------------------------------- RL step
    def rl_step(self, step: int) -> dict[str, Any]:
        c = self.cfg
        torch.manual_seed(_seed_step(c.train.seed, step))
        rows = [self.rows[i] for i in self.sampler.next()]
        times: dict[str, float] = {}
        t0 = time.perf_counter()
        self.engine.sync_weights(self.model)
        members, gstats = build_groups(rows, self.tok, self.engine, n_on=c.group.n_on, n_off=c.group.n_off,
                                       prefix_ratio=c.group.prefix_ratio, sampling=self._sampling(step),
                                       max_response_tokens=c.data.max_response_tokens)
        times["gen"] = time.perf_counter() - t0
        gen_tokens = sum(len(m.response_ids) - sum(m.off_mask) for m in members)

        t0 = time.perf_counter()
        texts = [self._decode(m.response_ids) for m in members]
        scores, n_to, n_err = self._rewards(texts, [m.row.answer for m in members])
        times["reward"] = time.perf_counter() - t0

        rewards = torch.tensor(scores, dtype=torch.float32)
        gids = torch.tensor([m.group for m in members])
        is_off = torch.tensor([m.is_off for m in members])
        adv = group_advantages(rewards, gids, is_off, stats=c.advantage.stats, scale=c.advantage.scale,
                               eps=c.advantage.eps)

        # old log-probs, recomputed by the trainer model (spec §1.0 step 6)
        t0 = time.perf_counter()
        groups = self._chunks(list(range(len(rows))), c.train.mini_batch_prompts)
        order = {g: [i for i, m in enumerate(members) if m.group == g] for g in range(len(rows))}
        old: dict[int, torch.Tensor] = {}
        self.model.eval()
        with torch.no_grad():
            for idx in self._chunks(list(range(len(members))), c.train.micro_batch_seqs):
                mb = self._micro([members[i] for i in idx])
                lp, _ = token_logprobs(self.model, mb, temperature=c.rollout.temperature, with_entropy=False)
                for j, i in enumerate(idx):
                    old[i] = lp[j, : len(members[i].response_ids)]
        self.model.train()
        times["old_logp"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        loss_cfg = c.loss_config()
        agg: dict[str, list[float]] = {}
        ent_sum = {"all": [0.0, 0.0], "on": [0.0, 0.0], "off": [0.0, 0.0]}
        grad_norms, bad = [], False
        for _ in range(c.train.ppo_epochs):
            for gchunk in groups:
                seq_idx = [i for g in gchunk for i in order[g]]
                micro = self._chunks(seq_idx, c.train.micro_batch_seqs)
                self.optim.zero_grad(set_to_none=True)
                for idx in micro:
                    mb = self._micro([members[i] for i in idx])
                    logp, ent = token_logprobs(self.model, mb, temperature=c.rollout.temperature)
                    old_lp = torch.zeros_like(logp)
                    for j, i in enumerate(idx):
                        old_lp[j, : old[i].shape[0]] = old[i]
                    a = adv[idx]
                    if c.off_policy_objective == "policy":
                        pg, m = policy_loss(logp, old_lp, a, mb.resp_mask, mb.off_mask, loss_cfg)
                        extra = torch.zeros(())
                    else:  # RL w/ SFT loss: pg on on-policy sequences, NLL on off-policy sequences
                        seq_off = torch.tensor([members[i].is_off for i in idx])[:, None]
                        on_rows = mb.resp_mask & ~seq_off
                        pg, m = policy_loss(logp, old_lp, a, on_rows, torch.zeros_like(on_rows), loss_cfg)
                        extra = c.sft_coef * sft_loss(logp, mb.resp_mask & seq_off)
                        m["sft_loss"] = extra.detach()
                    h = entropy_bonus(ent, mb.resp_mask)
                    loss = pg - c.entropy_coef * h + extra
                    w = len(idx) / len(seq_idx)
                    if not torch.isfinite(loss):
                        bad = True
                        break
                    (loss * w).backward()
                    for k, v in m.items():
                        agg.setdefault(k, []).append(float(v))
                    with torch.no_grad():
                        e = ent.detach()
                        for key, msk in (("all", mb.resp_mask), ("on", mb.resp_mask & ~mb.off_mask),
                                         ("off", mb.resp_mask & mb.off_mask)):
                            ent_sum[key][0] += float((e * msk).sum())
                            ent_sum[key][1] += float(msk.sum())
                if bad:
                    break
                gn = torch.nn.utils.clip_grad_norm_(self.model.parameters(), c.optim.grad_clip)
                if not torch.isfinite(gn):
                    bad = True
                    break
                grad_norms.append(float(gn))
                self.optim.step()
                self.sched.step()
            if bad:
                break
        self.optim.zero_grad(set_to_none=True)
        times["update"] = time.perf_counter() - t0

        on = ~is_off
        grp_r = [rewards[gids == g] for g in range(len(rows))]
        resp_len = torch.tensor([len(m.response_ids) for m in members], dtype=torch.float32)
        met: dict[str, Any] = {
            "reward/mean": float(rewards.mean()),
            "reward/on": float(rewards[on].mean()) if on.any() else float("nan"),
            "reward/off": float(rewards[is_off].mean()) if is_off.any() else float("nan"),
            "groups/solve_all": sum(int(r.min() == 1) for r in grp_r),
            "groups/solve_none": sum(int(r.max() == 0) for r in grp_r),
            "adv/mean": float(adv.mean()), "adv/max": float(adv.max()), "adv/min": float(adv.min()),
            "length/on": float(resp_len[on].mean()) if on.any() else float("nan"),
            "length/off": float(resp_len[is_off].mean()) if is_off.any() else float("nan"),
            "length/clip_ratio": float(np.mean([m.finish_reason == "length" for m in members])),
            "reward/timeouts": n_to, "reward/errors": n_err,
            "data/truncated_traces": gstats.truncated_traces,
            "optim/lr": self.sched.get_last_lr()[0],
            "optim/grad_norm": float(np.mean(grad_norms)) if grad_norms else float("nan"),
            "tokens_per_s/gen": gen_tokens / max(times["gen"], 1e-9),
        }
        for k, v in agg.items():
            met[f"actor/{k}"] = float(np.mean(v))
        for k, (s, n) in ent_sum.items():
            met[f"entropy/{k}"] = s / n if n else float("nan")
        met.update({f"time/{k}": v for k, v in times.items()})
        met["bad_step"] = bad
        met["batch_ids"] = [r.id for r in rows] if bad else None
        return met

    # -------------------------------------------------------------------------------- SFT step
    def sft_step(self, step: int) -> dict[str, Any]:
        c = self.cfg
        torch.manual_seed(_seed_step(c.train.seed, step))
        rows = [self.rows[i] for i in self.sampler.next()]
        t0 = time.perf_counter()
        seqs = []
        trunc = 0
        for r in rows:
            ptext, pids = encode_prompt(self.tok, r)
            ids, t = encode_trace(self.tok, ptext, r.traces[0].text, c.data.max_response_tokens)
            trunc += int(t)
            seqs.append(Member(0, r, pids, ids, [True] * len(ids), "stop", 0))
        self.optim.zero_grad(set_to_none=True)
        losses, bad = [], False
        ent_s, ent_n = 0.0, 0.0
        for idx in self._chunks(list(range(len(seqs))), c.train.micro_batch_seqs):
            mb = self._micro([seqs[i] for i in idx])
            logp, ent = token_logprobs(self.model, mb)
            loss = sft_loss(logp, mb.resp_mask)
            if not torch.isfinite(loss):
                bad = True
                break
            (loss * len(idx) / len(seqs)).backward()
            losses.append(float(loss))
            ent_s += float((ent.detach() * mb.resp_mask).sum())
            ent_n += float(mb.resp_mask.sum())
        gn = torch.nn.utils.clip_grad_norm_(self.model.parameters(), c.optim.grad_clip) if not bad else None
        if gn is not None and not torch.isfinite(gn):
            bad = True
        if not bad:
            self.optim.step()
            self.sched.step()
        self.optim.zero_grad(set_to_none=True)
        return {"actor/sft_loss": float(np.mean(losses)) if losses else float("nan"),
                "entropy/all": ent_s / max(ent_n, 1), "entropy/off": ent_s / max(ent_n, 1),
                "optim/lr": self.sched.get_last_lr()[0],
                "optim/grad_norm": float(gn) if gn is not None else float("nan"),
                "data/truncated_traces": trunc, "time/update": time.perf_counter() - t0,
                "bad_step": bad, "batch_ids": [r.id for r in rows] if bad else None}

    # -------------------------------------------------------------------------------- loop
    def _write_metrics(self, rec: dict) -> None:
        with open(self.paths.metrics, "a", encoding="utf-8") as f:
            f.write(json.dumps(rec) + "\n")
            f.flush()
            os.fsync(f.fileno())
        if self._tb is not None:
            for k, v in rec.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                    self._tb.add_scalar(k, v, rec["step"])

    def _truncate_metrics(self, upto: int) -> None:
        if not self.paths.metrics.exists():
            return
        keep = [ln for ln in self.paths.metrics.read_text().splitlines()
                if ln.strip() and json.loads(ln)["step"] <= upto]
        atomic_write_text(self.paths.metrics, "".join(ln + "\n" for ln in keep))

    def _checkpoint(self, step: int, bad_streak: int) -> None:
        state = {"step": step, "sampler": self.sampler.state(), "bad_streak": bad_streak,
                 "rng": _rng_state()}
        self.ckpt.save(step, self.model, self.optim, self.sched, state)

    def ckpt_exists(self) -> bool:
        return CheckpointManager(self.paths.checkpoints).latest() is not None

    def _resume(self) -> int:
        """Return the first step to run (0 for a fresh run)."""
        if self.paths.summary.exists():
            raise NothingToDo(f"{self.paths.out}: run already finished (summary.json exists)")
        latest = self.ckpt.latest() if self.resume_mode == "auto" else None
        if self.resume_mode == "never" and self.ckpt.latest():
            raise TrainingError(f"{self.paths.out}: checkpoints exist; use --resume auto or a new --out")
        if latest is None:
            if self.paths.metrics.exists():
                self.paths.metrics.unlink()
            return 0
        step, path = latest
        ck = CheckpointManager.load(path)
        self.model.load_state_dict(ck["model"])
        self.optim.load_state_dict(ck["optim"])
        self.sched.load_state_dict(ck["sched"])
        _set_rng_state(ck["rng"])
        self.sampler.load(ck["state"]["sampler"])
        self._bad_streak = ck["state"]["bad_streak"]
        self._truncate_metrics(step)
        self.log(f"resume: continuing from {path} (step {step} of {self.total_steps})")
        return step

    def run(self) -> dict[str, Any]:
        c = self.cfg
        if self.paths.summary.exists():
            raise NothingToDo(f"{self.paths.out}: run already finished (summary.json exists)")
        self.paths.out.mkdir(parents=True, exist_ok=True)
        resolved = yaml.safe_dump(dump_config(c), sort_keys=False)
        if self.resume_mode == "auto" and self.paths.config.exists() and self.ckpt_exists():
            if yaml.safe_load(self.paths.config.read_text()) != yaml.safe_load(resolved):
                raise TrainingError(f"{self.paths.out}: the config differs from the one its checkpoints were "
                                    f"written with ({self.paths.config}); use a new --out or delete the folder")
        atomic_write_text(self.paths.config, resolved)
        self.setup()
        self._bad_streak = 0
        start = self._resume()
        try:
            from torch.utils.tensorboard import SummaryWriter
            self._tb = SummaryWriter(str(self.paths.out / "tb"))
        except Exception:  # tensorboard is optional
            self._tb = None
        if start == 0:
            v0 = self.validate(0)
            if v0:
                self._write_metrics({"step": 0, **v0})
        bar = None
        if self.progress:
            from tqdm import tqdm
            bar = tqdm(total=self.total_steps, initial=start, desc=f"train {self.paths.out.name}",
                       unit="step", dynamic_ncols=True)
        step_times = []
        for step in range(start + 1, self.total_steps + 1):
            t0 = time.perf_counter()
            met = self.rl_step(step) if c.method == "rl" else self.sft_step(step)
            met["time/step"] = time.perf_counter() - t0
            step_times.append(met["time/step"])
            if met.pop("bad_step"):
                self._bad_streak += 1
                self.log(f"step {step}: non-finite loss or gradient; update skipped "
                         f"(batch ids: {met.get('batch_ids')})")
                if self._bad_streak >= c.train.max_bad_steps:
                    raise TrainingError(f"{self._bad_streak} consecutive non-finite steps at step {step}; "
                                        f"stopping (last good checkpoint kept in {self.paths.checkpoints})")
            else:
                self._bad_streak = 0
            met.pop("batch_ids", None)
            if c.train.val_every and step % c.train.val_every == 0 and step != self.total_steps:
                met.update(self.validate(step))
            if step == self.total_steps:
                met.update(self.validate(step))
            self._write_metrics({"step": step, **met})
            if bar is not None:
                bar.update(1)
                bar.set_postfix({k.split("/")[-1]: round(met[k], 3) for k in ("reward/mean", "actor/sft_loss")
                                 if k in met})
            if (c.train.save_every and step % c.train.save_every == 0) or step == self.total_steps:
                self._checkpoint(step, self._bad_streak)
            if self.stop_after is not None and step >= self.stop_after and step < self.total_steps:
                if bar is not None:
                    bar.close()
                self.log(f"stopping after step {step} as requested (resume with --resume auto)")
                return {"stopped_at": step}
        if bar is not None:
            bar.close()
        return self._finish(step_times)

    def _finish(self, step_times: list[float]) -> dict[str, Any]:
        tmp = self.paths.out / ".model.tmp"
        if tmp.exists():
            shutil.rmtree(tmp)
        self.model.save_pretrained(tmp)
        self.tok.save_pretrained(tmp)
        if self.paths.model.exists():
            shutil.rmtree(self.paths.model)
        os.replace(tmp, self.paths.model)
        recs = [json.loads(ln) for ln in self.paths.metrics.read_text().splitlines() if ln.strip()]
        vals = [(r["step"], r["val/accuracy"]) for r in recs if "val/accuracy" in r]
        times = [r["time/step"] for r in recs if "time/step" in r]
        summary = {
            "method": self.cfg.method, "steps": self.total_steps,
            "engine": self.cfg.rollout.engine,
            "val_accuracy_start": vals[0][1] if vals else None,
            "val_accuracy_final": vals[-1][1] if vals else None,
            "seconds_per_step_mean": float(np.mean(times)) if times else None,
            "model": str(self.paths.model),
        }
        atomic_write_text(self.paths.summary, json.dumps(summary, indent=1))
        self.close()
        return summary

    def close(self) -> None:
        for obj in (self.engine, getattr(self, "pool", None)):
            try:
                if obj is not None:
                    obj.close()
            except Exception:
                pass
        if self._tb is not None:
            self._tb.close()


def train(cfg: RunConfig, out: str | Path, *, resume: str = "auto", progress: bool = True) -> dict[str, Any]:
    t = Trainer(cfg, out, resume=resume, progress=progress)
    try:
        return t.run()
    finally:
        t.close()
