"""The LUFFY objective: pure, shape-documented functions with a registry per variant axis.

Public API (stable)::

    from luffy.algos import group_advantages, policy_loss, sft_loss, entropy_bonus, LossConfig

See ``advantages`` (method §1.2), ``shaping`` (paper Eq. 6–8) and ``loss`` (method §1.3).
"""

from .advantages import ADV_SCALES, ADV_STATS, group_advantages
from .loss import (
    AGGREGATIONS,
    ON_POLICY_RATIOS,
    BatchTotals,
    ClipConfig,
    LossConfig,
    entropy_bonus,
    policy_loss,
    sft_loss,
)
from .registry import Registry
from .shaping import SHAPINGS, ShapingParams, parse_shaping

__all__ = [
    "ADV_SCALES",
    "ADV_STATS",
    "AGGREGATIONS",
    "ON_POLICY_RATIOS",
    "SHAPINGS",
    "BatchTotals",
    "ClipConfig",
    "LossConfig",
    "Registry",
    "ShapingParams",
    "entropy_bonus",
    "group_advantages",
    "parse_shaping",
    "policy_loss",
    "sft_loss",
]
