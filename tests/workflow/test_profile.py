"""`snakemake --profile slurm all`, typed as is, is the paper; the tiny study is one flag away.

Dry runs only (no cluster needed: the Slurm executor plugin plans jobs without Slurm binaries). They
plan every job (``--forceall``), so a checkout that already holds a finished study still counts them.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SNAKEMAKE = ROOT / ".venv-wf" / "bin" / "snakemake"


def _dry(*args: str) -> str:
    r = subprocess.run([str(SNAKEMAKE), "-n", "--forceall", "--profile", "slurm", *args], cwd=ROOT, capture_output=True,
                       text=True, timeout=180, check=False)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r.stdout


def _train_jobs(out: str) -> list[str]:
    """The text of each planned `rule train:` job."""
    return [block for block in out.split("\nrule ")[1:] if block.startswith("train:")]


def test_profile_alone_is_the_paper():
    out = _dry("all")
    jobs = _train_jobs(out)
    assert len(jobs) == 13, f"{len(jobs)} train jobs"
    for job in jobs:
        assert "results/paper/runs/" in job
        assert re.search(r"\bgpu=8\b", job), job[:2000]


def test_tiny_study_is_one_flag_away():
    out = _dry("--configfile=config/config.yaml", "all")
    jobs = _train_jobs(out)
    assert len(jobs) == 9 * 3 + 4  # Tables 1 and 4 x 3 seeds, the other gammas x 1
    assert all("results/tiny/runs/" in j and not re.search(r"\bgpu=[1-9]", j) for j in jobs)
    assert "results/paper" not in out


def test_one_ablation_group_at_paper_scale():
    jobs = _train_jobs(_dry("ablations"))
    names = sorted(re.search(r"results/paper/runs/([\w.]+)-s\d+", j)[1] for j in jobs)
    assert names == sorted(["mixed_clip", "mixed_shaping_clip", "luffy", "on_policy", "on_policy_shaping",
                            "on_policy_noclip"])
