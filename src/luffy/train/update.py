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
  loss is its additive share of the mini-batch's loss (every term is normalised by the mini-batch's
  totals, :class:`MiniTotals`), so the summed gradient is the single process's gradient up to the
  order of float additions, whatever the micro-batch size and the number of workers;
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

The objective of one optimizer step (method §1.3, "Effective objective"), over the mini-batch B::

    J = pg(B) − entropy_coef · H̄(B) [+ sft_coef · SFT(B)]

pg is the aggregation of the token losses over all of B (``token_sum_norm``: Σ_B M·ℓ / (L·D)); H̄ and
SFT are token means over all of B. The reference instead sums per-micro-batch entropy (and SFT) means
over its dynamic micro-batches, so its effective coefficient is c·K (K micro-batches per rank); the
paper config multiplies the reference's coefficients by its K (method §1.6) instead of copying the
dependence on the partition.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import torch

from ..algos import BatchTotals, LossConfig, entropy_bonus, policy_loss, sft_loss
from ..model.load import pick_dtype
from .tensors import MicroBatch, token_logprobs

ENTROPY_KEYS = ("all", "on", "off")


@dataclass(frozen=True)
class MiniTotals:
    """Sizes of a mini-batch, which every micro-batch loss is normalised by: ``all`` = valid response
    tokens / sequences; ``on_seqs`` / ``off_seqs`` = those of on- / off-policy sequences (the two parts
    of the RL-w/-SFT-loss objective)."""

    all: BatchTotals
    on_seqs: BatchTotals
    off_seqs: BatchTotals


