"""The single-machine mixed-policy trainer (spec §1.0 step order; paper §3).

One RL step::

    prompts  = sampler.next(prompts_per_step)                      # seeded, resumable
    members  = build_groups(prompts, n_on rollouts + n_off traces)  # luffy.rollout.groups
    rewards  = math_verify_reward(member text, answer)              # process pool, per-answer deadline
    adv      = group_advantages(rewards, group, is_off)             # luffy.algos, spec §1.2
    old_logp = recompute with the current model (no grad)           # not taken from the engine;
               skipped for the first mini-batch when ppo_epochs = 1 (it is the current policy)
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

import functools
import json
import math
import os
import random
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from ..algos import group_advantages
from ..config import RunConfig, dump_config
from ..data.loaders import load_rows
from ..data.schema import DataFormatError, TrainRow
from ..rollout.groups import Member, build_groups, check_rows_have_traces, encode_prompt, encode_trace
from .checkpoint import CheckpointManager, atomic_write_text
from .tensors import MicroBatch, collate
from .update import Micro, UpdateResult, UpdateSpec, build_optimizer, old_logprobs, run_update, summarize


class TrainingError(RuntimeError):
    """The run cannot continue (the message says why); checkpoints written so far are kept."""


class NothingToDo(RuntimeError):
    """``--resume`` found a run that is already finished."""


# ------------------------------------------------------------------------------------------------
# preemption drills

DRILL_ENV = "LUFFY_DRILL"
DRILL_PHASES = ("gen", "reward", "update", "metrics", "checkpoint", "finish")


@functools.lru_cache(maxsize=8)
def parse_drill(spec: str | None) -> tuple[str, int, Path | None] | None:
    """Parse ``$LUFFY_DRILL`` = ``<phase>:<step>[:<marker file>]`` (None when unset or empty).

    A drill SIGKILLs the training process at that phase of that step -- a real ``kill -9``, placed
    where a preemption hurts most (mid-rollout, mid-update, between the metrics line and the
    checkpoint, inside a checkpoint write, between the final model and summary.json). With a marker
    file the kill happens once: the file is created just before, and a later run that finds it goes
    on. Used by tests/reliability and ``make reliability``.
    """
    if not spec:
        return None
    parts = spec.split(":", 2)
    if len(parts) < 2 or parts[0] not in DRILL_PHASES or not parts[1].isdigit():
        raise TrainingError(f"${DRILL_ENV}={spec!r}: expected <phase>:<step>[:<marker file>] with phase one of "
                            f"{', '.join(DRILL_PHASES)}")
    return parts[0], int(parts[1]), Path(parts[2]) if len(parts) == 3 else None


def drill(phase: str, step: int) -> None:
    """SIGKILL this process if ``$LUFFY_DRILL`` names ``phase`` and ``step`` (see :func:`parse_drill`)."""
    d = parse_drill(os.environ.get(DRILL_ENV))
    if d is None or d[0] != phase or d[1] != step:
        return
    if d[2] is not None:
        if d[2].exists():
            return
        atomic_write_text(d[2], f"{phase}:{step} pid {os.getpid()}\n")
    os.kill(os.getpid(), signal.SIGKILL)


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The records of ``metrics.jsonl``; a torn last line (a kill mid-append) is dropped.

    A malformed line anywhere else is an error naming the file and line: that is damage, not a crash.
    """
    lines = path.read_text(encoding="utf-8").splitlines()
    out = []
    for i, ln in enumerate(lines):
        if not ln.strip():
            continue
        try:
            out.append(json.loads(ln))
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                break
            raise TrainingError(f"{path}: line {i + 1} is not JSON (the file is damaged)") from None
    return out


