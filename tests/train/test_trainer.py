"""End-to-end trainer tests on the tiny task (CPU): every registered method, resume, bad input."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from support import TINY, tiny_overrides

from luffy.cli.train import train
from luffy.config import load_run_config
from luffy.train import Trainer

METHOD_FILES = sorted(p.name for p in TINY.glob("*.yaml"))


def _cfg(name, task_dir, model, **extra):
    sets = tiny_overrides(task_dir, model, **extra)
    cfg = load_run_config(TINY / name, sets)
    if cfg.method == "sft":
        cfg = load_run_config(TINY / name, sets + ["train.epochs=1", "train.prompts_per_step=32",
                                                   "train.mini_batch_prompts=32"])
    return cfg


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def test_every_tiny_experiment_config_is_covered():
    assert {"luffy.yaml", "on_policy.yaml", "rl_sft_loss.yaml", "sft.yaml", "sft_rl.yaml"} <= set(METHOD_FILES)


@pytest.mark.parametrize("name", METHOD_FILES)
def test_two_step_run_per_method_hf(name, task_dir, base_model, tmp_path):
    cfg = _cfg(name, task_dir, base_model)
    summary = train(cfg, tmp_path / "run", progress=False)
    out = tmp_path / "run"
    recs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in recs if r["step"] > 0]
    assert steps == [1, 2]
    assert (out / "resolved_config.yaml").is_file() and (out / "summary.json").is_file()
    assert summary["steps"] == 2
    before, after = _weights(base_model), _weights(out / "model")
    assert any(not torch.equal(before[k], after[k]) for k in before), "training changed no weight"
    last = recs[-1]
    assert "val/accuracy" in last and 0.0 <= last["val/accuracy"] <= 1.0
    if cfg.method == "rl":
        assert {"reward/mean", "entropy/all", "actor/pg_loss", "optim/grad_norm", "time/gen"} <= set(last)
        if cfg.group.n_off:
            assert last["actor/n_off_tokens"] > 0 or cfg.off_policy_objective == "sft"
            assert last["reward/timeouts"] == 0 and last["data/truncated_traces"] == 0, last
            assert last["reward/off"] == 1.0, last  # the teacher traces are always correct
    else:
        assert last["actor/sft_loss"] > 0


def _comparable(path: Path) -> list[dict]:
    out = []
    for line in path.read_text().splitlines():
        r = json.loads(line)
        out.append({k: v for k, v in r.items() if not k.startswith(("time/", "tokens_per_s"))})
    return out


def test_resume_equals_uninterrupted_run(task_dir, base_model, tmp_path):
    cfg = _cfg("luffy.yaml", task_dir, base_model, steps=4)
    train(cfg, tmp_path / "a", progress=False)
    t = Trainer(cfg, tmp_path / "b", progress=False, stop_after=2)
    assert t.run() == {"stopped_at": 2}
    t.close()
    assert not (tmp_path / "b" / "summary.json").exists()
    train(cfg, tmp_path / "b", progress=False)
    wa, wb = _weights(tmp_path / "a" / "model"), _weights(tmp_path / "b" / "model")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert _comparable(tmp_path / "a" / "metrics.jsonl") == _comparable(tmp_path / "b" / "metrics.jsonl")


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "luffy", *args], capture_output=True, text=True,
                          timeout=600, check=False)


def test_finished_run_says_nothing_to_do(task_dir, base_model, tmp_path):
    sets = tiny_overrides(task_dir, base_model, steps=1)
    cmd = ["train", "--config", str(TINY / "on_policy.yaml"), "--out", str(tmp_path / "r"), "--no-progress"]
    for s in sets:
        cmd += ["--set", s]
    assert _cli(*cmd).returncode == 0
    again = _cli(*cmd)
    assert again.returncode == 0 and "already finished" in again.stderr


@pytest.mark.parametrize(
    "extra, match",
    [
        (["group.n_off=2"], "has 1 trace(s) but group.n_off = 2"),
        (["model.path=/nonexistent/model-folder"], "/nonexistent/model-folder"),
        (["group.n_on=0", "group.n_off=0"], "at least one member"),
        (["loss.shaping.gamma=0"], "gamma must be > 0"),
        (["trainn.steps=3"], "trainn: unknown key"),
    ],
)
def test_bad_input_is_one_clear_line(extra, match, task_dir, base_model, tmp_path):
    cmd = ["train", "--config", str(TINY / "luffy.yaml"), "--out", str(tmp_path / "r"), "--no-progress"]
    for s in tiny_overrides(task_dir, base_model) + extra:
        cmd += ["--set", s]
    r = _cli(*cmd)
    assert r.returncode == 2, r.stderr[-2000:]
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("luffy: error:")]
    assert len(lines) == 1 and match in lines[0], r.stderr[-2000:]
    assert "Traceback" not in r.stderr


def test_bad_data_files(task_dir, base_model, tmp_path):
    rows = [json.loads(x) for x in (task_dir / "train.jsonl").read_text().splitlines()]
    bad = tmp_path / "bad.jsonl"
    broken = dict(rows[3])
    broken["traces"] = [{"text": "", "teacher": None}]
    bad.write_text("\n".join(json.dumps(r) for r in rows[:3] + [broken]) + "\n")
    cmd = ["train", "--config", str(TINY / "luffy.yaml"), "--out", str(tmp_path / "r"), "--no-progress"]
    for s in tiny_overrides(task_dir, base_model) + [f"data.train={bad}"]:
        cmd += ["--set", s]
    r = _cli(*cmd)
    assert r.returncode == 2 and "bad.jsonl" in r.stderr and "Traceback" not in r.stderr, r.stderr[-1500:]
    missing = tmp_path / "missing.jsonl"
    missing.write_text("\n".join(json.dumps({k: v for k, v in r_.items() if k != "answer"}) for r_ in rows[:4]))
    cmd[cmd.index(f"data.train={bad}")] = f"data.train={missing}"
    r = _cli(*cmd)
    assert r.returncode == 2 and "missing.jsonl" in r.stderr and "answer" in r.stderr, r.stderr[-1500:]


def test_long_traces_are_truncated_and_counted(task_dir, base_model, tmp_path):
    cfg = _cfg("luffy.yaml", task_dir, base_model, steps=1, **{"data.max_response_tokens": 12})
    train(cfg, tmp_path / "r", progress=False)
    rec = json.loads((tmp_path / "r" / "metrics.jsonl").read_text().splitlines()[-1])
    assert rec["data/truncated_traces"] == 4  # every trace is longer than 12 tokens


@pytest.mark.vllm
@pytest.mark.parametrize("name", ["luffy.yaml", "rl_sft_loss.yaml"])
def test_two_step_run_vllm_engine(name, task_dir, base_model, tmp_path):
    cfg = _cfg(name, task_dir, base_model, **{"rollout.engine": "vllm"})
    summary = train(cfg, tmp_path / "run", progress=False)
    assert summary["engine"] == "vllm"
    recs = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs if r["step"] > 0] == [1, 2]
    assert recs[-1]["reward/off"] == 1.0


def test_changed_config_starts_over_and_keeps_the_old_run(task_dir, base_model, tmp_path):
    cfg = _cfg("luffy.yaml", task_dir, base_model, steps=3)
    t = Trainer(cfg, tmp_path / "r", progress=False, stop_after=1)
    t.run()
    t.close()
    changed = _cfg("luffy.yaml", task_dir, base_model, steps=3, **{"loss.shaping.gamma": 0.5})
    train(changed, tmp_path / "r", progress=False)
    (old,) = (tmp_path / "r" / "previous").iterdir()
    assert old.name.endswith("-config-changed")
    assert "gamma: 0.1" in (old / "resolved_config.yaml").read_text()
    assert [r["step"] for r in map(json.loads, (old / "metrics.jsonl").read_text().splitlines())] == [0, 1]
    assert "gamma: 0.5" in (tmp_path / "r" / "resolved_config.yaml").read_text()
    recs = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs] == [0, 1, 2, 3]  # from step 0, not from the old checkpoint