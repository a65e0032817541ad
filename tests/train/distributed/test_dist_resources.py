"""Done-when 4 of issue #6: bad resources end in one clear line before any model is loaded.

Every case points ``model.path`` at a folder that does not exist: the error must be about the
resources, which shows the check ran before the model was loaded.
"""

from __future__ import annotations

import socket
import time

import pytest
from support import TINY, cli, ray_sets, tiny_sets, train_args

from luffy.config import ConfigError, load_run_config


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CASES = {
    "more_gpus_than_cluster": (ray_sets(2, **{"resources.device": "cuda", "resources.workers_per_node": 64}),
                               "need 64 GPU(s); the Ray cluster has"),
    "more_cpus_than_cluster": (ray_sets(2, **{"resources.cpus_per_worker": 1000}),
                               "need 2000 CPUs; the Ray cluster has"),
    "tp_not_dividing_gpus": (ray_sets(2, **{"rollout.engine": "vllm", "rollout.vllm_tensor_parallel_size": 3}),
                             "rollout.vllm_tensor_parallel_size = 3 does not divide resources.workers_per_node = 2"),
    "unreachable_ray_address": (ray_sets(2, **{"resources.ray_address": f"127.0.0.1:{_closed_port()}",
                                               "resources.connect_timeout_s": 3}),
                                "no Ray cluster reachable at 127.0.0.1:"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_resources_fail_before_the_model_loads(case, task_dir, tmp_path):
    pytest.importorskip("ray", reason="Ray is installed by scripts/setup.sh (the 'ray' extra)")
    extra, match = CASES[case]
    sets = tiny_sets(task_dir, tmp_path / "no-such-model") + [f"{k}={v}" for k, v in extra.items()]
    t0 = time.monotonic()
    r = cli(train_args(TINY / "luffy.yaml", tmp_path / "run", sets), timeout=120)
    took = time.monotonic() - t0
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("luffy: error:")]
    assert r.returncode == 2 and len(lines) == 1, r.stderr[-3000:]
    print(f"{case} ({took:.1f} s): {lines[0]}")
    assert match in lines[0], lines[0]
    assert "Traceback" not in r.stderr
    assert took < 60, f"{case}: {took:.1f} s"


def test_local_backend_is_one_process(task_dir, base_model):
    with pytest.raises(ConfigError, match="need resources.backend: ray"):
        load_run_config(TINY / "luffy.yaml", tiny_sets(task_dir, base_model) + ["resources.workers_per_node=2"])
