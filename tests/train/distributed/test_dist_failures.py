"""Done-when 3 of issue #6: a killed worker fails the run fast, naming the worker; no hang."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from support import TINY, ray_sets, tiny_sets

from luffy.config import load_run_config
from luffy.train import TrainingError
from luffy.train.distributed import DistTrainer


def _gone(pid: int, within: float) -> bool:
    end = time.monotonic() + within
    while time.monotonic() < end:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


class _KillsRank1BeforeUpdate(DistTrainer):
    """Kills rank 1 (SIGKILL) just before the first update: rank 0 then waits in an FSDP2 all-gather
    for a peer that is gone, the situation that hangs a run without a fail-fast driver."""

    killed_at: float | None = None

    def _update(self, plan, step):
        self.victim = self.group.pids()[1]
        self.survivor = self.group.pids()[0]
        os.kill(self.victim, signal.SIGKILL)
        self.killed_at = time.monotonic()
        return super()._update(plan, step)


def test_killed_worker_mid_run_names_it(task_dir, base_model, tmp_path, ray_local):
    sets = tiny_sets(task_dir, base_model, **{"data.val": "null"})
    cfg = load_run_config(TINY / "luffy.yaml", sets + [f"{k}={v}" for k, v in ray_sets(2).items()])
    t = _KillsRank1BeforeUpdate(cfg, tmp_path / "run", progress=False)
    try:
        with pytest.raises(TrainingError) as err:
            t.run()
        waited = time.monotonic() - t.killed_at
    finally:
        t.close()
    msg = str(err.value)
    print(f"error {waited:.2f} s after the kill: {msg}")
    assert "rank 1" in msg and f"pid {t.victim}" in msg and "died during update" in msg
    assert len(msg.splitlines()) == 1
    assert waited < 10.0
    assert _gone(t.survivor, 10.0), "the surviving worker (stuck in a collective) was not killed"


def test_worker_killed_during_a_call(ray_local):
    """The same inside one long call: both ranks busy for 60 s, rank 1 killed after 1 s."""
    from luffy.config import ResourcesSection
    from luffy.train.distributed.group import WorkerGroup

    group = WorkerGroup(ResourcesSection(backend="ray", workers_per_node=2), "cpu", log=lambda s: None)
    victim = group.pids()[1]
    threading.Timer(1.0, os.kill, (victim, signal.SIGKILL)).start()
    t0 = time.monotonic()
    try:
        with pytest.raises(TrainingError, match=rf"rank 1: pid {victim} .* died during execute"):
            group.call("execute", time.sleep, 60)
    finally:
        group.shutdown()
    took = time.monotonic() - t0
    print(f"call failed {took - 1.0:.2f} s after the kill")
    assert took < 10.0
