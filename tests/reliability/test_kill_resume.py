"""Preemption: ``kill -9`` a tiny training run at random moments, resume, compare with an uninterrupted run.

Each trial SIGKILLs ``python -m luffy train`` either at a chosen phase of a random step (a drill, see
``luffy.train.drills.parse_drill``: mid-rollout, after grading, mid-update, between the metrics line
and the checkpoint, inside a checkpoint write, between the final model and summary.json) or from
outside, at a random moment of the loop: after a random number of finished steps (0 .. STEPS-1, read
off ``metrics.jsonl``), a random part (up to 90%) of the uninterrupted run's mean step time. Counting
steps, not seconds, keeps the kill inside the run however fast this run is compared with the
reference. Then ``--resume auto`` (the default) runs the same command to the end.
The final weights must be bitwise equal to the uninterrupted run's and the metrics equal except
wall-clock fields; no helper process may outlive the killed trainer; a half-written checkpoint must
never be listed as complete. CI runs 3 trials, ``make reliability`` 10 (``LUFFY_KILL_TRIALS``).
"""

from __future__ import annotations

import json
import random
import re
import time

import pytest
from support import (
    comparable_metrics,
    group_gone,
    kill_during_loop,
    n_trials,
    record,
    run,
    same_weights,
    start_session,
    train_cmd,
)

from luffy.train.run_files import CheckpointManager

STEPS = 5
#: The trial plan: CI's first three cover a checkpoint write, an update and an outside kill.
PLAN = ["checkpoint", "update", "timer", "gen", "metrics", "reward", "finish", "timer", "timer", "checkpoint"]


@pytest.fixture(scope="module")
def reference(task_dir, base_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    r = run(train_cmd("luffy.yaml", task_dir, base_model, out, STEPS))
    assert r.returncode == 0, r.stderr[-3000:]
    loop_s = sum(json.loads(ln).get("time/step", 0.0) for ln in (out / "metrics.jsonl").read_text().splitlines())
    return out, loop_s


def _trial(i: int, kind: str, reference, task_dir, base_model, tmp_path) -> dict:
    ref_dir, loop_s = reference
    rng = random.Random(f"kill-trial-{i}")
    out = tmp_path / f"trial{i}"
    cmd = train_cmd("luffy.yaml", task_dir, base_model, out, STEPS)
    fig: dict = {"trial": i, "kind": kind}
    if kind == "timer":
        # not after the last-but-one step: a kill timed from the reference's step time must land
        # before the run ends even when this run is faster (a whole step plus the finish remain)
        fig["after_step"] = rng.randint(0, STEPS - 2)
        fig["delay_s"] = round(rng.uniform(0.0, 0.9) * loop_s / STEPS, 2)
        rc, pgid = kill_during_loop(cmd, out, fig["delay_s"], after_records=fig["after_step"] + 1)
    else:
        fig["step"] = STEPS if kind == "finish" else rng.randint(1, STEPS)
        p = start_session(cmd, env={"LUFFY_DRILL": f"{kind}:{fig['step']}"})
        rc, pgid = p.wait(timeout=600), p.pid
        assert rc == -9, f"trial {i}: the drill {kind}:{fig['step']} did not kill the run (exit {rc})"
    fig["killed"] = rc == -9
    assert fig["killed"], f"trial {i}: the run ended (exit {rc}) before the kill"
    # nothing is left running: grading workers and the forkserver leave with the trainer
    fig["orphans_gone"] = group_gone(pgid, 20.0)
    assert fig["orphans_gone"], f"trial {i}: processes of the killed run still alive after 20 s"
    ckpt = CheckpointManager(out / "checkpoints")
    listed = [s for s, _ in ckpt.complete()]
    on_disk = sorted(int(d.name[5:]) for d in (out / "checkpoints").glob("step_*")) if (
        out / "checkpoints").is_dir() else []
    assert listed == on_disk, f"trial {i}: a checkpoint folder without COMPLETE was listed"
    fig["checkpoint_at_kill"] = listed[-1] if listed else 0
    t0 = time.monotonic()
    r = run(cmd)
    fig["resume_s"] = round(time.monotonic() - t0, 2)
    assert r.returncode == 0, f"trial {i}: resume failed: {r.stderr[-2000:]}"
    m = re.search(r"resume: continuing from \S+ \(step (\d+) of", r.stdout + r.stderr)
    fig["resumed_from"] = int(m.group(1)) if m else 0
    if fig["killed"]:
        assert fig["resumed_from"] == fig["checkpoint_at_kill"], (fig, (r.stdout + r.stderr)[-2000:])
    fig["weights_equal"] = same_weights(ref_dir / "model", out / "model")
    fig["metrics_equal"] = comparable_metrics(ref_dir) == comparable_metrics(out)
    return fig


@pytest.mark.parametrize("i", range(n_trials(3)))
def test_kill_and_resume_matches_uninterrupted_run(i, reference, task_dir, base_model, tmp_path):
    kind = PLAN[i % len(PLAN)]
    fig = _trial(i, kind, reference, task_dir, base_model, tmp_path)
    record(f"kill_trial_{i:02d}", fig)
    assert fig["weights_equal"], fig
    assert fig["metrics_equal"], fig
