"""The smoke config through the whole DAG for real (every rule type runs once), then a re-run
that finds nothing to do. Slow (a few minutes on 2 cores): marked ``slow``, and run by CI."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SNAKEMAKE = ROOT / ".venv-wf" / "bin" / "snakemake"


def snakemake_bin() -> Path:
    """The workflow driver (fails, not skips, when the setup script has not been run)."""
    if not SNAKEMAKE.is_file():
        pytest.fail(f"{SNAKEMAKE} is missing: create the workflow environment with `bash scripts/setup.sh`")
    return SNAKEMAKE


def runtime_env() -> dict[str, str]:
    """The environment of a real workflow run: the runtime environment first on PATH, since the rules
    run `python -m luffy` (the driver itself lives in .venv-wf)."""
    return dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")


@pytest.mark.slow
def test_smoke_dag_runs_end_to_end(tmp_path):
    out = tmp_path / "smoke"
    env = runtime_env()
    cmd = [str(snakemake_bin()), "--cores", "2", "--configfile=config/smoke.yaml", "--config", f"results={out}",
           "--", "all"]
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
    again = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert again.returncode == 0 and "Nothing to be done" in (again.stdout + again.stderr)
