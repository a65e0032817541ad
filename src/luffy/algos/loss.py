"""The LUFFY policy objective as pure functions (paper Eq. 6; method §1.3, §1.4, §1.7).

Per token t of response i, with p = π_θ(y_t) = exp(logp), r = exp(logp − old_logp):

* off-policy tokens (``off_policy_mask``): ℓ = −Â · f(p), f = ``cfg.shaping``, a ``SHAPINGS`` entry with
  its typed parameters (π_φ ≡ 1, no clip);
* on-policy tokens: ℓ = −Â · r (``clip=None``, the paper run), or the PPO form
  max(−Â·r, −Â·clip(r, 1−ε_low, u)) with u = max(1+ε_high, ``clip.upper_c``) (method §1.3);
  ``on_policy_ratio="shaped"`` uses r = f(p)/f(p_old) instead (Table 4 "On-Policy + Shaping").

The token losses are reduced by an ``AGGREGATIONS`` entry over ``response_mask``:
``token_sum_norm`` Σ M·ℓ / L (Dr.GRPO; the paper run, L = ``norm_length`` = max response length),
``token_mean`` Σ M·ℓ / Σ M, ``seq_mean_token_mean`` mean over sequences of their token means.

Deliberate deviations from the reference implementation (method §1.8):

* ``clip_frac`` is the fraction of *on-policy* valid tokens whose clipped branch is active; the
  reference divides by all valid tokens, prefix tokens included.
* ``norm_length=None`` divides by T, the padded width of the batch passed in; the reference's L is the
  padded width too, which equals ``max_response_length`` because it always pads to it. The trainer
  passes ``norm_length`` explicitly.
* Every reduction is over the whole batch an optimizer step sees (``totals``), so a loss computed in
  parts (micro-batches, workers) adds up to the same value; the reference's ÷ D ranks is the constant
  ``norm_ranks``, and its sum of per-micro-batch entropy means is matched by the coefficient, not
  reproduced (method §1.3, "effective objective").
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, field_validator, model_validator
from pydantic_core import PydanticCustomError

from ._checks import check_bool, check_float, check_same_shape
from .registry import Registry
from .shaping import LuffyShaping, ShapingParams, parse_shaping

AGGREGATIONS: Registry = Registry("aggregation")
ON_POLICY_RATIOS: Registry = Registry("on-policy ratio")


class ClipConfig(BaseModel):
    """PPO clip for on-policy tokens: r ∈ [1 − eps_low, max(1 + eps_high, upper_c)]."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    eps_low: float = Field(0.2, gt=0, lt=1, description="lower clip 1 − eps_low")
    eps_high: float = Field(0.2, gt=0, description="upper clip 1 + eps_high")
    upper_c: float = Field(1.0, gt=0, description="reference clip_upper_bound c; upper = max(1+eps_high, c)")

    @property
    def upper(self) -> float:
        return max(1.0 + self.eps_high, self.upper_c)