def _masks(batch: MicroBatch, seq_off: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(all, on-policy rows, off-policy rows) response masks bool[m, R]."""
    off = (seq_off if seq_off is not None else torch.zeros(batch.resp_mask.shape[0], dtype=torch.bool))[:, None]
    return batch.resp_mask, batch.resp_mask & ~off, batch.resp_mask & off


@dataclass
class Micro:
    """One micro-batch of the update (m sequences, prompt width P, response width R).

    ``batch``: the collated tensors (:mod:`luffy.train.tensors`); ``totals``: the sizes of its
    mini-batch (:func:`with_totals`; None = the micro-batch is the whole mini-batch). RL only:
    ``old_logp`` float[m, R] (0 past each response), or None when π_old is the policy being updated
    (first mini-batch of a one-epoch step: the update's own log-probs, detached, are used; no separate
    pass), ``adv`` float[m], ``seq_off`` bool[m] (the sequence is off-policy).
    """

    batch: MicroBatch
    old_logp: torch.Tensor | None = None
    adv: torch.Tensor | None = None
    seq_off: torch.Tensor | None = None
    totals: MiniTotals | None = None

    def own_totals(self) -> MiniTotals:
        return MiniTotals(*(BatchTotals.of(m) for m in _masks(self.batch, self.seq_off)))

    def to(self, device: torch.device | str) -> Micro:
        b = self.batch
        mv = (lambda t: None if t is None else t.to(device))
        return Micro(MicroBatch(mv(b.input_ids), mv(b.attn), mv(b.position), mv(b.resp_mask), mv(b.off_mask),
                                b.prompt_width), mv(self.old_logp), mv(self.adv), mv(self.seq_off), self.totals)


def with_totals(micros: list[Micro]) -> list[Micro]:
    """The micro-batches of one mini-batch, each carrying the mini-batch's :class:`MiniTotals`."""
    parts = [m.own_totals() for m in micros]
    tot = MiniTotals(*(sum((getattr(p, f) for p in parts[1:]), getattr(parts[0], f))
                       for f in ("all", "on_seqs", "off_seqs")))
    return [replace(m, totals=tot) for m in micros]


@dataclass(frozen=True)
class UpdateSpec:
    """What the loss is (everything :func:`micro_loss` reads from the run config).

    ``compute_dtype``: None = compute in the parameters' dtype; ``"bfloat16"`` = fp32 master weights,
    forward passes under ``torch.autocast`` in bf16 (method §8: fp32 masters, bf16 compute).
    """

    kind: Literal["rl", "sft"]
    temperature: float
    loss: LossConfig | None
    off_policy_objective: str
    sft_coef: float
    entropy_coef: float
    grad_clip: float
    compute_dtype: str | None = None

    @classmethod
    def from_config(cls, cfg: Any, device: str = "cpu") -> UpdateSpec:
        """From a :class:`luffy.config.RunConfig`; SFT log-probs use temperature 1."""
        rl = cfg.method == "rl"
        return cls(kind=cfg.method, temperature=cfg.rollout.temperature if rl else 1.0,
                   loss=cfg.loss_config() if rl else None, off_policy_objective=cfg.off_policy_objective,
                   sft_coef=cfg.sft_coef, entropy_coef=cfg.entropy_coef, grad_clip=cfg.optim.grad_clip,
                   compute_dtype=compute_dtype(cfg.model.dtype, device))


def compute_dtype(model_dtype: str, device: str = "cpu") -> str | None:
    """``"bfloat16"`` when the config's ``model.dtype`` resolves to bf16 on ``device`` (auto: CUDA, or
    a CPU with native bf16), else None. The weights themselves always stay float32."""
    return "bfloat16" if pick_dtype(model_dtype, device) == torch.bfloat16 else None


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

    def ordered_keys(self) -> list[tuple[int, int]]:
        """(plan entry, micro-batch) keys in the single-process loop order, up to the first non-finite one."""
        return sorted(k for k in self.stats if self.bad_at is None or k < self.bad_at)

    def ordered(self) -> list[dict[str, float]]:
        """Micro-batch stats in the single-process loop order, up to the first non-finite one."""
        return [self.stats[k] for k in self.ordered_keys()]


# ------------------------------------------------------------------------------------------------


def _mine(n: int, rank: int, world: int) -> tuple[list[int], int]:
    """(indices rank runs, passes every rank makes) for n items dealt round-robin over world ranks."""
    return list(range(rank, n, world)), -(-n // world)


def old_logprobs(model: torch.nn.Module, batches: list[MicroBatch], temperature: float, *,
                 rank: int = 0, world: int = 1, compute_dtype: str | None = None) -> dict[int, torch.Tensor]:
    """{j: logp float[m_j, R_j]} of this rank's batches under ``model`` (eval mode, no grad; method §1.0 step 6)."""
    mine, passes = _mine(len(batches), rank, world)
    out: dict[int, torch.Tensor] = {}
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for k in range(passes):
            j = mine[k] if k < len(mine) else None
            lp, _ = token_logprobs(model, batches[0 if j is None else j], temperature=temperature,
                                   with_entropy=False, compute_dtype=compute_dtype)
            if j is not None:
                out[j] = lp
    model.train(was_training)
    return out


def micro_loss(model: torch.nn.Module, mu: Micro, spec: UpdateSpec) -> tuple[torch.Tensor, dict[str, float]]:
    """(loss scalar with grad, stats) of one micro-batch: its additive share of the mini-batch's
    RL = pg − entropy_coef·H̄ [+ sft_coef·SFT] (paper Eq. 6, method §1.3) or SFT = token-mean NLL,
    every term normalised by the mini-batch's totals (``mu.totals``). Stats hold floats: the loss
    metrics and, per entropy key, ``ent_sum/<k>`` and ``ent_n/<k>`` (sum of token entropies and token count)."""
    mb = mu.batch
    tot = mu.totals if mu.totals is not None else mu.own_totals()
    logp, ent = token_logprobs(model, mb, temperature=spec.temperature, compute_dtype=spec.compute_dtype)
    if spec.kind == "sft":
        loss = sft_loss(logp, mb.resp_mask, tot.all.tokens)
        m = {"sft_loss": loss.detach()}
        masks = {"all": mb.resp_mask}
    else:
        old = mu.old_logp if mu.old_logp is not None else logp.detach()   # None: π_old is this policy
        if spec.off_policy_objective == "policy":
            pg, m = policy_loss(logp, old, mu.adv, mb.resp_mask, mb.off_mask, spec.loss, tot.all)
            extra = torch.zeros(())
        else:  # RL w/ SFT loss: pg on on-policy sequences, NLL on off-policy sequences
            _, on_rows, off_rows = _masks(mb, mu.seq_off)
            pg, m = policy_loss(logp, old, mu.adv, on_rows, torch.zeros_like(on_rows), spec.loss, tot.on_seqs)
            extra = spec.sft_coef * sft_loss(logp, off_rows, tot.off_seqs.tokens)
            m["sft_loss"] = extra.detach()
        h = entropy_bonus(ent, mb.resp_mask, tot.all.tokens)
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
    loss.backward() (a padding pass: (0·loss).backward()), then, unless a rank saw a non-finite loss or the global grad-norm is
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
            (loss if j is not None else 0.0 * loss).backward()
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


#: Loss metrics that are additive shares of the mini-batch's value (summed over its micro-batches).
ADDITIVE_KEYS = ("pg_loss", "sft_loss")


def summarize(res: UpdateResult, entropy_keys: tuple[str, ...] = ENTROPY_KEYS) -> dict[str, float]:
    """Trainer metrics of an update: ``actor/<k>`` = mean over mini-batches of the sum over their
    micro-batches for the additive losses (:data:`ADDITIVE_KEYS`), mean over micro-batches (in loop
    order) for the other diagnostics; ``entropy/<k>`` = token-mean entropy (NaN without tokens);
    ``optim/grad_norm`` = mean over optimizer steps (NaN if none was taken)."""
    import numpy as np

    good = res.ordered_keys()
    rows = [res.stats[k] for k in good]
    out: dict[str, float] = {}
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if not k.startswith("ent_") and k not in keys]
    for k in keys:
        if k in ADDITIVE_KEYS:
            per_mini: dict[int, float] = {}
            for (p, _), r in zip(good, rows, strict=True):
                if k in r:
                    per_mini[p] = per_mini.get(p, 0.0) + r[k]
            out[f"actor/{k}"] = float(np.mean(list(per_mini.values())))
        else:
            out[f"actor/{k}"] = float(np.mean([r[k] for r in rows if k in r]))
    for key in entropy_keys:
        s = n = 0.0
        for r in rows:
            s += r.get(f"ent_sum/{key}", 0.0)
            n += r.get(f"ent_n/{key}", 0.0)
        out[f"entropy/{key}"] = s / n if n else float("nan")
    out["optim/grad_norm"] = float(np.mean(res.grad_norms)) if res.grad_norms else float("nan")
    return out
