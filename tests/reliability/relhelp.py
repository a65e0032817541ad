"""Shared pieces of the reliability tests: the tiny training command, kill trials, comparisons.

The number of kill trials and where their figures go come from the environment, so CI runs a few and
``make reliability`` runs the full set and writes the figures RELIABILITY.md quotes:

* ``LUFFY_KILL_TRIALS`` -- kill/resume trials (CI default 3, ``make reliability``: 10);
* ``LUFFY_RELIABILITY_OUT`` -- a folder; when set, each test writes its figures there as JSON.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file
from trainhelp import TINY, tiny_overrides

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


def kill_during_loop(cmd: list[str], run_dir: Path, delay_s: float, env: dict | None = None) -> tuple[int, int]:
    """Start ``cmd`` in its own session; once its training loop has begun (the first metrics line),
    wait ``delay_s`` seconds and SIGKILL the main process.

    Returns ``(exit status, pid)``; the pid is also the session's process-group id. Status -9 means the
    kill landed, 0 that the run had already finished. Only the main process is killed: its helpers
    (grading workers, the forkserver) must go away by themselves.
    """
    p = start_session(cmd, env)
    metrics = run_dir / "metrics.jsonl"
    while p.poll() is None and not (metrics.exists() and metrics.stat().st_size > 0):
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