class LossConfig(BaseModel):
    """Every knob of the policy objective; defaults are the released LUFFY run (method §1.6).

    ``shaping`` takes a bare name or a mapping ``{name: ..., <param>: ...}`` and holds the typed
    parameters of that shaping (see ``luffy.algos.shaping``); it dumps as the mapping.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    shaping: SerializeAsAny[ShapingParams] = Field(
        LuffyShaping(), description="off-policy weight f(p): a name in SHAPINGS, or {name: ..., <its parameters>}"
    )
    clip: ClipConfig | None = Field(None, description="PPO clip on on-policy tokens; None = no clip")
    on_policy_ratio: str = Field("ratio", description="on-policy ratio: a name in ON_POLICY_RATIOS")
    aggregation: str = Field("token_sum_norm", description="token reduction: a name in AGGREGATIONS")
    norm_length: int | None = Field(
        None, gt=0, description="L of token_sum_norm (max response length); None = padded width T"
    )
    norm_ranks: int = Field(
        1, gt=0, description="D of token_sum_norm: the reference averages its ranks' sums over D data-parallel "
        "ranks, so its divisor is L·D (the paper config sets 8). A constant, not the worker count (method §1.3)"
    )

    @model_validator(mode="before")
    @classmethod
    def _no_flat_shaping_params(cls, data: object) -> object:
        if isinstance(data, dict):
            for key in ("gamma", "pow_k", "k"):
                if key in data:
                    raise PydanticCustomError("shaping_param", "{msg}", {"msg": (
                        f"unknown key '{key}': shaping parameters go inside 'shaping', "
                        "e.g. shaping: {name: luffy, gamma: 0.1}")})
        return data

    @field_validator("shaping", mode="before")
    @classmethod
    def _parse_shaping(cls, v: object) -> ShapingParams:
        try:
            return parse_shaping(v)
        except ValueError as e:
            raise PydanticCustomError("shaping", "{msg}", {"msg": str(e)}) from None

    @field_validator("aggregation")
    @classmethod
    def _known_aggregation(cls, v: str) -> str:
        AGGREGATIONS.get(v)
        return v

    @field_validator("on_policy_ratio")
    @classmethod
    def _known_ratio(cls, v: str) -> str:
        ON_POLICY_RATIOS.get(v)
        return v

    def shape(self, p: torch.Tensor) -> torch.Tensor:
        """Apply the configured shaping f to probabilities p (float[...] → float[...])."""
        return self.shaping(p)


# ----------------------------------------------------------------------------------------------
# aggregations: (token_loss float[B,T], mask bool[B,T], norm float, totals BatchTotals) -> scalar


@dataclass(frozen=True)
class BatchTotals:
    """Sizes of the batch a loss is normalised over when it is computed in parts.

    An optimizer step's mini-batch is split into micro-batches (and those over workers); each part's
    loss uses the *mini-batch's* totals, so the parts' losses add up to the mini-batch's loss, and
    the gradient does not depend on how the mini-batch was split. ``tokens``: valid tokens (Σ M);
    ``seqs``: sequences with at least one valid token.
    """

    tokens: float
    seqs: float

    @classmethod
    def of(cls, mask: torch.Tensor) -> BatchTotals:
        """The totals of ``mask`` bool[B,T] itself (the batch is not split)."""
        return cls(float(mask.sum()), float((mask.sum(-1) > 0).sum()))

    def __add__(self, other: BatchTotals) -> BatchTotals:
        return BatchTotals(self.tokens + other.tokens, self.seqs + other.seqs)


@AGGREGATIONS.register("token_sum_norm")
def agg_token_sum_norm(loss: torch.Tensor, mask: torch.Tensor, norm: float, totals: BatchTotals) -> torch.Tensor:
    """Σ M·ℓ / (L·D) — constant divisor (Dr.GRPO); the paper run (``loss_remove_token_mean=True``)."""
    return (loss * mask).sum() / norm


@AGGREGATIONS.register("token_mean")
def agg_token_mean(loss: torch.Tensor, mask: torch.Tensor, norm: float, totals: BatchTotals) -> torch.Tensor:
    """Σ M·ℓ / Σ M — token mean over the (whole) batch (0 when no token is valid)."""
    return (loss * mask).sum() / max(totals.tokens, 1.0)


@AGGREGATIONS.register("seq_mean_token_mean")
def agg_seq_mean_token_mean(loss: torch.Tensor, mask: torch.Tensor, norm: float,
                            totals: BatchTotals) -> torch.Tensor:
    """Mean over sequences (with ≥1 valid token) of each sequence's token mean (original GRPO)."""
    n_tok = mask.sum(-1)
    seq = (loss * mask).sum(-1) / n_tok.clamp(min=1)
    return (seq * (n_tok > 0)).sum() / max(totals.seqs, 1.0)


# ----------------------------------------------------------------------------------------------
# on-policy ratios: (logp, old_logp, cfg) -> r float[B,T]


@ON_POLICY_RATIOS.register("ratio")
def ratio_plain(logp: torch.Tensor, old_logp: torch.Tensor, cfg: LossConfig) -> torch.Tensor:
    """r = π_θ / π_old = exp(logp − old_logp) (PPO / GRPO)."""
    return torch.exp(logp - old_logp)


@ON_POLICY_RATIOS.register("shaped")
def ratio_shaped(logp: torch.Tensor, old_logp: torch.Tensor, cfg: LossConfig) -> torch.Tensor:
    """r = f(p)/f(p_old) with the configured shaping (Table 4 "On-Policy + Shaping")."""
    return cfg.shape(torch.exp(logp)) / cfg.shape(torch.exp(old_logp))


