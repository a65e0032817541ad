"""A run's data, its order, per-step seeds and the micro-batch plan of a step.

* :func:`read_run_data`, :func:`drop_long_prompts`, :func:`plan_steps` -- the rows a run trains and
  validates on, and how many steps that makes;
* :class:`Sampler` -- seeded epoch permutations of the training rows with a resumable position
  (drop_last, like the reference);
* :func:`step_seed`, :func:`rng_state` / :func:`set_rng_state` -- what makes a resumed run
  bitwise-identical to an uninterrupted one;
* :func:`layout_step`, :func:`old_logp_batches`, :func:`build_plan` -- how a step's group members
  become mini-batches of :class:`~luffy.train.update.Micro` micro-batches for
  :func:`luffy.train.update.run_update`.

π_old (method §1.0 step 6) is the policy before the step's first optimizer step. With
``ppo_epochs = 1`` that is exactly the policy of the first mini-batch's update forward, so those
sequences skip the separate old-log-prob pass (their ``old_logp`` is None: the update uses its own
log-probs, detached). With one mini-batch per step there is no pass at all.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..config import RunConfig
from ..data.loaders import load_rows
from ..data.schema import DataFormatError, TrainRow
from ..rollout.groups import Member, check_rows_have_traces, encode_prompt
from .errors import TrainingError
from .tensors import MicroBatch, collate
from .update import Micro, with_totals


def _rows_of(key: str, path: str) -> list[TrainRow]:
    """load_rows with the config key in the error (``data.train: <file>: line 3: ...``)."""
    try:
        return load_rows(path)
    except DataFormatError as e:
        raise DataFormatError(f"{key}: {e}") from None


def read_run_data(cfg: RunConfig) -> tuple[list[TrainRow], list[TrainRow]]:
    """(training rows, validation rows) of a run, checked before any model is loaded."""
    rows = _rows_of("data.train", cfg.data.train)
    if cfg.method == "sft" or cfg.group.n_off > 0:
        check_rows_have_traces(rows, max(1, cfg.group.n_off), cfg.data.train)
    val = _rows_of("data.val", cfg.data.val) if cfg.data.val else []
    return rows, val[: cfg.data.val_limit] if cfg.data.val_limit is not None else val


def drop_long_prompts(rows: list[TrainRow], tok: Any, limit: int, log: Callable[[str], None]) -> list[TrainRow]:
    """The rows whose encoded prompt has at most ``limit`` tokens (the reference drops the others)."""
    kept = [r for r in rows if len(encode_prompt(tok, r)[1]) <= limit]
    if len(kept) < len(rows):
        log(f"data: dropped {len(rows) - len(kept)} of {len(rows)} rows with prompts over {limit} tokens")
    return kept


def plan_steps(cfg: RunConfig, n_rows: int) -> tuple[int, int]:
    """(training steps, optimizer steps) of the whole run."""
    t = cfg.train
    if cfg.method == "sft":
        steps = n_rows // t.prompts_per_step * t.epochs
        if steps == 0:
            raise TrainingError(f"{cfg.data.train}: {n_rows} rows < one batch of {t.prompts_per_step}")
        return steps, steps
    return t.steps, t.steps * (t.prompts_per_step // t.mini_batch_prompts) * t.ppo_epochs


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


def step_seed(seed: int, step: int) -> int:
    """The torch seed and sampling seed of ``step`` (independent of where a run was resumed)."""
    return (seed * 1_000_003 + step * 7919) % (2**31 - 1)


def rng_state() -> dict:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(s: dict) -> None:
    random.setstate(s["python"])
    np.random.set_state(s["numpy"])
    torch.set_rng_state(s["torch"])


def chunks(items: list, size: int) -> list[list]:
    return [items[i: i + size] for i in range(0, len(items), size)]


def collate_members(members: list[Member], pad_id: int) -> MicroBatch:
    return collate([m.prompt_ids for m in members], [m.response_ids for m in members],
                   [m.off_mask for m in members], pad_id)


@dataclass
class StepLayout:
    """Which members go together: ``minis`` = prompt indices per mini-batch, ``members_of[g]`` = member
    indices of prompt g, ``reuse`` = members whose π_old is the update's own forward (no old-log-prob pass)."""

    minis: list[list[int]]
    members_of: dict[int, list[int]]
    reuse: set[int]


def layout_step(members: list[Member], n_prompts: int, mini_batch_prompts: int, ppo_epochs: int,
                recompute_all: bool = False) -> StepLayout:
    minis = chunks(list(range(n_prompts)), mini_batch_prompts)
    members_of = {g: [i for i, m in enumerate(members) if m.group == g] for g in range(n_prompts)}
    reuse = ({i for g in minis[0] for i in members_of[g]} if ppo_epochs == 1 and not recompute_all else set())
    return StepLayout(minis, members_of, reuse)


def longest_first(idx: list[int], members: list[Member]) -> list[int]:
    """``idx`` ordered by sequence length (prompt + response tokens), longest first, ties in order.

    Micro-batches are cut from this order, so each one pads its sequences to lengths close to their
    own (cut from the group order, every micro-batch pads to about the longest response of the step:
    the update of a tiny-model step took ~1.5x as long). The objective does not depend on how a
    mini-batch is cut into micro-batches (:mod:`luffy.train.update`), so the order changes float
    rounding only."""
    return sorted(idx, key=lambda i: -(len(members[i].prompt_ids) + len(members[i].response_ids)))


def old_logp_batches(layout: StepLayout, members: list[Member], micro_batch_seqs: int) -> list[list[int]]:
    """Member indices of each old-log-prob micro-batch (every member not in ``layout.reuse``), longest first."""
    return chunks(longest_first([i for i in range(len(members)) if i not in layout.reuse], members), micro_batch_seqs)


def build_plan(layout: StepLayout, members: list[Member], adv: torch.Tensor, old: dict[int, torch.Tensor],
               micro_batch_seqs: int, collate_fn: Callable[[list[Member]], MicroBatch]) -> list[list[Micro]]:
    """One list of micro-batches per mini-batch (cut from :func:`longest_first` order); ``old[i]`` = π_old log-probs float[R_i] of member i,
    ``adv`` float[n_members], ``collate_fn`` = :func:`collate_members` with the pad id bound.

    Each micro-batch carries its mini-batch's totals (:func:`luffy.train.update.with_totals`), so
    its loss is its additive share of the mini-batch's objective.
    """
    plan: list[list[Micro]] = []
    for mini in layout.minis:
        seq_idx = longest_first([i for g in mini for i in layout.members_of[g]], members)
        micros = []
        for idx in chunks(seq_idx, micro_batch_seqs):
            mb = collate_fn([members[i] for i in idx])
            old_lp = None                                                     # π_old = current policy
            if not layout.reuse.issuperset(idx):
                old_lp = torch.zeros(mb.resp_mask.shape, dtype=torch.float32)  # [m, R]
                for j, i in enumerate(idx):
                    old_lp[j, : old[i].shape[0]] = old[i]
            micros.append(Micro(mb, old_lp, adv[idx], torch.tensor([members[i].is_off for i in idx])))
        plan.append(with_totals(micros))
    return plan
