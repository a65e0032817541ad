"""The smoke config through the whole DAG for real (every rule type runs once), driven as on a
cluster: by a snakemake that is not one of the project's environments, with a PATH that holds
neither of them (the rules find the runtime through the `python` config key). Then: a re-run that
finds nothing to do, the released-checkpoint target, and a forced rerun of one finished run whose
first attempt is killed: it trains from step 0 (the old run kept under previous/), the retry
resumes, and the job log keeps both attempts. Slow (minutes on 2 cores): marked ``slow``, run by CI."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BARE_PATH = "/usr/bin:/bin"


@pytest.fixture(scope="module")
def foreign_snakemake(tmp_path_factory) -> Path:
    """snakemake (the locked version) in a new virtual environment outside the repository."""
    venv = tmp_path_factory.mktemp("foreign") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    pin = next(line for line in (ROOT / "constraints" / "workflow.txt").read_text().splitlines()
               if line.startswith("snakemake=="))
    r = subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q",
                        "-c", str(ROOT / "constraints" / "workflow.txt"), pin], capture_output=True, text=True,
                       timeout=900, check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    return venv / "bin" / "snakemake"


def bare_env(**extra: str) -> dict[str, str]:
    """No project environment on PATH, no PYTHONPATH: what a cluster user's shell has."""
    env = {"PATH": BARE_PATH, "HOME": os.environ.get("HOME", "/tmp"), "LANG": "C.UTF-8", **extra}
    assert "luffy" not in env["PATH"] and ".venv" not in env["PATH"]
    return env


@pytest.mark.slow
def test_smoke_dag_runs_end_to_end(tmp_path, foreign_snakemake, base_model):
    out = tmp_path / "smoke"
    env = bare_env()
    # released: the session's untrained tiny model stands in for a released checkpoint (offline)
    cmd = [str(foreign_snakemake), "--cores", "2", "--configfile=config/smoke.yaml", "--config", f"results={out}",
           f"released={{luffy: {base_model}}}", "--", "all", "released"]
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800, check=False)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    for name in ("table1", "table4", "gamma"):
        for ext in ("md", "csv", "tex"):
            assert (out / "reports" / f"{name}.{ext}").stat().st_size > 0
    figs = {p.name for p in (out / "reports" / "figures").iterdir()}
    for kind in ("entropy", "training", "off_policy_prob", "validation", "ablations", "gamma_sweep", "shaping"):
        assert {f"{kind}.png", f"{kind}.pdf"} <= figs
    summary = json.loads((out / "runs" / "luffy-s0" / "summary.json").read_text())
    assert summary["steps"] == 2
    assert (out / "runs" / "luffy-s0" / "resolved_config.yaml").is_file()
    for ckpt in ("final", "best_val"):
        suite = json.loads((out / "eval" / "luffy-s0" / ckpt / "suite.json").read_text())
        assert suite["checkpoint"] == ckpt
    # two steps, validated at the last one: best_val is the final model, its samples are reused
    assert json.loads((out / "runs" / "luffy-s0" / "best_val.json").read_text())["step"] == 2
    assert suite["reused_samples"]["benchmarks"] == ["tiny_id", "tiny_ood"]
    assert json.loads((out / "eval" / "base" / "suite.json").read_text())["checkpoint"] == "base"
    claims = (out / "reports" / "claims.csv").read_text().splitlines()
    assert claims[0] == "claim,left,right,metric,diff,ci_low,ci_high,n_seeds,holds,note" and len(claims) == 6
    assert "best-validation checkpoint of each run" in (out / "reports" / "table1.md").read_text()
    released = (out / "reports" / "released.md").read_text()
    assert "released checkpoints" in released and "LUFFY" in released, released
    assert json.loads((out / "eval" / "released" / "luffy" / "suite.json").read_text())["checkpoint"] == "released"
    assert (out / "benchmarks" / "train" / "luffy-s0.tsv").is_file()
    assert (out / "benchmarks" / "eval" / "luffy-s0" / "final.tsv").is_file()
    again = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert again.returncode == 0 and "Nothing to be done" in (again.stdout + again.stderr)

    # -R on a finished run: from step 0; its first attempt is killed mid-update of step 2, the retry resumes
    run, summary = out / "runs" / "luffy-s0", str(out / "runs" / "luffy-s0" / "summary.json")
    marker = tmp_path / "killed-once"
    forced = [str(foreign_snakemake), "--cores", "1", "--configfile=config/smoke.yaml", "--config", f"results={out}",
              "--retries", "1", "--forcerun", summary, "--", summary]
    r = subprocess.run(forced, cwd=ROOT, env=bare_env(LUFFY_DRILL=f"update:2:{marker}"), capture_output=True,
                       text=True, timeout=900, check=False)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    assert marker.is_file(), "the first attempt was not killed"
    (old,) = (run / "previous").iterdir()
    assert old.name.endswith("-finished") and (old / "model").is_dir()
    assert [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()] == [0, 1, 2]
    attempts = (out / "logs" / "train" / "luffy-s0.attempts.log").read_text()
    assert len(re.findall(r"^=== attempt started", attempts, re.MULTILINE)) == 3, attempts  # the DAG's, then two
    assert "moved to" in attempts and "resume: continuing from" in attempts
    last = (out / "logs" / "train" / "luffy-s0.log").read_text()
    assert last.count("=== attempt started") == 1 and "resume: continuing from" in last
