"""The best-validation checkpoint (``best_val/``) is the model of the validation with the highest
accuracy after step 0, also across a resume (method §5.1: the reference keeps that checkpoint)."""

from __future__ import annotations

import json

import pytest
import torch
from support import TINY, tiny_overrides, weights

from luffy.cli.train import train
from luffy.config import load_run_config
from luffy.train import Trainer

#: validation accuracy by step; step 0 (the base model) is the highest but is not a candidate
CURVE = {0: 0.9, 2: 0.25, 4: 0.75, 6: 0.5, 8: 0.75}


@pytest.fixture
def known_curve(monkeypatch):
    """Trainer.validate returns CURVE[step] and records a copy of the weights it saw."""
    seen: dict[int, dict[str, torch.Tensor]] = {}

    def validate(self, step):
        seen[step] = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        return {"val/accuracy": CURVE[step], "val/n": 4}

    monkeypatch.setattr(Trainer, "validate", validate)
    return seen


def _cfg(task_dir, base_model):
    return load_run_config(TINY / "luffy.yaml", tiny_overrides(task_dir, base_model, steps=8, **{
        "train.val_every": 2, "train.save_every": 3, "train.prompts_per_step": 2, "train.mini_batch_prompts": 2,
        "model.dtype": "float32"}))


def _check(run, seen):
    info = json.loads((run / "best_val.json").read_text())
    assert info == {"step": 4, "val_accuracy": 0.75}          # 0.75 again at step 8: the earlier one wins
    summary = json.loads((run / "summary.json").read_text())
    assert (summary["best_val_step"], summary["best_val_accuracy"]) == (4, 0.75)
    best = weights(run / "best_val")
    assert all(torch.equal(best[k], seen[4][k]) for k in best)
    assert any(not torch.equal(best[k], seen[8][k]) for k in best)  # not the final model


def test_best_val_is_the_highest_validation(task_dir, base_model, tmp_path, known_curve):
    train(_cfg(task_dir, base_model), tmp_path / "r", progress=False)
    _check(tmp_path / "r", known_curve)


def test_best_val_survives_a_resume(task_dir, base_model, tmp_path, known_curve):
    cfg = _cfg(task_dir, base_model)
    t = Trainer(cfg, tmp_path / "r", progress=False, stop_after=7)  # checkpoint at 6, steps 7.. rerun
    assert t.run() == {"stopped_at": 7}
    t.close()
    train(cfg, tmp_path / "r", progress=False)
    _check(tmp_path / "r", known_curve)
