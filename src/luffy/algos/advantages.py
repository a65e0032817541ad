"""Group-relative advantages over mixed on/off-policy groups (method §1.2; paper Eq. 4 / Eq. 6).

LUFFY's released run (``train.sh``) uses ``stats="group", scale="none"``: Â_i = R_i − mean_G(R),
where the group G holds the on-policy rollouts **and** the off-policy trace(s) of one prompt.
The RL-with-SFT-loss baseline uses the reference's ``grpo_split``: statistics from the on-policy
members only, applied to every member (``stats="on_policy"``).

Two axes, each a registry:

* ``ADV_STATS`` — which members define a group's (mean, std):
  ``group`` (all members; a group of one gets mean 0, std 1; a zero std is *not* replaced, so an
  all-equal group gets 0/(0+eps) = 0, as in the reference) |
  ``on_policy`` (on-policy members only; exactly one on-policy member → mean 0, std 1; a zero std is
  replaced by 1, as in ``grpo_split``).
* ``ADV_SCALES`` — ``none``: R − mean | ``std``: (R − mean) / (std_unbiased + eps).

Deviation: with ``stats="on_policy"`` a group that has *no* on-policy member (the reference never
builds one) uses mean 0, std 1 rather than failing.
"""

from __future__ import annotations

import torch

from ._checks import check_bool, check_float
from .registry import Registry

ADV_STATS: Registry = Registry("advantage stats")
ADV_SCALES: Registry = Registry("advantage scale")


def _group_moments(values: torch.Tensor, inverse: torch.Tensor, member: torch.Tensor, n_groups: int):
    """Per-group count, mean and unbiased std of ``values`` over members where ``member`` is True.

    values float[B], inverse long[B] (group index of each row), member bool[B] → three float[G].
    """
    w = member.to(values.dtype)
    count = torch.zeros(n_groups, dtype=values.dtype, device=values.device).index_add_(0, inverse, w)
    total = torch.zeros_like(count).index_add_(0, inverse, values * w)
    mean = total / count.clamp(min=1)
    dev2 = ((values - mean[inverse]) ** 2) * w
    ss = torch.zeros_like(count).index_add_(0, inverse, dev2)
    std = torch.sqrt(ss / (count - 1).clamp(min=1))
    return count, mean, std


@ADV_STATS.register("group")
def _stats_group(rewards, inverse, off_policy, n_groups):
    """Mean/std over every member of the group, on- and off-policy (LUFFY; reference ``grpo``)."""
    member = torch.ones_like(off_policy)
    count, mean, std = _group_moments(rewards, inverse, member, n_groups)
    single = count <= 1
    mean = torch.where(single, torch.zeros_like(mean), mean)
    std = torch.where(single, torch.ones_like(std), std)
    return mean, std


@ADV_STATS.register("on_policy")
def _stats_on_policy(rewards, inverse, off_policy, n_groups):
    """Mean/std over on-policy members only, applied to all members (reference ``grpo_split``)."""
    count, mean, std = _group_moments(rewards, inverse, ~off_policy, n_groups)
    single = count <= 1
    mean = torch.where(single, torch.zeros_like(mean), mean)
    std = torch.where(single | (std == 0), torch.ones_like(std), std)
    return mean, std


@ADV_SCALES.register("none")
def _scale_none(centered, std, eps):
    """Dr.GRPO / the released LUFFY run: no std normalisation."""
    return centered


@ADV_SCALES.register("std")
def _scale_std(centered, std, eps):
    """GRPO as written in paper Eq. 4: divide by the unbiased group std plus eps."""
    return centered / (std + eps)


def group_advantages(
    rewards: torch.Tensor,
    group_ids: torch.Tensor,
    off_policy: torch.Tensor,
    *,
    stats: str = "group",
    scale: str = "none",
    eps: float = 1e-6,
) -> torch.Tensor:
    """Sequence-level group-relative advantages.

    Args:
        rewards: float[B] scalar reward per response (on-policy rollouts and off-policy traces).
        group_ids: int[B] prompt/group key of each response (any integers; need not be contiguous).
        off_policy: bool[B] True where the response is (or contains) an off-policy trace.
        stats: name in ``ADV_STATS`` ("group" | "on_policy").
        scale: name in ``ADV_SCALES`` ("none" | "std").
        eps: added to the std when ``scale="std"``.

    Returns:
        float[B] advantage per response (broadcast over its tokens by the loss). Computed without grad.
    """
    rewards = check_float("rewards", rewards, (1,))
    if not isinstance(group_ids, torch.Tensor) or group_ids.is_floating_point() or group_ids.dtype == torch.bool:
        got = group_ids.dtype if isinstance(group_ids, torch.Tensor) else type(group_ids).__name__
        raise ValueError(f"group_ids: expected an integer tensor, got {got}")
    if group_ids.shape != rewards.shape:
        raise ValueError(f"group_ids: expected shape {tuple(rewards.shape)}, got {tuple(group_ids.shape)}")
    off_policy = check_bool("off_policy", off_policy, rewards.shape)
    if not eps >= 0:
        raise ValueError(f"eps: expected a non-negative float, got {eps}")
    stats_fn = ADV_STATS.get(stats)
    scale_fn = ADV_SCALES.get(scale)
    if not torch.isfinite(rewards).all():
        raise ValueError("rewards: expected finite values, got NaN or inf")
    with torch.no_grad():
        _, inverse = torch.unique(group_ids, return_inverse=True)
        n_groups = int(inverse.max().item()) + 1 if inverse.numel() else 0
        mean, std = stats_fn(rewards, inverse, off_policy, n_groups)
        return scale_fn(rewards - mean[inverse], std[inverse], eps)
