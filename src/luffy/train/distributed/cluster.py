"""Reach a Ray cluster and check that it can hold the worker group, before any model is loaded.

Three kinds of bad input end in one line (:class:`luffy.config.ConfigError`, naming the key):

* a layout that cannot work whatever the cluster: the vLLM tensor-parallel size not dividing the
  GPUs (workers) per node (:func:`check_layout`, no Ray needed);
* a Ray address nobody answers at: a TCP connect with ``resources.connect_timeout_s`` before
  ``ray.init`` (so a wrong address fails in seconds instead of Ray's minute-long retries);
* more workers, GPUs or CPUs than the cluster has (:func:`check_capacity`, from
  ``ray.cluster_resources()`` and the per-node resources of ``ray.nodes()``).

Not covered: a port that accepts TCP but is not a Ray head (``ray.init`` then takes as long as
Ray's own connect timeout), and resources that exist but are held by another job (the placement
group then times out after ``connect_timeout_s``: :class:`luffy.train.TrainingError`).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import Any

from ...config import ConfigError, ResourcesSection

#: Driver environment variables handed to the workers when joining an existing cluster (a local Ray
#: instance inherits the whole environment anyway).
FORWARD_ENV = ("HF_HUB_OFFLINE", "HF_HOME", "TRANSFORMERS_OFFLINE", "TOKENIZERS_PARALLELISM")


def check_layout(cfg: Any) -> None:
    """Checks that need no cluster: the rollout engine's TP group must fit the GPUs of one node."""
    res: ResourcesSection = cfg.resources
    tp = cfg.rollout.vllm_tensor_parallel_size
    if cfg.rollout.engine == "vllm" and res.workers_per_node % tp:
        raise ConfigError(f"rollout.vllm_tensor_parallel_size = {tp} does not divide resources.workers_per_node "
                          f"= {res.workers_per_node} (the GPUs per node the engine shares with the workers)")


def _host_port(address: str) -> tuple[str, int]:
    a = address.split("://", 1)[-1]
    host, sep, port = a.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError(f"resources.ray_address {address!r}: expected 'auto' or host:port")
    return host.strip("[]"), int(port)


def connect(res: ResourcesSection, log: Callable[[str], None] = print) -> bool:
    """Connect this process to Ray; True if a local instance was started here (the caller shuts it down).

    Reuses a connection that already exists (a notebook, a test). ``ray_address`` null: $RAY_ADDRESS
    if set, else a new local instance with the machine's CPUs and GPUs.
    """
    try:
        import ray
    except ImportError:
        raise ConfigError("resources.backend 'ray' needs Ray: pip install -e '.[ray]' "
                          "(scripts/setup.sh installs it)") from None
    if ray.is_initialized():
        return False
    address = res.ray_address or os.environ.get("RAY_ADDRESS") or None
    quiet: dict[str, Any] = {"logging_level": "WARNING", "include_dashboard": False}
    if address is None:
        log("dist: starting a local Ray instance")
        ray.init(address="local", **quiet)  # "local": never join a cluster another process started here
        return True
    if address != "auto":
        host, port = _host_port(address)
        try:
            with socket.create_connection((host, port), timeout=res.connect_timeout_s):
                pass
        except OSError as e:
            raise ConfigError(f"resources.ray_address {address!r}: no Ray cluster reachable at {host}:{port} "
                              f"within {res.connect_timeout_s:g} s ({e.strerror or type(e).__name__}); start "
                              f"one (ray start --head, scripts/ray-slurm.sh) or fix the address") from None
    env = {k: os.environ[k] for k in FORWARD_ENV if k in os.environ}
    quiet.pop("include_dashboard")
    try:
        ray.init(address=address, runtime_env={"env_vars": env} if env else None, **quiet)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ConfigError(f"resources.ray_address {address!r}: cannot join the Ray cluster: {first}") from None
    log(f"dist: joined the Ray cluster at {address}")
    return False


def check_capacity(res: ResourcesSection) -> str:
    """The workers' device ("cpu"/"cuda"), after checking the connected cluster can hold the group."""
    import ray

    total = ray.cluster_resources()
    gpus, cpus = float(total.get("GPU", 0)), float(total.get("CPU", 0))
    device = res.device if res.device != "auto" else ("cuda" if gpus >= 1 else "cpu")
    w, g, c = res.world_size, res.workers_per_node, res.cpus_per_worker
    what = f"resources: {res.nodes} node(s) × {g} worker(s)"
    if device == "cuda" and gpus < w:
        raise ConfigError(f"{what} need {w} GPU(s); the Ray cluster has {gpus:g}")
    if cpus < w * c:
        raise ConfigError(f"{what} × {c:g} CPU (resources.cpus_per_worker) need {w * c:g} CPUs; "
                          f"the Ray cluster has {cpus:g}")
    alive = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    fit = sum(1 for r in alive if r.get("CPU", 0) >= g * c and (device != "cuda" or r.get("GPU", 0) >= g))
    if fit < res.nodes:
        per = f"{g * c:g} CPUs" + (f" and {g} GPUs" if device == "cuda" else "")
        raise ConfigError(f"{what} need {res.nodes} node(s) with {per} each; the Ray cluster has {fit} such "
                          f"node(s) of {len(alive)}")
    return device
