"""The update of one training step, shared by the single-process trainer and the distributed workers.

Method §1.0 steps 6 and 10 (paper §3, Eq. 6): old log-probs are recomputed by the trainer model, then
for every mini-batch: micro-batch loss + backward, grad-norm clip, AdamW step, LR-schedule step.

One code path, two callers. :class:`luffy.train.Trainer` calls these functions on its own model as
rank 0 of a world of 1; every :mod:`luffy.train.distributed` worker calls the same functions on its FSDP2-sharded
model with its rank. The driver builds a *plan* -- the list of mini-batches of a step, each a list
of :class:`Micro` -- and every rank receives the whole plan:

* rank r of W runs micro-batches r, r+W, r+2W, … of each mini-batch (round-robin);
* every rank runs the same number of forward/backward passes per mini-batch (FSDP2 all-gathers
  in forward and reduce-scatters in backward are collectives); a rank with fewer micro-batches
  repeats the mini-batch's first one with weight 0 (a *padding pass*; its gradient is 0);
* the workers' gradient reduction is a plain sum (``set_gradient_divide_factor(1)``): each micro-batch
  loss is already weighted by its share of the mini-batch's sequences, ``w = m / Σm``, so the summed
  gradient is the single process's gradient up to the order of float additions;
* "any micro-batch non-finite" is agreed on by all ranks (``any_bad``), and the grad-norm is the
  global one (FSDP2's DTensor norm), so every rank takes or skips the same optimizer steps.

Deliberate deviations (see also :mod:`luffy.train.loop`):

* The unit of data parallelism is the micro-batch, not an equal share of sequences per rank as in
  the reference (method §1.0 step 9, 10). That keeps every micro-batch tensor identical to the
  single-process run, so the two agree to float rounding; choose ``train.micro_batch_seqs`` so that a
  mini-batch splits into a multiple of W micro-batches, or padding passes waste compute.
* With W > 1, a micro-batch whose loss is not finite is still back-propagated (the other ranks are
  inside the same collectives); its NaN gradient is discarded with the skipped step. With W = 1 the
  mini-batch stops at that micro-batch, as before.
* A micro-batch's SFT loss is weighted ``loss · (m / Σm)``; the single-process trainer used to compute
  ``loss · m / Σm`` (the same value up to one rounding).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from ..algos import LossConfig, entropy_bonus, policy_loss, sft_loss
from .tensors import MicroBatch, token_logprobs

ENTROPY_KEYS = ("all", "on", "off")


@dataclass
class Micro:
    """One micro-batch of the update (m sequences, prompt width P, response width R).

    ``batch``: the collated tensors (:mod:`luffy.train.tensors`); ``weight``: m / (sequences in the
    mini-batch). RL only: ``old_logp`` float[m, R] (0 past each response), or None when π_old is the
    policy being updated (first mini-batch of a one-epoch step: the update's own log-probs, detached,
    are used; no separate pass), ``adv`` float[m], ``seq_off`` bool[m] (the sequence is off-policy).
    """

    batch: MicroBatch
    weight: float
    old_logp: torch.Tensor | None = None
    adv: torch.Tensor | None = None
    seq_off: torch.Tensor | None = None

    def to(self, device: torch.device | str) -> Micro:
        b = self.batch
        mv = (lambda t: None if t is None else t.to(device))
        return Micro(MicroBatch(mv(b.input_ids), mv(b.attn), mv(b.position), mv(b.resp_mask), mv(b.off_mask),
                                b.prompt_width), self.weight, mv(self.old_logp), mv(self.adv), mv(self.seq_off))


@dataclass(frozen=True)
class UpdateSpec:
    """What the loss is (everything :func:`micro_loss` reads from the run config)."""

    kind: Literal["rl", "sft"]
    temperature: float
    loss: LossConfig | None
    off_policy_objective: str
    sft_coef: float
    entropy_coef: float
    grad_clip: float

    @classmethod
    def from_config(cls, cfg: Any) -> UpdateSpec:
        """From a :class:`luffy.config.RunConfig`; SFT log-probs use temperature 1."""
        rl = cfg.method == "rl"
        return cls(kind=cfg.method, temperature=cfg.rollout.temperature if rl else 1.0,
                   loss=cfg.loss_config() if rl else None, off_policy_objective=cfg.off_policy_objective,
                   sft_coef=cfg.sft_coef, entropy_coef=cfg.entropy_coef, grad_clip=cfg.optim.grad_clip)


@dataclass
class UpdateResult:
    """What a rank's update returns.

    ``stats[(p, j)]``: loss metrics and entropy sums of micro-batch j of plan entry p (finite ones
    this rank ran); ``bad_at``: the first (p, j) this rank found non-finite; ``grad_norms``: one per
    optimizer step taken; ``lr``: the scheduler's LR after the update.
    """

    stats: dict[tuple[int, int], dict[str, float]] = field(default_factory=dict)
    grad_norms: list[float] = field(default_factory=list)
    bad: bool = False
    bad_at: tuple[int, int] | None = None
    lr: float = float("nan")

    @staticmethod
    def merge(parts: list[UpdateResult]) -> UpdateResult:
        """Combine the ranks' results (rank 0 first): stats united, grad norms and LR from rank 0."""
        out = UpdateResult(grad_norms=list(parts[0].grad_norms), lr=parts[0].lr)
        for r in parts:
            out.stats.update(r.stats)
            out.bad = out.bad or r.bad
            if r.bad_at is not None and (out.bad_at is None or r.bad_at < out.bad_at):
                out.bad_at = r.bad_at
        return out

    def ordered(self) -> list[dict[str, float]]:
        """Micro-batch stats in the single-process loop order, up to the first non-finite one."""
        keys = sorted(k for k in self.stats if self.bad_at is None or k < self.bad_at)
        return [self.stats[k] for k in keys]


