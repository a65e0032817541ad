"""Data-parallel vLLM engines for evaluation: ``replicas`` engines, each in its own Ray actor.

:class:`EngineReplicas` is a :class:`~luffy.rollout.base.RolloutEngine` whose ``generate`` cuts a
call's prompts into ``replicas`` contiguous slices (whole prompts) and runs them on the engines in
parallel. Seeds are per prompt (:func:`shard_sampling`): global prompt ``i`` of a call gets
``seed + i·n``, as with one engine, so the samples do not depend on the number of replicas. On
CUDA each actor holds one GPU (an evaluation job of 4 GPUs runs 4 engines); on CPU each gets
``cpus_per_replica`` threads. The training loop's counterpart, with engines inside the training
workers, is :mod:`luffy.train.distributed.hybrid`, which uses the same two sharding functions.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

from .base import Generation, RolloutEngine, RolloutError, SamplingConfig


def shard_bounds(n_items: int, world: int) -> list[tuple[int, int]]:
    """[start, end) of each rank's contiguous slice of ``n_items`` (sizes differ by at most one, larger first)."""
    base, extra = divmod(n_items, world)
    out, start = [], 0
    for r in range(world):
        end = start + base + (1 if r < extra else 0)
        out.append((start, end))
        start = end
    return out


def shard_sampling(sampling: SamplingConfig, start: int, n: int) -> SamplingConfig:
    """The sampling of a slice that starts at global prompt ``start``: seeds shifted so prompt ``start + i``
    gets ``seed + (start + i)·n``, as in one engine's call."""
    if sampling.seed is None or start == 0:
        return sampling
    return sampling.model_copy(update={"seed": sampling.seed + start * n})


class _EngineActor:
    """One vLLM engine in a Ray actor process (its own in-process engine core)."""

    def __init__(self, model_path: str, threads: int, opts: dict[str, Any]) -> None:
        import torch

        from ..model.load import load_tokenizer
        from .vllm_engine import VLLMEngine

        torch.set_num_threads(max(1, threads))
        self.engine = VLLMEngine(model_path=model_path, tokenizer=load_tokenizer(model_path), **opts)

    def pid(self) -> int:
        return os.getpid()

    def generate(self, prompts: list[list[int]], n: int, sampling: SamplingConfig) -> list[list[Generation]]:
        return self.engine.generate(prompts, n, sampling) if prompts else []

    def close(self) -> None:
        self.engine.close()


class EngineReplicas(RolloutEngine):
    """``replicas`` vLLM engines of ``model_path`` in Ray actors (a local Ray instance unless one is running)."""

    name = "vllm-replicas"

    def __init__(self, model_path: str, replicas: int, *, cpus_per_replica: int = 1, **opts: Any) -> None:
        import ray

        if replicas < 1:
            raise ValueError(f"EngineReplicas: replicas must be >= 1, got {replicas}")
        self._started_ray = not ray.is_initialized()
        if self._started_ray:
            ray.init(address=os.environ.get("RAY_ADDRESS") or "local", include_dashboard=False,
                     logging_level="WARNING")
        import torch

        gpu = 1 if torch.cuda.is_available() else 0
        remote = ray.remote(_EngineActor)
        self.actors = [remote.options(num_cpus=cpus_per_replica, num_gpus=gpu, max_restarts=0)
                       .remote(model_path, cpus_per_replica, opts) for _ in range(replicas)]
        try:
            self.pids = self._all([a.pid.remote() for a in self.actors], "start")
        except BaseException:
            self.close()
            raise

    def _all(self, refs: list, what: str) -> list:
        import ray

        try:
            return ray.get(refs)
        except Exception as e:  # noqa: BLE001 - one line naming the replica step
            cause = getattr(e, "cause", None) or e
            first = (str(cause).strip().splitlines() or [""])[0]
            raise RolloutError(f"vLLM replica failed during {what}: {type(cause).__name__}: {first}") from None

    def generate(self, prompts: list[list[int]], n: int, sampling: SamplingConfig) -> list[list[Generation]]:
        bounds = shard_bounds(len(prompts), len(self.actors))
        parts = self._all([a.generate.remote(prompts[s:e], n, shard_sampling(sampling, s, n))
                           for a, (s, e) in zip(self.actors, bounds)], "generate")
        return [gens for part in parts for gens in part]

    def sync_weights(self, model: Any) -> None:
        raise RolloutError("EngineReplicas serve a saved model (evaluation); they take no weight sync")

    def close(self) -> None:
        import ray

        for a in getattr(self, "actors", []):
            with contextlib.suppress(Exception):  # already gone
                ray.kill(a, no_restart=True)
        self.actors = []
        if getattr(self, "_started_ray", False):
            ray.shutdown()
            self._started_ray = False
