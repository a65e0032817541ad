"""The hybrid engine (``rollout.placement: workers``): every training worker also hosts a vLLM engine.

The driver keeps the single-process loop (:class:`luffy.train.Trainer`); its rollout engine is a
:class:`WorkerRollouts`, which splits each ``generate`` call across the workers' engines and
gathers the samples back in prompt order:

* **Data-parallel rollouts.** A call's prompts are cut into ``world`` contiguous, near-equal
  slices (by whole prompts, so a group's ``n`` samples stay on one engine). Seeds are per prompt:
  global prompt ``i`` of a call is sampled with seed ``seed + i·n`` (and its samples
  ``seed + i·n + j``), exactly what one engine gives it, so the samples do not depend on the number
  of workers (vLLM seeds each request with its own generator). Validation goes the same way.
* **Weight sync.** After an update the engines are stale; the next ``sync_weights`` (the loop calls
  it before every generation) makes every worker load its own engine from its FSDP shards: each
  parameter is cast to the engine's dtype on the shard, all-gathered over the training group (a
  collective, one full tensor at a time) and handed to vLLM's in-place ``reload_weights``. Nothing
  is gathered into one process and no weight passes through Ray's object store; what crosses
  between driver and workers is prompt and sample token ids.
* **Memory (CUDA).** Before each update the engines sleep (vLLM sleep mode, level 2: weights and KV
  cache freed) and the next sync wakes them; on CPU vLLM has no sleep mode and they stay resident.

The engines run vLLM's ``external_launcher`` executor in the worker process, joined to the
training process group. With ``rollout.vllm_tensor_parallel_size`` t (it must divide the workers
per node), each t consecutive ranks form one engine, every rank of it gets the same requests, and
prompts are split over world / t engines. Evaluation has its own data-parallel engines
(:mod:`luffy.rollout.replicas`).
"""

from __future__ import annotations

from typing import Any

import torch

from ...rollout.base import Generation, RolloutEngine, SamplingConfig
from ...rollout.replicas import shard_bounds, shard_sampling


class WorkerRollouts(RolloutEngine):
    """The driver's view of the workers' engines (see the module docstring)."""

    name = "vllm-workers"

    def __init__(self, group: Any, cfg: Any, log=print) -> None:
        self.group = group
        self.tp = cfg.rollout.vllm_tensor_parallel_size
        infos = group.call("start_engine", cfg)
        self.start_info = infos[0]
        self.stale = False
        self.asleep = False
        self.last_sync_seconds: float | None = infos[0]["sync_seconds"]
        log(f"hybrid: {group.world // self.tp} vLLM engine(s) of tensor-parallel size {self.tp} in {group.world} "
            f"worker(s) ({infos[0]['dtype']}), up in {max(i['seconds'] for i in infos):.1f} s")

    def mark_stale(self) -> None:
        """The workers' weights changed (an update, a restore): sync before the next generation."""
        self.stale = True

    def sleep(self) -> None:
        """Put the engines to sleep until the next sync (CUDA); once per update, not per call."""
        if not self.asleep:
            self.group.call("sleep_engine")
            self.asleep = True

    def sync_weights(self, model: torch.nn.Module | None = None) -> None:
        """``model`` (the driver's copy) is ignored: every engine loads from its own worker's shards."""
        if self.stale or self.asleep:
            self.last_sync_seconds = max(self.group.call("sync_engine"))
            self.stale = self.asleep = False

    def generate(self, prompts: list[list[int]], n: int, sampling: SamplingConfig) -> list[list[Generation]]:
        tp = self.tp
        bounds = shard_bounds(len(prompts), self.group.world // tp)
        # every rank of a tensor-parallel engine gets that engine's requests; its first rank's reply is kept
        args = [(prompts[a:b], n, shard_sampling(sampling, a, n)) for a, b in bounds for _ in range(tp)]
        parts = self.group.call_each("generate", args)[::tp]
        out: list[list[Generation]] = []
        for (a, b), part in zip(bounds, parts):
            if len(part) != b - a:
                raise RuntimeError(f"hybrid: a worker returned {len(part)} prompts' samples for {b - a}")
            out.extend(part)
        return out

    def close(self) -> None:
        """The engines close with their workers (:meth:`WorkerGroup.shutdown`)."""
