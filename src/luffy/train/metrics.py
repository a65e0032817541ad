"""The per-step metrics of an RL step (rewards, groups, advantages, lengths); the update's own metrics
(losses, entropies, grad-norm) are :func:`luffy.train.update.summarize`."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..rollout.groups import Member


def rl_step_metrics(members: list[Member], n_prompts: int, rewards: torch.Tensor, gids: torch.Tensor,
                    is_off: torch.Tensor, adv: torch.Tensor, truncated_traces: int, n_timeouts: int,
                    n_errors: int) -> dict[str, Any]:
    """Metrics of one step's N members: ``rewards``/``adv`` float[N], ``gids`` int[N], ``is_off`` bool[N]."""
    on = ~is_off
    grp_r = [rewards[gids == g] for g in range(n_prompts)]
    resp_len = torch.tensor([len(m.response_ids) for m in members], dtype=torch.float32)
    nan = float("nan")
    return {
        "reward/mean": float(rewards.mean()),
        "reward/on": float(rewards[on].mean()) if on.any() else nan,
        "reward/off": float(rewards[is_off].mean()) if is_off.any() else nan,
        "groups/solve_all": sum(int(r.min() == 1) for r in grp_r),
        "groups/solve_none": sum(int(r.max() == 0) for r in grp_r),
        "adv/mean": float(adv.mean()), "adv/max": float(adv.max()), "adv/min": float(adv.min()),
        "length/on": float(resp_len[on].mean()) if on.any() else nan,
        "length/off": float(resp_len[is_off].mean()) if is_off.any() else nan,
        "length/clip_ratio": float(np.mean([m.finish_reason == "length" for m in members])),
        "reward/timeouts": n_timeouts, "reward/errors": n_errors,
        "data/truncated_traces": truncated_traces,
    }


def progress_line(step: int, total: int, met: dict[str, Any], last_val: tuple[int, float] | None,
                  step_times: list[float]) -> str:
    """One plain line for a job log: step, reward, entropy, the latest validation, s/step and ETA
    (the mean step time of this process so far × the steps left)."""
    parts = [f"step {step}/{total}"]
    if "reward/mean" in met:
        parts.append(f"reward {met['reward/mean']:.3f} (on {met.get('reward/on', float('nan')):.3f})")
    if "actor/sft_loss" in met:
        parts.append(f"sft_loss {met['actor/sft_loss']:.4f}")
    ent = met.get("entropy/on", met.get("entropy/all"))
    if ent is not None:
        parts.append(f"entropy {ent:.3f}")
    if last_val is not None:
        parts.append(f"val {last_val[1]:.3f} (step {last_val[0]})")
    if step_times:
        mean = sum(step_times) / len(step_times)
        eta = round(mean * (total - step))
        parts.append(f"{mean:.2f} s/step, ETA {eta // 3600}:{eta % 3600 // 60:02d}:{eta % 60:02d}")
    if met.get("skipped_update"):
        parts.append("update skipped")
    return "train: " + " | ".join(parts)


def progress_bar(total: int, start: int, desc: str):
    """A tqdm bar over the run's steps (interactive runs; job logs use :func:`progress_line`)."""
    from tqdm import tqdm

    return tqdm(total=total, initial=start, desc=desc, unit="step", dynamic_ncols=True)
