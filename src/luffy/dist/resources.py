"""The ``resources:`` section of a run config: where the training update runs (issue #6).

Everything else in a run config is the same for one process and for a Ray worker group; only this
section differs. ``backend: local`` (the default) is the single-process trainer; ``backend: ray``
runs the update on ``nodes × workers_per_node`` FSDP2 workers (:mod:`luffy.dist`).

This module only declares and checks the section: it imports neither Ray nor torch.distributed,
so ``luffy.config`` can include it without pulling either in.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ResourcesSection(BaseModel):
    """Where the update runs. Checked against the Ray cluster before any model is loaded."""

    model_config = ConfigDict(extra="forbid")

    backend: Literal["local", "ray"] = Field(
        "local", description="local: this process trains (luffy.train.Trainer); ray: a Ray worker group "
        "with FSDP2 trains and this process drives it (luffy.dist.DistTrainer)")
    nodes: int = Field(1, ge=1, description="ray: nodes the workers are spread over (one placement bundle each)")
    workers_per_node: int = Field(
        1, ge=1, description="ray: training workers (data-parallel ranks) per node; on CUDA one per GPU")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="ray: the workers' device; auto = cuda when the Ray cluster has GPUs, else cpu")
    cpus_per_worker: float = Field(1.0, gt=0, description="ray: CPUs reserved per worker (also its torch threads)")
    ray_address: str | None = Field(
        None, description="ray: null = $RAY_ADDRESS if set (scripts/ray-slurm.sh sets it), else start a "
        "local Ray instance; 'auto' = the cluster this node belongs to; 'host:port' = that cluster's head")
    connect_timeout_s: float = Field(10.0, gt=0, description="ray: how long to try to reach the cluster / "
                                     "place the workers before failing")
    call_timeout_s: float = Field(3600.0, gt=0, description="ray: a worker call (one update, a checkpoint) "
                                  "that takes longer fails the run; also torch.distributed's collective timeout")

    @model_validator(mode="after")
    def _local_is_one_process(self) -> ResourcesSection:
        if self.backend == "local" and (self.nodes, self.workers_per_node) != (1, 1):
            raise ValueError("resources.nodes / resources.workers_per_node > 1 need resources.backend: ray")
        return self

    @property
    def world_size(self) -> int:
        return self.nodes * self.workers_per_node
