"""Under Snakemake, a killed training job resumes from its checkpoints instead of restarting.

Checkpoints are not declared outputs (workflow/rules/train.smk), so Snakemake does not delete them
when a job fails or is rerun. Two preemptions of the smoke config's LUFFY run (4 steps, a
checkpoint after every step):

1. ``--retries 1``: the job is SIGKILLed mid-update of step 3 (a one-shot drill); Snakemake retries it
   and the retry continues from step 2.
2. The whole Snakemake process group (driver and job) is SIGKILLed once step 2's checkpoint is
   complete; ``snakemake --unlock`` then ``--rerun-incomplete`` continues from step 2 or later.

Both resumed runs end with bitwise-identical weights (the same seed and data; resume is exact).
Slow (two small DAG runs, ~2 min on 2 cores): marked ``slow``, run by CI.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from support import record, same_weights

ROOT = Path(__file__).resolve().parents[2]
SNAKEMAKE = ROOT / ".venv-wf" / "bin" / "snakemake"


def _snakemake(extra_cfg: Path, *args: str) -> list[str]:
    return [str(SNAKEMAKE), "--cores", "2", "--configfile", "config/smoke.yaml", str(extra_cfg), *args]


@pytest.mark.slow
def test_killed_training_job_resumes_under_snakemake(tmp_path):
    if not SNAKEMAKE.is_file():
        pytest.fail(f"{SNAKEMAKE} is missing: create the workflow environment with `bash scripts/setup.sh`")
    out = tmp_path / "res"
    extra = tmp_path / "extra.yaml"
    # no warm-up: its training job would be the first to reach the drill's update
    extra.write_text(yaml.safe_dump({"results": str(out), "base_model": {"warmup": None}, "train_overrides": [
        "train.steps=4", "train.prompts_per_step=4", "train.mini_batch_prompts=4", "train.val_every=0",
        "train.save_every=1", "data.val_limit=4"]}))
    target = f"{out}/runs/luffy-s0/summary.json"
    run_dir, log = out / "runs" / "luffy-s0", out / "logs" / "train" / "luffy-s0.log"
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    fig: dict = {}

    # 1. the job dies mid-update of step 3; --retries reruns it and it resumes
    marker = tmp_path / "drill-fired"
    r = subprocess.run(_snakemake(extra, "--retries", "1", "--", target), cwd=ROOT, capture_output=True,
                       text=True, timeout=1200, check=False, env={**env, "LUFFY_DRILL": f"update:3:{marker}"})
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    assert marker.is_file(), "the drill did not fire: the job was never killed"
    text = log.read_text()
    m = re.search(r"resume: continuing from \S+ \(step (\d+) of 4\)", text)
    assert m and int(m.group(1)) == 2, text[-3000:]
    fig["retries"] = {"killed_at": "update of step 3", "resumed_from": int(m.group(1))}
    weights_a = tmp_path / "model_a"
    (run_dir / "model").rename(weights_a)

    # 2. driver and job are SIGKILLed together after step 2's checkpoint; --rerun-incomplete resumes
    shutil.rmtree(run_dir)
    p = subprocess.Popen(_snakemake(extra, "--", target), cwd=ROOT, env=env, start_new_session=True,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    complete = run_dir / "checkpoints" / "step_000002" / "COMPLETE"
    deadline = time.monotonic() + 600
    while not complete.exists() and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert p.poll() is None, "snakemake ended before it could be killed"
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    assert not (run_dir / "summary.json").exists()
    again = _snakemake(extra, "--", target)
    blocked = subprocess.run(again, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert blocked.returncode != 0  # locked / incomplete: Snakemake refuses to guess
    subprocess.run(_snakemake(extra, "--unlock"), cwd=ROOT, env=env, capture_output=True, timeout=300, check=True)
    r = subprocess.run(_snakemake(extra, "--rerun-incomplete", "--", target), cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=1200, check=False)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    m = re.search(r"resume: continuing from \S+ \(step (\d+) of 4\)", log.read_text())
    assert m and int(m.group(1)) >= 2, log.read_text()[-3000:]
    fig["rerun_incomplete"] = {"killed_after_checkpoint": 2, "resumed_from": int(m.group(1))}
    fig["weights_equal"] = same_weights(weights_a, run_dir / "model")
    record("snakemake_resume", fig)
    assert fig["weights_equal"]
