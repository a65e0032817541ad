"""fp32 master weights in both backends (method §8): with ``model.dtype: bfloat16`` the compute is bf16
but the weights and AdamW state stay float32, so an update at lr 1e-6 changes (almost) every weight.

With bf16 weights most such updates round to zero: a bf16 number near 0.05 has a spacing of 2.4e-4,
far above one AdamW step of ~1e-6.
"""

from __future__ import annotations

import pytest
import torch
from support import TINY, ray_sets, tiny_sets, weights

from luffy.cli.train import train
from luffy.config import load_run_config

LR_SETS = {"optim.lr": 1e-6, "model.dtype": "bfloat16", "train.steps": 1}


def _changed_fraction(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> float:
    n = sum(v.numel() for v in before.values())
    return sum(int((before[k] != after[k]).sum()) for k in before) / n


def _check(run, base_model):
    w0, w1 = weights(base_model), weights(run / "model")
    assert all(v.dtype == torch.float32 for v in w1.values()), {k: v.dtype for k, v in w1.items()}
    frac = _changed_fraction(w0, w1)
    print(f"fraction of weights changed by one update at lr 1e-6: {frac:.3f}")
    assert frac > 0.5


def test_local_trainer_keeps_fp32_masters(task_dir, base_model, tmp_path):
    cfg = load_run_config(TINY / "luffy.yaml", tiny_sets(task_dir, base_model, **LR_SETS))
    train(cfg, tmp_path / "local", progress=False)
    _check(tmp_path / "local", base_model)


@pytest.mark.usefixtures("ray_local")
def test_ray_workers_keep_fp32_masters(task_dir, base_model, tmp_path):
    sets = tiny_sets(task_dir, base_model, **LR_SETS) + [f"{k}={v}" for k, v in ray_sets(2).items()]
    train(load_run_config(TINY / "luffy.yaml", sets), tmp_path / "ray", progress=False)
    _check(tmp_path / "ray", base_model)


def test_local_trainer_computes_in_bf16(task_dir, base_model, tmp_path):
    from luffy.train import Trainer

    cfg = load_run_config(TINY / "luffy.yaml", tiny_sets(task_dir, base_model, **LR_SETS))
    t = Trainer(cfg, tmp_path / "hook", progress=False, log=lambda *a, **k: None)
    try:
        t.setup()
        seen: list[torch.dtype] = []
        layer = t.model.model.layers[0].mlp.down_proj  # a matmul: bf16 under autocast
        hook = layer.register_forward_hook(lambda m, a, out: seen.append(out.dtype))
        t.rl_step(1)
        hook.remove()
    finally:
        t.close()
    assert next(t.model.parameters()).dtype == torch.float32
    assert seen and set(seen) == {torch.bfloat16}, set(seen)
