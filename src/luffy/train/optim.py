"""Optimizer and learning-rate schedule (method §1.6).

AdamW over the trainable parameters; ``LambdaLR`` with linear warmup (counted in optimizer steps)
followed by a constant, linear or cosine schedule.

Deliberate deviations:

* The LR is not 0 on the first optimizer step (the reference's constant-with-warmup schedule gives
  λ(0) = 0, method §1.8 #1); warmup is linear from 1/warmup_steps.
* The scheduler steps once per optimizer step (the reference: once per training step; identical
  for the constant RL schedule).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch


def lr_lambda(schedule: str, warmup: int, total: int, min_ratio: float = 0.0) -> Callable[[int], float]:
    """The LR multiplier after ``s`` optimizer steps; the decaying schedules end at ``min_ratio``
    (cosine with ``min_ratio`` 0.1 is the paper's SFT recipe, OpenRLHF's ``cosine_with_min_lr``)."""

    def f(s: int) -> float:
        if warmup > 0 and s < warmup:
            return (s + 1) / warmup
        if schedule == "constant":
            return 1.0
        frac = (s - warmup) / max(1, total - warmup)
        if schedule == "linear":
            decay = max(0.0, 1.0 - frac)
        else:
            decay = 0.5 * (1.0 + math.cos(math.pi * min(1.0, frac)))
        return min_ratio + (1.0 - min_ratio) * decay

    return f


def build_optimizer(model: torch.nn.Module, cfg: Any, opt_steps_total: int):
    """(AdamW, LambdaLR) for the run config's ``optim`` section over ``opt_steps_total`` optimizer steps."""
    c = cfg.optim
    params = [p for p in model.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(params, lr=c.lr, betas=c.betas, weight_decay=c.weight_decay)
    warm = round(c.warmup_ratio * opt_steps_total)
    sched = torch.optim.lr_scheduler.LambdaLR(optim, lr_lambda(c.schedule, warm, opt_steps_total, c.min_lr_ratio))
    return optim, sched
