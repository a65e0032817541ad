"""The Slurm profile and the Ray launcher on a real single-node Slurm cluster (issue #5, issue #6).

A session fixture starts the cluster with scripts/slurm-local.sh (Debian's slurmctld, slurmd,
slurm-client and munge, installed when missing; two fake GPUs; no accounting daemon, so the
profile is told to poll with squeue) and stops it at the end, also after a failure. It needs root
and apt-get; CI runs as root on Debian, so there it runs.

1. `snakemake --profile slurm --configfile config/smoke.yaml` builds a smaller target than `all` that
   still runs every rule type: `table1` (with table1 = [luffy]) and the training figure (with
   training = [luffy]). Slurm runs make_task, build_base_model, warm_up_base_model, train (luffy-s0),
   evaluate_base and evaluate (luffy-s0's final model and best_val checkpoint); section_config, table
   and figure are local rules. Checked: each of those seven jobs was
   submitted (the plugin's line with the Slurm job id and its log), ran as a Slurm job that Slurm
   records as COMPLETED with exit code 0 and the rule as comment, Snakemake saw it finish through
   squeue polling and went on, and the targets exist.
2. A train job made to fail (an unknown key in its --set overrides) ends Snakemake with a non-zero
   status and an error naming the rule; Slurm records the job as FAILED.
3. scripts/ray-slurm.sh with real Ray (the `ray` extra, installed by scripts/setup.sh) starts a
   one-node Ray cluster inside an sbatch job and inside an srun step of a job (how the Snakemake
   jobstep runs a rule), hands RAY_ADDRESS to the command, returns its exit status and stops the
   cluster; after `scancel` it stops the command and the cluster within seconds.

Multi-node placement and GPUs are not exercised (one machine, fake GPU devices);
tests/workflow/test_ray_launcher.py covers the launcher's multi-node code path with stand-ins.
"""

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from support import REPO as ROOT
from support import runtime_env, snakemake_bin

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

SLURM_LOCAL = ROOT / "scripts" / "slurm-local.sh"
LAUNCHER = ROOT / "scripts" / "ray-slurm.sh"
SLURM_RULES = {"make_task": 1, "build_base_model": 1, "warm_up_base_model": 1, "train": 1, "evaluate_base": 1,
               "evaluate": 2}
SUBMITTED = re.compile(r"Job (\d+) has been submitted with SLURM jobid (\d+) \(log: (\S+)\)\.")
RUN_ID = re.compile(r"SLURM run ID: (\S+)")


def cannot_start_slurm() -> str | None:
    if os.geteuid() != 0:
        return "needs root: scripts/slurm-local.sh installs Debian packages and runs slurmctld/slurmd as root"
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        return "needs apt-get and dpkg (Debian/Ubuntu): scripts/slurm-local.sh installs Slurm from Debian packages"
    return None


@pytest.fixture(scope="session")
def slurm_cluster():
    """A running single-node cluster; stopped at the end unless it was already running before."""
    reason = cannot_start_slurm()
    if reason:
        pytest.skip(reason)
    already = subprocess.run(["bash", str(SLURM_LOCAL), "status"], capture_output=True, timeout=60, check=False).returncode == 0
    try:
        r = subprocess.run(["bash", str(SLURM_LOCAL), "start"], capture_output=True, text=True, timeout=900,
                           check=False)
        assert r.returncode == 0, f"slurm-local.sh start failed:\n{r.stdout}\n{r.stderr}"
        yield
    finally:
        if not already:
            subprocess.run(["bash", str(SLURM_LOCAL), "stop"], capture_output=True, timeout=120, check=False)


def slurm_env() -> dict[str, str]:
    """The profile's settings for a cluster without accounting; site settings of the caller removed."""
    env = {k: v for k, v in runtime_env().items() if not k.startswith("LUFFY_SLURM_")}
    env.update(LUFFY_SLURM_STATUS_COMMAND="squeue", LUFFY_SLURM_INIT_SECONDS="2", LUFFY_SLURM_JOBS="8")
    return env


def run_profile(out: Path, overrides: dict, name: str, logs: Path, *targets: str, retries: int = 2,
                timeout: int = 1200) -> subprocess.CompletedProcess:
    """`snakemake --profile slurm` on the smoke config plus ``overrides`` (written to <name>.yaml)."""
    extra = out.parent / f"{name}.yaml"
    extra.write_text(yaml.safe_dump(overrides))
    cmd = [str(snakemake_bin()), "--profile", "slurm", "--configfile", "config/smoke.yaml", str(extra),
           "--config", f"results={out}", "--slurm-logdir", str(logs), "--retries", str(retries), "--", *targets]
    return subprocess.run(cmd, cwd=ROOT, env=slurm_env(), capture_output=True, text=True, timeout=timeout,
                          check=False)


