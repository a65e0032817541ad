"""Numerical faults and determinism of the trainer (CPU, tiny model, in-process).

* A NaN/inf loss or gradient: the optimizer step is refused, the step is logged with its prompt ids
  (log line and ``metrics.jsonl``: ``skipped_update``, ``batch_ids``), the weights do not change, and
  after ``train.max_bad_steps`` consecutive refusals the run stops with the last good checkpoint kept.
* The same config and seed on CPU give identical metrics (except wall-clock fields) and weights twice.
"""

from __future__ import annotations

import json

import pytest
import torch
from support import TINY, comparable_metrics, record, same_weights, tiny_overrides

from luffy.cli.train import train
from luffy.config import load_run_config
from luffy.train import Trainer, TrainingError
from luffy.train import update as update_mod
from luffy.train.run_files import CheckpointManager


def _cfg(task_dir, model, steps, *extra):
    return load_run_config(TINY / "luffy.yaml",
                           tiny_overrides(task_dir, model, steps=steps) + ["train.keep_checkpoints=10", *extra])


@pytest.fixture
def poison(monkeypatch):
    """``poison["loss"]`` / ``poison["grad"]``: steps whose loss / gradient is made non-finite."""
    spec: dict = {"loss": set(), "grad": set(), "step": 0}
    orig_step, orig_loss = Trainer.rl_step, update_mod.policy_loss

    def rl_step(self, step):
        spec["step"] = step
        hooks = []
        if step in spec["grad"]:
            p = next(self.model.parameters())
            hooks.append(p.register_hook(lambda g: g * float("inf")))
        try:
            return orig_step(self, step)
        finally:
            for h in hooks:
                h.remove()

    def policy_loss(*a, **k):
        loss, m = orig_loss(*a, **k)
        if spec["step"] in spec["loss"]:
            loss = loss * float("nan")
        return loss, m

    monkeypatch.setattr(Trainer, "rl_step", rl_step)
    monkeypatch.setattr(update_mod, "policy_loss", policy_loss)
    return spec


def _ckpt_weights(run, step):
    return torch.load(run / "checkpoints" / f"step_{step:06d}" / "model.pt", weights_only=True)


def _metrics(run):
    return {r["step"]: r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())}


@pytest.mark.parametrize("kind", ["loss", "grad"])
def test_non_finite_step_is_refused_and_logged(kind, poison, task_dir, base_model, tmp_path):
    poison[kind] = {3}
    logs: list[str] = []
    t = Trainer(_cfg(task_dir, base_model, 4), tmp_path / "r", progress=False, log=logs.append)
    try:
        t.run()
    finally:
        t.close()
    met = _metrics(tmp_path / "r")
    assert [met[s]["skipped_update"] for s in (1, 2, 3, 4)] == [False, False, True, False]
    assert len(met[3]["batch_ids"]) == 4 and "batch_ids" not in met[2]
    assert any(f"step 3: non-finite loss or gradient; update skipped (batch ids: {met[3]['batch_ids']}"
               in ln for ln in logs), logs
    w2, w3, w4 = (_ckpt_weights(tmp_path / "r", s) for s in (2, 3, 4))
    assert all(torch.equal(w2[k], w3[k]) for k in w2), "a refused step changed the weights"
    assert any(not torch.equal(w3[k], w4[k]) for k in w3), "training did not go on after the bad step"
    assert all(torch.isfinite(v).all() for v in w4.values())


def test_consecutive_failures_stop_the_run_keeping_the_last_good_checkpoint(poison, task_dir, base_model,
                                                                           tmp_path):
    poison["loss"] = {2, 3, 4}
    run = tmp_path / "r"
    with pytest.raises(TrainingError, match=r"3 consecutive non-finite steps at step 4; stopping"):
        train(_cfg(task_dir, base_model, 6, "train.max_bad_steps=3"), run, progress=False)
    assert _metrics(run)[4]["skipped_update"] is True  # the failing step is logged before the stop
    assert [s for s, _ in CheckpointManager(run / "checkpoints").complete()] == [1, 2, 3]
    w1, w3 = _ckpt_weights(run, 1), _ckpt_weights(run, 3)
    assert all(torch.equal(w1[k], w3[k]) and torch.isfinite(w3[k]).all() for k in w1)
    assert not (run / "summary.json").exists() and not (run / "model").exists()


def test_same_config_and_seed_give_identical_runs(task_dir, base_model, tmp_path):
    cfg = _cfg(task_dir, base_model, 3)
    train(cfg, tmp_path / "a", progress=False)
    train(cfg, tmp_path / "b", progress=False)
    equal_metrics = comparable_metrics(tmp_path / "a") == comparable_metrics(tmp_path / "b")
    equal_weights = same_weights(tmp_path / "a" / "model", tmp_path / "b" / "model")
    record("determinism", {"steps": 3, "metrics_equal": equal_metrics, "weights_bitwise_equal": equal_weights})
    assert equal_metrics and equal_weights