def _rows_of(key: str, path: str) -> list[TrainRow]:
    """load_rows with the config key in the error (``data.train: <file>: line 3: ...``)."""
    try:
        return load_rows(path)
    except DataFormatError as e:
        raise DataFormatError(f"{key}: {e}") from None


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
    #: Run the separate old-log-prob pass for every sequence (benchmarks/tests of the skip in rl_step).
    always_recompute_old_logp: bool = False

    def __init__(self, cfg: RunConfig, out: str | Path, *, resume: str = "auto", progress: bool = True,
                 log=print, stop_after: int | None = None) -> None:
        self.cfg = cfg
        self.paths = RunPaths(Path(out))
        self.resume_mode = resume
        self.progress = progress
        self.log = log
        self.stop_after = stop_after  # simulate an interruption after this step (tests, drills)
        parse_drill(os.environ.get(DRILL_ENV))  # a malformed drill is an error before any work
        self._tb = None
        self.engine = None
        self.pool = None

    # -------------------------------------------------------------------------------- set-up
    def _read_data(self) -> None:
        """Read and check the data files before any model is loaded (bad data fails fast)."""
        c = self.cfg
        self._raw_rows = _rows_of("data.train", c.data.train)
        if c.method == "sft" or c.group.n_off > 0:
            check_rows_have_traces(self._raw_rows, max(1, c.group.n_off), c.data.train)
        self.val_rows: list[TrainRow] = _rows_of("data.val", c.data.val) if c.data.val else []
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
        self._start_backend()
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
        self.total_steps, self.opt_steps_total = self._plan()
        self.optim, self.sched = self._make_optimizer()
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
        drill("gen", step)
        gen_tokens = sum(len(m.response_ids) - sum(m.off_mask) for m in members)

        t0 = time.perf_counter()
        texts = [self._decode(m.response_ids) for m in members]
        scores, n_to, n_err = self._rewards(texts, [m.row.answer for m in members])
        times["reward"] = time.perf_counter() - t0
        drill("reward", step)

        rewards = torch.tensor(scores, dtype=torch.float32)
        gids = torch.tensor([m.group for m in members])
        is_off = torch.tensor([m.is_off for m in members])
        adv = group_advantages(rewards, gids, is_off, stats=c.advantage.stats, scale=c.advantage.scale,
                               eps=c.advantage.eps)

        # old log-probs, recomputed by the trainer model (spec §1.0 step 6). π_old is the policy before the
        # step's first optimizer step: with ppo_epochs 1 that is exactly the policy of the first mini-batch's
        # update forward, so its sequences skip this pass (old_logp None: the update uses its own log-probs,
        # detached; luffy.train.update.micro_loss). One mini-batch per step: no pass at all.
        t0 = time.perf_counter()
        groups = self._chunks(list(range(len(rows))), c.train.mini_batch_prompts)
        order = {g: [i for i, m in enumerate(members) if m.group == g] for g in range(len(rows))}
        reuse = ({i for g in groups[0] for i in order[g]}
                 if c.train.ppo_epochs == 1 and not self.always_recompute_old_logp else set())
        lp_chunks = self._chunks([i for i in range(len(members)) if i not in reuse], c.train.micro_batch_seqs)
        lps = self._old_logprobs([self._micro([members[i] for i in idx]) for idx in lp_chunks]) if lp_chunks else []
        old = {i: lps[k][j, : len(members[i].response_ids)] for k, idx in enumerate(lp_chunks)
               for j, i in enumerate(idx)}
        times["old_logp"] = time.perf_counter() - t0

        # the update (luffy.train.update: the same code path runs in every distributed worker)
        t0 = time.perf_counter()
        plan: list[list[Micro]] = []
        for gchunk in groups:
            seq_idx = [i for g in gchunk for i in order[g]]
            micros = []
            for idx in self._chunks(seq_idx, c.train.micro_batch_seqs):
                mb = self._micro([members[i] for i in idx])
                old_lp = None                                                     # π_old = current policy
                if not reuse.issuperset(idx):
                    old_lp = torch.zeros(mb.resp_mask.shape, dtype=torch.float32)  # [m, R]
                    for j, i in enumerate(idx):
                        old_lp[j, : old[i].shape[0]] = old[i]
                micros.append(Micro(mb, len(idx) / len(seq_idx), old_lp, adv[idx],
                                    torch.tensor([members[i].is_off for i in idx])))
            plan.append(micros)
        upd = self._update(plan * c.train.ppo_epochs, step)
        bad = upd.bad
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
            "optim/lr": upd.lr,
            "tokens_per_s/gen": gen_tokens / max(times["gen"], 1e-9),
        }
        met.update(summarize(upd))
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
        micros = [Micro(self._micro([seqs[i] for i in idx]), len(idx) / len(seqs))
                  for idx in self._chunks(list(range(len(seqs))), c.train.micro_batch_seqs)]
        upd = self._update([micros], step)
        met = summarize(upd, ("all",))
        return {"actor/sft_loss": met.get("actor/sft_loss", float("nan")),
                "entropy/all": met["entropy/all"], "entropy/off": met["entropy/all"],
                "optim/lr": upd.lr, "optim/grad_norm": met["optim/grad_norm"],
                "data/truncated_traces": trunc, "time/update": time.perf_counter() - t0,
                "bad_step": upd.bad, "batch_ids": [r.id for r in rows] if upd.bad else None}

    # -------------------------------------------------------------------------------- backend
    # The hooks below are where the distributed trainer (luffy.dist.DistTrainer) differs: it runs
    # them on a Ray worker group; everything else in this class is shared.
    def _start_backend(self) -> None:
        """Called after the data files are read, before any model is loaded (nothing to start here)."""

    def _make_optimizer(self):
        return build_optimizer(self.model, self.cfg, self.opt_steps_total)

    def _old_logprobs(self, batches: list[MicroBatch]) -> list[torch.Tensor]:
        """logp float[m, R] of each batch under the current weights."""
        lps = old_logprobs(self.model, batches, self.cfg.rollout.temperature)
        return [lps[j] for j in range(len(batches))]

    def _update(self, plan: list[list[Micro]], step: int) -> UpdateResult:
        return run_update(self.model, self.optim, self.sched, plan, UpdateSpec.from_config(self.cfg),
                          after_backward=lambda: drill("update", step))

    def _restore(self, path: Path) -> dict[str, Any]:
        """Load a checkpoint's model/optimizer/scheduler; return its ``rng`` and ``state``."""
        ck = CheckpointManager.load(path)
        self.model.load_state_dict(ck["model"])
        self.optim.load_state_dict(ck["optim"])
        self.sched.load_state_dict(ck["sched"])
        return ck

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
        keep = [r for r in read_metrics(self.paths.metrics) if r["step"] <= upto]
        atomic_write_text(self.paths.metrics, "".join(json.dumps(r) + "\n" for r in keep))

    def _checkpoint(self, step: int, bad_streak: int) -> None:
        state = {"step": step, "sampler": self.sampler.state(), "bad_streak": bad_streak,
                 "rng": _rng_state()}
        self.ckpt.save(step, self.model, self.optim, self.sched, state,
                       midway=lambda: drill("checkpoint", step))

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
        ck = self._restore(path)
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
        if (self.resume_mode == "auto" and self.paths.config.exists() and self.ckpt_exists()
                and yaml.safe_load(self.paths.config.read_text()) != yaml.safe_load(resolved)):
            raise TrainingError(f"{self.paths.out}: the config differs from the one its checkpoints were "
                                f"written with ({self.paths.config}); use a new --out or delete the folder")
        atomic_write_text(self.paths.config, resolved)
        self.setup()
        self._bad_streak = 0
        start = self._resume()
        try:
            from torch.utils.tensorboard import SummaryWriter
            self._tb = SummaryWriter(str(self.paths.out / "tb"))
        except ImportError:  # tensorboard is optional
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
            met["skipped_update"] = met.pop("bad_step")
            if met["skipped_update"]:
                self._bad_streak += 1
                self.log(f"step {step}: non-finite loss or gradient; update skipped "
                         f"(batch ids: {met.get('batch_ids')})")
            else:
                self._bad_streak = 0
                met.pop("batch_ids", None)
            if c.train.val_every and step % c.train.val_every == 0 and step != self.total_steps:
                met.update(self.validate(step))
            if step == self.total_steps:
                met.update(self.validate(step))
            self._write_metrics({"step": step, **met})
            drill("metrics", step)
            if self._bad_streak >= c.train.max_bad_steps:
                raise TrainingError(f"{self._bad_streak} consecutive non-finite steps at step {step}; stopping "
                                    f"(last good checkpoint kept in {self.paths.checkpoints})")
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
        drill("finish", self.total_steps)
        recs = read_metrics(self.paths.metrics)
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
            except Exception as e:  # noqa: BLE001 - closing must not mask the run's own outcome
                self.log(f"close: {type(obj).__name__}: {e}")
        if self._tb is not None:
            self._tb.close()


def train(cfg: RunConfig, out: str | Path, *, resume: str = "auto", progress: bool = True) -> dict[str, Any]:
    if cfg.resources.backend == "ray":
        from ..dist import DistTrainer
        t: Trainer = DistTrainer(cfg, out, resume=resume, progress=progress)
    else:
        t = Trainer(cfg, out, resume=resume, progress=progress)
    try:
        return t.run()
    finally:
        t.close()
