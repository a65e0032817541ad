"""The one test-support module: run-config overrides for tiny runs, CLI helpers, weight and metric
comparisons, and the kill/resume machinery of the reliability suite.

Importable as ``support`` from every test (``pythonpath = ["tests"]`` in pyproject.toml).

The number of kill trials and where the reliability figures go come from the environment, so CI
runs a few and ``make reliability`` runs the full set and writes the figures RELIABILITY.md quotes:

* ``LUFFY_KILL_TRIALS`` -- kill/resume trials (CI default 3, ``make reliability``: 10);
* ``LUFFY_RELIABILITY_OUT`` -- a folder; when set, each test writes its figures there as JSON.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from luffy.eval.benchmarks import DEFAULT_EVAL_DIR

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "config" / "experiments" / "tiny"
# the paper's evaluation parquets (method §3.4) for the real-data tests, which skip, saying so,
# when the folder is absent: $LUFFY_EVAL_DATA, else the library's default (the gitignored data/luffy-eval)
EVAL_DATA = Path(os.environ.get("LUFFY_EVAL_DATA") or DEFAULT_EVAL_DIR)


# ----------------------------------------------------------------------------------- tiny runs


def tiny_overrides(task_dir: Path, model: Path, steps: int = 2, **extra) -> list[str]:
    """``--set`` overrides for a fast tiny run: 4 prompts × (3 on + 1 off), mini-batches of 2 prompts."""
    sets = {
        "model.path": str(model),
        "data.train": str(task_dir / "train.jsonl"),
        "data.val": str(task_dir / "test_id.jsonl"),
        "data.val_limit": 4,
        "data.max_response_tokens": 64,
        "loss.norm_length": "null",
        "train.steps": steps,
        "train.prompts_per_step": 4,
        "train.mini_batch_prompts": 2,
        "train.micro_batch_seqs": 16,
        "train.val_every": 0,
        "train.save_every": 1,
        "group.n_on": 3,
    }
    sets.update(extra)
    return [f"{k}={v}" for k, v in sets.items()]


#: What the distributed tests change: fp32, shorter answers, micro-batches of 3 (several per rank).
DIST_SETS = {"model.dtype": "float32", "data.max_response_tokens": 48, "train.micro_batch_seqs": 3}


def tiny_sets(task_dir: Path, model: Path, steps: int = 2, **extra) -> list[str]:
    """:func:`tiny_overrides` with :data:`DIST_SETS` (the distributed tests' tiny run)."""
    return tiny_overrides(task_dir, model, steps, **{**DIST_SETS, **extra})


def ray_sets(workers: int = 2, **extra) -> dict[str, object]:
    return {"resources.backend": "ray", "resources.workers_per_node": workers, **extra}


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def max_abs_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


def cli(args: list[str], timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    """``python -m luffy ARGS`` in a fresh process (no inherited Ray address)."""
    e = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    e.update(env)
    return subprocess.run([sys.executable, "-m", "luffy", *args], check=False, capture_output=True, text=True,
                          timeout=timeout, env=e)


def train_args(config: Path, out: Path, sets: list[str]) -> list[str]:
    cmd = ["train", "--config", str(config), "--out", str(out), "--no-progress"]
    for s in sets:
        cmd += ["--set", s]
    return cmd


# ----------------------------------------------------------------------------------- reports


def write_suite(path: Path, id_acc: float, ood_acc: float, checkpoint: str | None = None) -> Path:
    """A minimal tiny-suite ``suite.json`` (ID and OOD accuracy) as ``luffy evaluate`` writes it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "suite": "tiny", "checkpoint": checkpoint,
        "benchmarks": {"tiny_id": {"accuracy": id_acc}, "tiny_ood": {"accuracy": ood_acc}},
        "averages": {"id": {"accuracy": id_acc, "over": ["tiny_id"], "missing": []},
                     "ood": {"accuracy": ood_acc, "over": ["tiny_ood"], "missing": []}},
    }))
    return path


# ----------------------------------------------------------------------------------- reliability

VOLATILE = ("time/", "tokens_per_s")


def n_trials(default: int) -> int:
    return int(os.environ.get("LUFFY_KILL_TRIALS", default))


def record(name: str, figures: dict) -> None:
    """Write ``figures`` to ``$LUFFY_RELIABILITY_OUT/<name>.json`` when that variable is set."""
    out = os.environ.get("LUFFY_RELIABILITY_OUT")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / f"{name}.json").write_text(json.dumps(figures, indent=1) + "\n")


def train_cmd(config: str, task_dir: Path, model: Path, out: Path, steps: int, *extra: str) -> list[str]:
    cmd = [sys.executable, "-m", "luffy", "train", "--config", str(TINY / config), "--out", str(out),
           "--no-progress"]
    for s in tiny_overrides(task_dir, model, steps=steps) + list(extra):
        cmd += ["--set", s]
    return cmd


def run(cmd: list[str], env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False,
                          env={**os.environ, **(env or {})})


def comparable_metrics(run_dir: Path) -> list[dict]:
    """metrics.jsonl without wall-clock fields (the only fields a resume may change)."""
    out = []
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        out.append({k: v for k, v in rec.items() if not k.startswith(VOLATILE)})
    return out


def same_weights(a: Path, b: Path) -> bool:
    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def group_gone(pgid: int, within_s: float) -> bool:
    """True once no process of the process group ``pgid`` is left (nothing orphaned, nothing hangs)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def kill_during_loop(cmd: list[str], run_dir: Path, delay_s: float, env: dict | None = None,
                     after_records: int = 1) -> tuple[int, int]:
    """Start ``cmd`` in its own session; once ``metrics.jsonl`` holds ``after_records`` complete lines
    (1: the training loop has begun), wait ``delay_s`` seconds and SIGKILL the main process.

    Returns ``(exit status, pid)``; the pid is also the session's process-group id. Status -9 means the
    kill landed, 0 that the run had already finished. Only the main process is killed: its helpers
    (grading workers, the forkserver) must go away by themselves.
    """
    p = start_session(cmd, env)
    metrics = run_dir / "metrics.jsonl"

    def records() -> int:
        try:
            return metrics.read_bytes().count(b"\n")
        except FileNotFoundError:
            return 0

    while p.poll() is None and records() < after_records:
        time.sleep(0.01)
    try:
        p.wait(timeout=delay_s)
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGKILL)
        p.wait()
    return p.returncode, p.pid


def start_session(cmd: list[str], env: dict | None = None, log: Path | None = None) -> subprocess.Popen:
    fh = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115 - closed with the process
    return subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True,
                            env={**os.environ, **(env or {})})


