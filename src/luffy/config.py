"""Strict, typed run configuration (every section rejects unknown keys).

A run is one YAML file. ``inherit: other.yaml`` (path relative to the file) deep-merges the file
over its parent, so an ablation is a small diff of the paper setting (open-r1 style). Values can
also be overridden from the command line as dotted ``key=value`` pairs (YAML-parsed values).
Invalid input fails with one line naming the file and the key.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .algos import ADV_SCALES, ADV_STATS, LossConfig
from .utils.yamlfile import ConfigError, deep_merge, read_yaml

__all__ = ["ConfigError", "RunConfig", "apply_overrides", "deep_merge", "dump_config", "format_validation_error",
           "load_run_config", "read_yaml"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelSection(_Strict):
    path: str = Field(..., description="HF model id or local folder of the base (or SFT) model")
    dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "auto", description="auto: bf16 on CUDA or on CPUs with native bf16 (AVX512-BF16), else fp32"
    )
    gradient_checkpointing: bool = False


class DataSection(_Strict):
    train: str = Field(..., description="training rows: JSONL/parquet (project schema) or the OpenR1 parquet")
    val: str | None = Field(None, description="held-out rows for in-training validation")
    val_limit: int | None = Field(None, gt=0, description="validate on the first N held-out rows only")
    max_prompt_tokens: int = Field(1024, gt=0, description="longer prompts are dropped at load time (method §3.1)")
    max_response_tokens: int = Field(8192, gt=0, description="response limit; traces are truncated to it")


class GroupSection(_Strict):
    """Group composition per prompt (method §1.1): on-policy rollouts plus off-policy traces."""

    n_on: int = Field(7, ge=0, description="on-policy rollouts per prompt")
    n_off: int = Field(1, ge=0, description="off-policy trace members per prompt (≤ traces available)")
    prefix_ratio: float = Field(
        1.0, ge=0.0, le=1.0,
        description="ρ: the off-policy member is the first ⌊ρ·|trace|⌋ trace tokens followed by an "
        "on-policy continuation (1.0 = the full trace, the paper setting)",
    )

    @model_validator(mode="after")
    def _nonempty(self) -> GroupSection:
        if self.n_on + self.n_off < 1:
            raise ValueError("group must have at least one member (n_on + n_off >= 1)")
        return self


class AdvantageSection(_Strict):
    stats: str = Field("group", description=f"one of {ADV_STATS.names()}")
    scale: str = Field("none", description=f"one of {ADV_SCALES.names()}")
    eps: float = Field(1e-6, ge=0)

    @model_validator(mode="after")
    def _known(self) -> AdvantageSection:
        ADV_STATS.get(self.stats)
        ADV_SCALES.get(self.scale)
        return self


class RolloutSection(_Strict):
    engine: Literal["hf", "vllm"] = "hf"
    temperature: float = Field(1.0, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    max_batch_size: int = Field(256, gt=0, description="HF engine: sequences per batch")
    hf_decode: Literal["compact", "generate"] = Field(
        "compact", description="HF engine: compact = its own KV-cached loop, finished sequences leave the batch; "
        "generate = transformers' model.generate (luffy.rollout.hf_engine)")
    vllm_enforce_eager: bool = True
    vllm_gpu_memory_utilization: float = Field(0.5, gt=0, le=1)
    vllm_tensor_parallel_size: int = Field(1, ge=1)
    placement: Literal["driver", "workers"] = Field(
        "driver", description="driver: one engine in the driving process, synced from the full weights after "
        "every update; workers (hybrid engine, resources.backend ray + engine vllm): every training worker "
        "hosts its own vLLM engine, rollouts are split across them by whole groups and each engine is "
        "synced from its worker's FSDP shards (luffy.train.distributed.hybrid)")


class OptimSection(_Strict):
    lr: float = Field(1e-6, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = Field(1.0, gt=0)
    schedule: Literal["constant", "cosine", "linear"] = "constant"
    warmup_ratio: float = Field(0.0, ge=0, lt=1, description="fraction of optimizer steps of linear warmup")
    min_lr_ratio: float = Field(0.0, ge=0, le=1, description="cosine/linear schedules decay to lr × this "
                                "(the paper's SFT recipe: cosine to 0.1 × lr)")


class TrainSection(_Strict):
    steps: int = Field(500, gt=0, description="RL: training steps (rollout batches); SFT: ignored (epochs)")
    epochs: int = Field(3, gt=0, description="SFT: passes over the traces")
    prompts_per_step: int = Field(128, gt=0, description="RL rollout batch (prompts); SFT batch (pairs)")
    mini_batch_prompts: int = Field(64, gt=0, description="prompts per optimizer step (update batch)")
    micro_batch_seqs: int = Field(8, gt=0, description="sequences per forward/backward")
    ppo_epochs: int = Field(1, gt=0)
    seed: int = 0
    val_every: int = Field(10, ge=0, description="validate every N steps (0 = never; always at the end)")
    val_temperature: float = Field(0.6, ge=0)
    save_every: int = Field(50, ge=0, description="resumable checkpoint every N steps (0 = only at the end)")
    keep_checkpoints: int = Field(2, ge=1)
    max_bad_steps: int = Field(3, ge=1, description="consecutive non-finite steps before the run stops")
    log_every: int = Field(1, ge=0, description="without a progress bar (--no-progress, job logs): one plain "
                           "line every N steps with reward, entropy, validation, s/step and ETA (0 = never)")
    wandb: Literal["off", "offline", "online"] = Field(
        "off", description="also log every metrics record to Weights & Biases (needs the wandb package); "
        "offline: into <out>/wandb, for `wandb sync` later")
    wandb_project: str = Field("luffy", min_length=1)


class ResourcesSection(_Strict):
    """Where the update runs. Checked against the Ray cluster before any model is loaded."""

    backend: Literal["local", "ray"] = Field(
        "local", description="local: this process trains (luffy.train.Trainer); ray: a Ray worker group "
        "with FSDP2 trains and this process drives it (luffy.train.distributed.DistTrainer)")
    nodes: int = Field(1, ge=1, description="ray: nodes the workers are spread over (one placement bundle each)")
    workers_per_node: int = Field(
        1, ge=1, description="ray: training workers (data-parallel ranks) per node; on CUDA one per GPU")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="where the update runs: ray: the workers' device, auto = cuda when the Ray cluster "
        "has GPUs; local: this process's device, auto = cuda when torch sees a GPU; else cpu")
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


class RunConfig(_Strict):
    """One training run. Defaults are the released LUFFY run (method §1.6) at paper scale."""

    method: Literal["rl", "sft"] = Field("rl", description="rl: (mixed-)policy RL; sft: NLL on the traces")
    off_policy_objective: Literal["policy", "sft"] = Field(
        "policy",
        description="how off-policy members train: 'policy' = shaped policy loss (LUFFY); "
        "'sft' = NLL term with sft_coef and pg on on-policy members only (RL w/ SFT loss, method §2)",
    )
    sft_coef: float = Field(1.0, ge=0)
    entropy_coef: float = Field(0.001, description="entropy bonus weight (train.sh: 0.001; paper text: 0.01)")
    model: ModelSection
    data: DataSection
    group: GroupSection = GroupSection()
    advantage: AdvantageSection = AdvantageSection()
    loss: LossConfig = LossConfig()
    rollout: RolloutSection = RolloutSection()
    optim: OptimSection = OptimSection()
    train: TrainSection = TrainSection()
    resources: ResourcesSection = Field(
        ResourcesSection(), description="where the update runs: this process (default) or a Ray worker group")

    @model_validator(mode="after")
    def _combinations(self) -> RunConfig:
        t = self.train
        if t.mini_batch_prompts > t.prompts_per_step:
            raise ValueError("train.mini_batch_prompts must be <= train.prompts_per_step")
        if t.prompts_per_step % t.mini_batch_prompts:
            raise ValueError("train.prompts_per_step must be a multiple of train.mini_batch_prompts")
        if self.method == "rl" and self.group.n_on == 0 and self.group.prefix_ratio >= 1.0 \
                and self.off_policy_objective == "policy":
            raise ValueError("group.n_on is 0 and traces are full: nothing is on-policy (use method: sft)")
        if self.off_policy_objective == "sft" and self.group.n_off == 0:
            raise ValueError("off_policy_objective 'sft' needs group.n_off >= 1")
        if self.rollout.placement == "workers":
            if self.resources.backend != "ray":
                raise ValueError("rollout.placement 'workers' needs resources.backend: ray (the engines live in "
                                 "the training workers)")
            if self.rollout.engine != "vllm":
                raise ValueError("rollout.placement 'workers' needs rollout.engine: vllm (the HF engine's samples "
                                 "depend on the batch layout, so they would change with the number of workers)")
        if self.loss.norm_length is not None and self.loss.norm_length < self.data.max_response_tokens:
            raise ValueError("loss.norm_length must be >= data.max_response_tokens (or null to use it)")
        return self

    def loss_config(self) -> LossConfig:
        """The loss with norm_length resolved to the response limit (the reference's L)."""
        if self.loss.norm_length is None:
            return self.loss.model_copy(update={"norm_length": self.data.max_response_tokens})
        return self.loss


# ------------------------------------------------------------------------------------------------
# loading


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply ``a.b.c=value`` overrides (value parsed as YAML)."""
    data = copy.deepcopy(data)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected key=value")
        key, raw = item.split("=", 1)
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a section")
        node[parts[-1]] = yaml.safe_load(raw)
    return data


def format_validation_error(source: str, err: ValidationError) -> str:
    first = err.errors()[0]
    loc = ".".join(str(x) for x in first["loc"]) or "<root>"
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    return f"{source}: {loc}: {msg}" + (f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else "")


def load_run_config(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    data = apply_overrides(read_yaml(path), overrides or [])
    try:
        return RunConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(format_validation_error(str(path), e)) from None
    except ValueError as e:  # registry lookups inside validators
        raise ConfigError(f"{path}: {str(e).splitlines()[0]}") from None


def dump_config(cfg: BaseModel) -> dict[str, Any]:
    return cfg.model_dump(mode="json")
