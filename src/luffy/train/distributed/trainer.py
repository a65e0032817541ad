"""The driver of a distributed run: :class:`luffy.train.Trainer` with the update on a Ray worker group.

``DistTrainer`` *is* the single-machine trainer -- same loop, sampling, rollouts, rewards,
advantages, metrics, validation, checkpoint protocol and resume -- with five hooks re-pointed at
the workers (see the "backend" hooks of :class:`luffy.train.Trainer`):

* ``_start_backend``: layout check, reach Ray, capacity check, start the workers (before any model
  is loaded, so bad resources fail in seconds);
* ``_make_optimizer``: every worker loads the model, shards it with FSDP2 and builds AdamW + the
  LR schedule (the driver has no optimizer);
* ``_old_logprobs`` / ``_update``: the driver's plan goes to every worker, which runs the shared
  :mod:`luffy.train.update` code on its shard; after each update the driver gathers the full
  weights from the shards (rank 0's full state dict) into its own copy of the model, which the
  rollout engine reads: the HF engine generates with that copy directly, the vLLM engine's
  ``sync_weights(model)`` reloads it in memory. Nothing goes through the disk;
* ``_checkpoint`` / ``_restore``: sharded model + optimizer (``torch.distributed.checkpoint``) plus
  the driver's state, under the same atomic write-then-rename + ``COMPLETE`` protocol.

The driver keeps a full copy of the weights in host memory (for the engine and the final
``save_pretrained``); at 7B in fp32 that is 28 GB on the driver's node.

With ``rollout.placement: workers`` (the hybrid engine, :mod:`luffy.train.distributed.hybrid`) the
driver has no engine: every worker hosts one, rollouts and validation are split across them, and
each engine is synced from its own worker's shards. The driver holds no weights at all (its model
is a meta-device skeleton): models are saved by rank 0 (``best_val/``, ``model/``), so no weight
passes through Ray's object store and the driver's node needs no host copy of the model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..drills import drill
from ..errors import TrainingError
from ..loop import Trainer
from ..run_files import CheckpointManager
from ..tensors import MicroBatch
from ..update import Micro, UpdateResult
from .cluster import check_capacity, check_layout, connect
from .group import WorkerGroup
from .hybrid import WorkerRollouts


class DistTrainer(Trainer):
    """``resources.backend: ray``: the loop runs here, the update on ``resources.world_size`` workers."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.group = None
        self._ray_started = False
        self._hybrid = self.cfg.rollout.placement == "workers"

    # ----------------------------------------------------------------------------- hooks
    def _start_backend(self) -> None:
        res = self.cfg.resources
        check_layout(self.cfg)
        self._ray_started = connect(res, log=self.log)
        device = check_capacity(res)
        self.group = WorkerGroup(res, device, log=self.log)

    def _make_optimizer(self):
        info = self.group.call("setup", self.cfg, self.opt_steps_total)[0]
        self.log(f"dist: model sharded over {self.group.world} worker(s) with FSDP2 ({info['params']} parameters, "
                 f"{info['local_params']} on rank 0) in {info['seconds']:.1f} s")
        c = self.cfg.train
        per_mini = c.mini_batch_prompts * (self.cfg.group.n_on + self.cfg.group.n_off)
        micros = -(-per_mini // c.micro_batch_seqs)
        if self.cfg.method == "rl" and micros % self.group.world:
            self.log(f"dist: a mini-batch has {micros} micro-batch(es) for {self.group.world} workers: some "
                     f"workers make padding passes (lower train.micro_batch_seqs to use all of them)")
        if not self._hybrid:
            self._pull_weights()
        return None, None

    def _old_logprobs(self, batches: list[MicroBatch]) -> list[torch.Tensor]:
        if self._hybrid:
            self.engine.sleep()          # CUDA: the engines' memory goes to the training passes until the next sync
        parts = self.group.call("old_logprobs", batches, self.cfg.rollout.temperature)
        merged: dict[int, torch.Tensor] = {}
        for p in parts:
            merged.update(p)
        return [merged[j] for j in range(len(batches))]

    def _local_device(self) -> str:
        return "cpu"   # the driver's copy of the model (the workers train on resources.device)

    def _load_model(self):
        if not self._hybrid:
            return super()._load_model()
        # hybrid: the driver never reads the weights (engines sync from the shards, rank 0 saves), so
        # its model is a meta-device skeleton: no host copy of the weights in the driver
        from ...model.load import build_empty_model, load_tokenizer

        return build_empty_model(self.cfg.model.path), load_tokenizer(self.cfg.model.path)

    def _make_engine(self):
        if not self._hybrid:
            return super()._make_engine()
        return WorkerRollouts(self.group, self.cfg, log=self.log)

    def _update(self, plan: list[list[Micro]], step: int) -> UpdateResult:
        if self._hybrid:
            self.engine.sleep()          # (no-op when the old-log-prob pass already put them to sleep)
        res = UpdateResult.merge(self.group.call("update", plan, self.spec))
        if self._hybrid:
            self.engine.mark_stale()
        else:
            self._pull_weights()
        drill("update", step)
        return res

    def _model_writer(self):
        if not self._hybrid:
            return self.model
        return lambda folder: self.group.call("save_pretrained", str(folder))

    def _pull_weights(self) -> None:
        """Gather the full weights from the shards into the driver's model (the engine's source)."""
        full = self.group.call("full_state_dict")[0]
        with torch.no_grad():
            self.model.load_state_dict(full)

    def _checkpoint(self, step: int, bad_streak: int) -> None:
        state = {**self._state(step, bad_streak), "world_size": self.group.world}

        def write(tmp: Path) -> None:
            self.group.call("save", str(tmp))
            drill("checkpoint", step)

        self.ckpt.save_with(step, write, state)

    def _restore(self, path: Path) -> dict[str, Any]:
        if not (path / "shards").is_dir():
            raise TrainingError(f"{path}: not a checkpoint of a distributed run (no shards/ folder)")
        self.group.call("load", str(path))
        if self._hybrid:
            self.engine.mark_stale()
        else:
            self._pull_weights()
        return CheckpointManager.load_state(path)

    def close(self) -> None:
        super().close()
        if self.group is not None:
            self.group.shutdown()
            self.group = None
        if self._ray_started:
            import ray

            ray.shutdown()
            self._ray_started = False