# ------------------------------------------------------------------------------------ the workflow

SNAKEMAKE = REPO / ".venv-wf" / "bin" / "snakemake"


def snakemake_bin() -> Path:
    """The project's workflow driver (fails, not skips, when the setup script has not been run)."""
    import pytest

    if not SNAKEMAKE.is_file():
        pytest.fail(f"{SNAKEMAKE} is missing: create the workflow environment with `bash scripts/setup.sh`")
    return SNAKEMAKE


def runtime_env() -> dict[str, str]:
    """This environment with the runtime environment's bin first on PATH (for tools such as ``ray``
    that scripts call by name; the workflow's rules do not need it)."""
    return dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")


def metric_records(path: Path) -> list[dict]:
    """A run's metrics.jsonl without wall-clock keys (``time/*``, ``tokens_per_s*``)."""
    return [{k: v for k, v in json.loads(line).items() if not k.startswith(("time/", "tokens_per_s"))}
            for line in Path(path).read_text().splitlines()]


def metrics_close(a, b) -> bool:
    """Floats within 1e-5 relative / 1e-6 absolute (NaN equals NaN); anything else equal."""
    if isinstance(a, float) or isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-6)
    return a == b


def assert_same_metrics(r1: list[dict], r2: list[dict], steps: list[int]) -> None:
    """Two runs logged the same steps, the same keys, and values that are :func:`metrics_close`."""
    assert [r["step"] for r in r1] == [r["step"] for r in r2] == steps
    for a, b in zip(r1, r2):
        assert a.keys() == b.keys()
        bad = {k: (a[k], b[k]) for k in a if not metrics_close(a[k], b[k])}
        assert not bad, f"step {a['step']}: {bad}"
