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
    suite = json.loads((out / "eval" / "luffy-s0" / "suite.json").read_text())
    assert suite
    again = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert again.returncode == 0 and "Nothing to be done" in (again.stdout + again.stderr)