# ------------------------------------------------------------------------------------------------


def _mine(n: int, rank: int, world: int) -> tuple[list[int], int]:
    """(indices rank runs, passes every rank makes) for n items dealt round-robin over world ranks."""
    return list(range(rank, n, world)), -(-n // world)


def old_logprobs(model: torch.nn.Module, batches: list[MicroBatch], temperature: float, *,
                 rank: int = 0, world: int = 1) -> dict[int, torch.Tensor]:
    """{j: logp float[m_j, R_j]} of this rank's batches under ``model`` (eval mode, no grad; method §1.0 step 6)."""
    mine, passes = _mine(len(batches), rank, world)
    out: dict[int, torch.Tensor] = {}
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for k in range(passes):
            j = mine[k] if k < len(mine) else None
            lp, _ = token_logprobs(model, batches[0 if j is None else j], temperature=temperature,
                                   with_entropy=False)
            if j is not None:
                out[j] = lp
    model.train(was_training)
    return out


def micro_loss(model: torch.nn.Module, mu: Micro, spec: UpdateSpec) -> tuple[torch.Tensor, dict[str, float]]:
    """(loss scalar with grad, stats) of one micro-batch: RL = pg − entropy_coef·H̄ [+ sft_coef·SFT]
    (paper Eq. 6, method §1.3), SFT = token-mean NLL. Stats hold floats: the loss metrics and, per
    entropy key, ``ent_sum/<k>`` and ``ent_n/<k>`` (sum of token entropies and token count)."""
    mb = mu.batch
    logp, ent = token_logprobs(model, mb, temperature=spec.temperature)
    if spec.kind == "sft":
        loss = sft_loss(logp, mb.resp_mask)
        m = {"sft_loss": loss.detach()}
        masks = {"all": mb.resp_mask}
    else:
        old = mu.old_logp if mu.old_logp is not None else logp.detach()   # None: π_old is this policy
        if spec.off_policy_objective == "policy":
            pg, m = policy_loss(logp, old, mu.adv, mb.resp_mask, mb.off_mask, spec.loss)
            extra = torch.zeros(())
        else:  # RL w/ SFT loss: pg on on-policy sequences, NLL on off-policy sequences
            seq_off = mu.seq_off[:, None]
            on_rows = mb.resp_mask & ~seq_off
            pg, m = policy_loss(logp, old, mu.adv, on_rows, torch.zeros_like(on_rows), spec.loss)
            extra = spec.sft_coef * sft_loss(logp, mb.resp_mask & seq_off)
            m["sft_loss"] = extra.detach()
        h = entropy_bonus(ent, mb.resp_mask)
        loss = pg - spec.entropy_coef * h + extra
        masks = {"all": mb.resp_mask, "on": mb.resp_mask & ~mb.off_mask, "off": mb.resp_mask & mb.off_mask}
    stats = {k: float(v) for k, v in m.items()}
    with torch.no_grad():
        e = ent.detach()
        for key, msk in masks.items():
            stats[f"ent_sum/{key}"] = float((e * msk).sum())
            stats[f"ent_n/{key}"] = float(msk.sum())
    return loss, stats


def _full(t: torch.Tensor) -> torch.Tensor:
    return t.full_tensor() if hasattr(t, "full_tensor") else t


def run_update(model: torch.nn.Module, optim: Any, sched: Any, plan: list[list[Micro]], spec: UpdateSpec, *,
               rank: int = 0, world: int = 1, any_bad: Callable[[bool], bool] = bool,
               after_backward: Callable[[], None] | None = None) -> UpdateResult:
    """Run the plan's mini-batches in order: per mini-batch zero grads, this rank's micro-batches
    (loss·weight).backward(), then, unless a rank saw a non-finite loss or the global grad-norm is
    non-finite, clip to ``spec.grad_clip``, ``optim.step()`` and ``sched.step()``. A bad mini-batch ends
    the update (``result.bad``); the optimizer state is untouched by it. ``any_bad(flag)`` returns
    whether any rank's flag is set (the identity for one process)."""
    res = UpdateResult()
    for p, micros in enumerate(plan):
        mine, passes = _mine(len(micros), rank, world)
        optim.zero_grad(set_to_none=True)
        bad = False
        for k in range(passes):
            j = mine[k] if k < len(mine) else None
            mu = micros[0 if j is None else j]
            loss, stats = micro_loss(model, mu, spec)
            if j is not None and not bool(torch.isfinite(loss)):
                bad = True
                if res.bad_at is None:
                    res.bad_at = (p, j)
                if world == 1:
                    break
            (loss * (mu.weight if j is not None else 0.0)).backward()
            if after_backward is not None:
                after_backward()
            if j is not None and not bad:
                res.stats[(p, j)] = stats
        if any_bad(bad):
            res.bad = True
            break
        gn = _full(torch.nn.utils.clip_grad_norm_(model.parameters(), spec.grad_clip))
        if not bool(torch.isfinite(gn)):
            res.bad = True
            break
        res.grad_norms.append(float(gn))
        optim.step()
        sched.step()
    optim.zero_grad(set_to_none=True)
    res.lr = sched.get_last_lr()[0]
    return res


def summarize(res: UpdateResult, entropy_keys: tuple[str, ...] = ENTROPY_KEYS) -> dict[str, float]:
    """Trainer metrics of an update: ``actor/<k>`` = mean over micro-batches (in loop order),
    ``entropy/<k>`` = token-mean entropy (NaN without tokens), ``optim/grad_norm`` = mean over
    optimizer steps (NaN if none was taken)."""
    import numpy as np

    rows = res.ordered()
    out: dict[str, float] = {}
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if not k.startswith("ent_") and k not in keys]
    for k in keys:
        out[f"actor/{k}"] = float(np.mean([r[k] for r in rows if k in r]))
    for key in entropy_keys:
        s = n = 0.0
        for r in rows:
            s += r.get(f"ent_sum/{key}", 0.0)
            n += r.get(f"ent_n/{key}", 0.0)
        out[f"entropy/{key}"] = s / n if n else float("nan")
    out["optim/grad_norm"] = float(np.mean(res.grad_norms)) if res.grad_norms else float("nan")
    return out
