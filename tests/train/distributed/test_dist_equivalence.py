"""Done-when 1 of issue #6: a 2-worker Ray + gloo + FSDP2 run equals the single-process run.

Same config, batch and seed; only ``resources`` differs. The tiny model in float32, HF engine,
2 RL steps of 2 mini-batches; ``train.micro_batch_seqs = 3`` splits each mini-batch of 8
sequences into 3 micro-batches, so rank 0 runs two and rank 1 one plus a padding pass.
Tolerance: every final weight within 1e-6 (absolute, float32) and every logged metric within
1e-5 relative / 1e-6 absolute (times excluded).
"""

from __future__ import annotations

from support import TINY, assert_same_metrics, max_abs_diff, metric_records, ray_sets, tiny_sets, weights

from luffy.cli.train import train
from luffy.config import load_run_config

ATOL_W = 1e-6


def test_two_ray_workers_equal_one_process(task_dir, base_model, tmp_path, ray_local):
    sets = tiny_sets(task_dir, base_model)
    one = load_run_config(TINY / "luffy.yaml", sets)
    two = load_run_config(TINY / "luffy.yaml", sets + [f"{k}={v}" for k, v in ray_sets(2).items()])
    train(one, tmp_path / "one", progress=False)
    summary = train(two, tmp_path / "two", progress=False)
    assert summary["steps"] == 2

    w1, w2, w0 = weights(tmp_path / "one" / "model"), weights(tmp_path / "two" / "model"), weights(base_model)
    diff = max_abs_diff(w1, w2)
    print(f"max |w_one - w_two| = {diff:.3g}")
    assert diff <= ATOL_W
    assert max_abs_diff(w0, w1) > 1e-4, "training changed no weight: the comparison would be empty"

    r1, r2 = metric_records(tmp_path / "one" / "metrics.jsonl"), metric_records(tmp_path / "two" / "metrics.jsonl")
    assert_same_metrics(r1, r2, [0, 1, 2])
    assert r1[-1]["actor/pg_loss"] != 0.0 and r1[-1]["optim/grad_norm"] > 0
    ckpt = tmp_path / "two" / "checkpoints" / "step_000002"
    assert (ckpt / "COMPLETE").is_file() and (ckpt / "shards" / ".metadata").is_file()