def _masked_mean(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    return (x * m).sum() / m.sum().clamp(min=1)


def _check_logp_inputs(logp, old_logp, advantages, response_mask, off_policy_mask):
    logp = check_float("logp", logp, (2,))
    old_logp = check_float("old_logp", old_logp, (2,))
    check_same_shape("old_logp", old_logp, "logp", logp)
    advantages = check_float("advantages", advantages, (1, 2))
    if advantages.dim() == 1 and advantages.shape[0] != logp.shape[0]:
        raise ValueError(f"advantages: expected shape ({logp.shape[0]},) or {tuple(logp.shape)}, "
                         f"got {tuple(advantages.shape)}")
    if advantages.dim() == 2:
        check_same_shape("advantages", advantages, "logp", logp)
    check_bool("response_mask", response_mask, logp.shape)
    check_bool("off_policy_mask", off_policy_mask, logp.shape)
    return advantages if advantages.dim() == 2 else advantages[:, None].expand_as(logp)


def policy_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    off_policy_mask: torch.Tensor,
    cfg: LossConfig,
    totals: BatchTotals | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Mixed-policy policy-gradient loss (paper Eq. 6 with shaping; method §1.3).

    Args:
        logp: float[B,T] log-prob of the taken token under the current policy (carries grad).
        old_logp: float[B,T] log-prob under the rollout policy, recomputed by the trainer (constant).
        advantages: float[B] (broadcast over tokens) or float[B,T] (constant).
        response_mask: bool[B,T] valid response tokens (through the first EOS, EOS included).
        off_policy_mask: bool[B,T] tokens that come from an off-policy trace (prefix mask P).
        cfg: the loss variant.
        totals: the sizes of the whole batch when this is one part of it (a micro-batch); None = this
            batch's own. With the batch's totals the parts' losses sum to the batch's loss.

    Returns:
        (loss scalar, metrics) — metrics are detached 0-D tensors: ``pg_loss``, ``on_pg_loss`` (mean ℓ
        over on-policy tokens), ``off_pg_loss``, ``clip_frac``, ``off_prob`` (mean p over off tokens),
        ``off_weight`` (mean f(p)), ``on_prob`` (mean exp(old_logp) over on tokens), ``approx_kl``
        (mean old_logp − logp over all valid tokens, off-policy included, like ``actor/ppo_kl``),
        ``n_on_tokens``, ``n_off_tokens``.
    """
    if not isinstance(cfg, LossConfig):
        raise ValueError(f"cfg: expected a LossConfig, got {type(cfg).__name__}")
    adv = _check_logp_inputs(logp, old_logp, advantages, response_mask, off_policy_mask).detach()
    # padding may hold anything (NaN/inf); zero it *before* any op so no gradient can pick it up
    logp = torch.where(response_mask, logp, torch.zeros_like(logp))
    old_logp = torch.where(response_mask, old_logp.detach(), torch.zeros_like(logp))
    off_m = response_mask & off_policy_mask
    on_m = response_mask & ~off_policy_mask

    # off-policy branch: −Â f(p), p = exp(logp); π_φ ≡ 1, never clipped
    p = torch.exp(logp)
    weight = cfg.shape(p)
    loss_off = -adv * weight

    # on-policy branch: −Â r, optionally PPO-clipped
    ratio = ON_POLICY_RATIOS.get(cfg.on_policy_ratio)(logp, old_logp, cfg)
    loss_on = -adv * ratio
    if cfg.clip is not None:
        clipped = -adv * ratio.clamp(1.0 - cfg.clip.eps_low, cfg.clip.upper)
        clip_active = clipped > loss_on
        loss_on = torch.maximum(loss_on, clipped)
    else:
        clip_active = torch.zeros_like(on_m)

    # torch.where (not arithmetic blending) so NaN/inf in an unused branch cannot leak in
    token_loss = torch.where(off_m, loss_off, torch.where(on_m, loss_on, torch.zeros_like(loss_on)))
    norm = (cfg.norm_length if cfg.norm_length is not None else logp.shape[1]) * cfg.norm_ranks
    loss = AGGREGATIONS.get(cfg.aggregation)(token_loss, response_mask, norm,
                                             totals if totals is not None else BatchTotals.of(response_mask))

    with torch.no_grad():
        metrics = {
            "pg_loss": loss.detach(),
            "on_pg_loss": _masked_mean(torch.where(on_m, loss_on, 0.0), on_m),
            "off_pg_loss": _masked_mean(torch.where(off_m, loss_off, 0.0), off_m),
            "clip_frac": _masked_mean(clip_active.float(), on_m),
            "off_prob": _masked_mean(torch.where(off_m, p, 0.0), off_m),
            "off_weight": _masked_mean(torch.where(off_m, weight, 0.0), off_m),
            "on_prob": _masked_mean(torch.where(on_m, torch.exp(old_logp), 0.0), on_m),
            "approx_kl": _masked_mean(torch.where(response_mask, old_logp - logp, 0.0), response_mask),
            "n_on_tokens": on_m.sum().float(),
            "n_off_tokens": off_m.sum().float(),
        }
        metrics = {k: v.detach() for k, v in metrics.items()}
    return loss, metrics


def _token_total(mask: torch.Tensor, total_tokens: float | None) -> torch.Tensor | float:
    return mask.sum().clamp(min=1) if total_tokens is None else max(total_tokens, 1.0)


def sft_loss(logp: torch.Tensor, mask: torch.Tensor, total_tokens: float | None = None) -> torch.Tensor:
    """Token-mean negative log-likelihood −Σ M·logp / Σ M (SFT; RL w/ SFT loss, method §2).

    logp float[B,T], mask bool[B,T] → scalar; 0 (with a graph) when no token is selected.
    ``total_tokens``: Σ M of the whole batch when this is one part of it (None = this batch's own).
    """
    logp = check_float("logp", logp, (2,))
    check_bool("mask", mask, logp.shape)
    return -(torch.where(mask, logp, torch.zeros_like(logp))).sum() / _token_total(mask, total_tokens)


def entropy_bonus(entropy: torch.Tensor, mask: torch.Tensor, total_tokens: float | None = None) -> torch.Tensor:
    """Masked token mean of per-token entropy, float[B,T] × bool[B,T] → scalar (method §1.3 H̄).

    The trainer subtracts ``entropy_coef ×`` this from the loss. It covers every valid response
    token, off-policy tokens included, as the reference does. ``total_tokens`` as in :func:`sft_loss`.
    """
    entropy = check_float("entropy", entropy, (2,))
    check_bool("mask", mask, entropy.shape)
    return torch.where(mask, entropy, torch.zeros_like(entropy)).sum() / _token_total(mask, total_tokens)
