"""A local Ray instance shared by the in-process distributed tests (CLI tests start their own)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def ray_local():
    """``ray.init(address="local")``: a new instance (never a cluster another process started), 4 CPUs
    declared so that a group being torn down and the next one can overlap on a 2-core machine."""
    ray = pytest.importorskip("ray", reason="Ray is installed by scripts/setup.sh (the 'ray' extra)")
    if ray.is_initialized():
        ray.shutdown()
    ray.init(address="local", num_cpus=4, include_dashboard=False, logging_level="WARNING")
    yield ray
    ray.shutdown()