def scontrol_job(jobid: str) -> str:
    r = subprocess.run(["scontrol", "show", "job", jobid], capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    return r.stdout


def submitted(output: str, logs: Path) -> dict[str, list[tuple[str, str, Path]]]:
    """rule -> [(Snakemake job id, Slurm job id, job log)] from the plugin's submission lines."""
    jobs: dict[str, list[tuple[str, str, Path]]] = {}
    for job, slurm_id, log in SUBMITTED.findall(output):
        rule = Path(log).relative_to(logs).parts[0].removeprefix("rule_")
        jobs.setdefault(rule, []).append((job, slurm_id, Path(log)))
    return jobs


@pytest.fixture(scope="module")
def smoke_on_slurm(slurm_cluster, tmp_path_factory):
    base = tmp_path_factory.mktemp("slurm")
    out, logs = base / "smoke", base / "slurm_logs"
    overrides = {"groups": {"table1": ["luffy"]}, "figures": {"training": ["luffy"]}}
    r = run_profile(out, overrides, "small-target", logs, "table1", f"{out}/reports/figures/training.png")
    return r, out, logs


def test_smoke_dag_runs_through_slurm(smoke_on_slurm):
    r, out, logs = smoke_on_slurm
    output = r.stdout + r.stderr
    assert r.returncode == 0, output[-6000:]
    assert "Using profile slurm" in output
    run_id = RUN_ID.search(output)[1]  # the plugin names every job of this run by it
    jobs = submitted(output, logs)
    assert {rule: len(ids) for rule, ids in jobs.items()} == SLURM_RULES, output[-6000:]
    for rule, ids in jobs.items():
        for job, slurm_id, log in ids:
            record = scontrol_job(slurm_id)  # finished jobs stay listed for MinJobAge (300 s)
            assert f"JobName={run_id}" in record and f"Comment=rule_{rule}" in record, record
            assert "JobState=COMPLETED" in record and "ExitCode=0:0" in record, record
            assert log.is_file() and f"rule {rule}:" in log.read_text(), log
            # Snakemake learnt of the end by polling squeue (no accounting here) and went on
            assert f"Finished jobid: {job} (Rule: {rule})" in output
    for ext in ("md", "csv", "tex"):
        assert (out / "reports" / f"table1.{ext}").stat().st_size > 0
    for ext in ("png", "pdf"):
        assert (out / "reports" / "figures" / f"training.{ext}").stat().st_size > 0
    assert yaml.safe_load((out / "runs" / "luffy-s0" / "resolved_config.yaml").read_text())["train"]["steps"] == 2
    for model in ("base", "luffy-s0/final", "luffy-s0/best_val"):
        assert (out / "eval" / model / "suite.json").stat().st_size > 0


def test_failing_slurm_job_is_reported_by_rule(smoke_on_slurm):
    _, out, logs = smoke_on_slurm  # its data and base model are reused: only the failing job runs
    # a valid config that fails inside the job (a bad key would stop the workflow at `luffy check-config`,
    # before any job): more prompts per step than the smoke task has rows
    overrides = {"experiments": {"on_policy": {"set": ["train.prompts_per_step=4096"]}}}
    r = run_profile(out, overrides, "failing-train", logs, f"{out}/runs/on_policy-s0/summary.json", retries=0, timeout=600)
    output = r.stdout + r.stderr
    assert r.returncode != 0, output[-4000:]
    assert "Error in rule train:" in output, output[-4000:]
    jobs = submitted(output, logs)
    assert list(jobs) == ["train"] and len(jobs["train"]) == 1, output[-4000:]
    _, slurm_id, _ = jobs["train"][0]
    assert f"SLURM-job '{slurm_id}' failed, SLURM status is: 'FAILED'" in output
    assert "JobState=FAILED" in scontrol_job(slurm_id)
    # the profile shows the failed rule's log: the trainer's one-line error
    assert "luffy: error: training data has" in output and "fewer than one batch of 4096" in output
    assert not (out / "runs" / "on_policy-s0" / "summary.json").exists()


# ---------------------------------------------------------------------------------- Ray launcher

RAY_PROBE = ("import os, ray; ray.init(); r = ray.cluster_resources(); "
             "print('probe', os.environ['RAY_ADDRESS'], len([n for n in ray.nodes() if n['Alive']]), int(r['CPU']))")
ACTIVE = ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING")


@pytest.fixture(scope="module")
def ray_env(slurm_cluster):
    if importlib.util.find_spec("ray") is None:
        pytest.skip("Ray is not installed in the runtime environment (the `ray` extra of pyproject.toml)")
    env = runtime_env()
    env["LUFFY_RAY_START_ARGS"] = "--object-store-memory=200000000"
    return env


def sbatch(env: dict, log: Path, *args: str) -> str:
    """Submit a 1-node, 2-CPU job; its id."""
    r = subprocess.run(["sbatch", "--parsable", "--nodes=1", "--cpus-per-task=2", "--mem=4000", "--time=10",
                        f"--output={log}", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
                       check=False)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip().split(";")[0]


def wait_until(jobid: str, limit_s: float, done=lambda: False) -> str:
    """Poll until the job has left the active states (or ``done()``); the job's record."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        state = subprocess.run(["squeue", "-h", "-j", jobid, "--states=all", "-o", "%T"], capture_output=True,
                               text=True, timeout=60, check=False).stdout.strip()
        if state not in ACTIVE or done():
            return scontrol_job(jobid)
        time.sleep(0.5)
    raise AssertionError(f"Slurm job {jobid} still active after {limit_s} s:\n{scontrol_job(jobid)}")


def port_of(jobid: str) -> int:
    return 20000 + int(jobid) % 10000  # the launcher's default GCS port


def test_ray_launcher_in_an_sbatch_job(ray_env, tmp_path):
    log = tmp_path / "ray.log"
    jobid = sbatch(ray_env, log, str(LAUNCHER), sys.executable, "-c", RAY_PROBE)
    record = wait_until(jobid, 240)
    text = log.read_text()
    assert "JobState=COMPLETED" in record, text
    # one live node; Ray got the job's 2 CPUs, not a count of its own
    assert f"probe 127.0.0.1:{port_of(jobid)} 1 2" in text, text
    assert "ray-slurm: Ray cluster up: 1 node(s)" in text
    assert "ray-slurm: command exited with status 0" in text and "ray-slurm: stopping the Ray cluster" in text


def test_ray_launcher_in_a_job_step_returns_the_command_status(ray_env, tmp_path):
    # what the Snakemake jobstep does: the rule's shell runs in `srun -n1 ...` inside the batch job
    log = tmp_path / "ray-step.log"
    cmd = f"{sys.executable} -c \"{RAY_PROBE}; raise SystemExit(5)\""
    jobid = sbatch(ray_env, log, "--wrap", f"srun -n1 --nodes=1 --cpus-per-task=2 bash {LAUNCHER} {cmd}")
    record = wait_until(jobid, 240)
    text = log.read_text()
    assert "JobState=FAILED" in record and "ExitCode=5:0" in record, text
    assert f"probe 127.0.0.1:{port_of(jobid)} 1 2" in text, text
    assert "ray-slurm: command exited with status 5" in text and "ray-slurm: stopping the Ray cluster" in text


def test_scancel_stops_the_command_and_the_ray_cluster(ray_env, tmp_path):
    log = tmp_path / "ray-cancel.log"
    jobid = sbatch(ray_env, log, str(LAUNCHER), sys.executable, "-c",
                   "import ray, time; ray.init(); print('running', flush=True); time.sleep(600)")
    wait_until(jobid, 240, done=lambda: log.is_file() and "running" in log.read_text())
    assert "running" in log.read_text(), log.read_text()
    subprocess.run(["scancel", jobid], timeout=60, check=True)
    t0 = time.monotonic()
    record = wait_until(jobid, 60)
    took = time.monotonic() - t0
    text = log.read_text()
    assert "JobState=CANCELLED" in record, record
    assert "ray-slurm: got SIGTERM: stopping" in text and "ray-slurm: stopping the Ray cluster" in text, text
    # well inside Slurm's KillWait (30 s): the launcher, not Slurm's SIGKILL, ended the job
    assert took < 20, f"{took:.1f} s"
    left = subprocess.run(["ps", "-e", "-o", "args="], capture_output=True, text=True, timeout=60, check=True).stdout
    assert f":{port_of(jobid)}" not in left
