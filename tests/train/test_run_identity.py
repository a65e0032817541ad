"""A run folder holds one run of one resolved config (luffy.train.run_files.set_aside_previous):
a forced rerun of a finished run (``snakemake -R`` removes summary.json) trains from step 0 and
keeps the old run under previous/; a killed run resumes; TensorBoard shows every step once."""

import json

from support import TINY, tiny_overrides

from luffy.cli.train import train
from luffy.config import load_run_config
from luffy.train import Trainer


def _cfg(task_dir, model, steps, **extra):
    return load_run_config(TINY / "luffy.yaml", tiny_overrides(task_dir, model, steps=steps, **extra))


def _steps(path):
    return [json.loads(line)["step"] for line in path.read_text().splitlines()]


def test_forced_rerun_of_a_finished_run_retrains_and_keeps_the_old_one(task_dir, base_model, tmp_path):
    out = tmp_path / "r"
    first = train(_cfg(task_dir, base_model, 2), out, progress=False)
    assert (out / "FINISHED").is_file() and first["steps"] == 2
    (out / "summary.json").unlink()  # what snakemake -R / --forcerun does before rerunning the job
    lines = []
    t = Trainer(_cfg(task_dir, base_model, 2), out, progress=False, log=lines.append)
    t.run()
    t.close()
    (old,) = (out / "previous").iterdir()
    assert old.name.endswith("-finished")
    assert {"model", "metrics.jsonl", "resolved_config.yaml", "FINISHED", "checkpoints"} <= {p.name for p in old.iterdir()}
    assert not any("resume:" in line for line in lines), lines
    assert any("moved to" in line for line in lines), lines
    assert _steps(out / "metrics.jsonl") == [0, 1, 2]
    assert (out / "summary.json").is_file() and (out / "FINISHED").is_file()


def test_killed_run_resumes_in_place(task_dir, base_model, tmp_path):
    out = tmp_path / "r"
    t = Trainer(_cfg(task_dir, base_model, 3), out, progress=False, stop_after=2)
    t.run()
    t.close()
    assert not (out / "FINISHED").exists()
    lines = []
    t = Trainer(_cfg(task_dir, base_model, 3), out, progress=False, log=lines.append)
    t.run()
    t.close()
    assert any("resume: continuing from" in line and "step 2 of 3" in line for line in lines), lines
    assert not (out / "previous").exists()


def test_tensorboard_shows_each_step_once_after_a_resume(task_dir, base_model, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "r"
    # checkpoints at steps 2 and 4 only: the first attempt logs step 3, then stops; the resume
    # restarts from step 2's checkpoint and logs step 3 again
    t = Trainer(_cfg(task_dir, base_model, 4, **{"train.save_every": 2}), out, progress=False, stop_after=3)
    t.run()
    t.close()
    t = Trainer(_cfg(task_dir, base_model, 4, **{"train.save_every": 2}), out, progress=False)
    t.run()
    t.close()
    acc = EventAccumulator(str(out / "tb"))
    acc.Reload()
    steps = [e.step for e in acc.Scalars("reward/mean")]
    assert steps == [1, 2, 3, 4], steps


class _FakeWandbRun:
    def __init__(self, calls):
        self.calls = calls

    def log(self, scalars, step):
        self.calls.append(("log", step, scalars))

    def finish(self):
        self.calls.append(("finish",))


def test_wandb_logging_is_off_by_default_and_offline_capable(task_dir, base_model, tmp_path, monkeypatch):
    import sys
    import types

    calls = []
    fake = types.SimpleNamespace(init=lambda **kw: calls.append(("init", kw)) or _FakeWandbRun(calls))
    monkeypatch.setitem(sys.modules, "wandb", fake)
    train(_cfg(task_dir, base_model, 2), tmp_path / "off", progress=False)
    assert calls == []  # default: off
    train(_cfg(task_dir, base_model, 2, **{"train.wandb": "offline"}), tmp_path / "on", progress=False)
    (init,) = [c[1] for c in calls if c[0] == "init"]
    assert init["mode"] == "offline" and init["dir"] == str(tmp_path / "on") and init["resume"] == "allow"
    assert init["config"]["train"]["wandb"] == "offline"
    assert [c[1] for c in calls if c[0] == "log"] == [0, 1, 2]
    assert "reward/mean" in [c for c in calls if c[0] == "log"][1][2]
    assert calls[-1] == ("finish",)


def test_wandb_without_the_package_is_one_line(task_dir, base_model, tmp_path, monkeypatch):
    import sys

    import pytest

    from luffy.train import TrainingError

    monkeypatch.setitem(sys.modules, "wandb", None)  # import fails
    with pytest.raises(TrainingError, match=r"train.wandb: online needs the wandb package"):
        train(_cfg(task_dir, base_model, 2, **{"train.wandb": "online"}), tmp_path / "r", progress=False)
