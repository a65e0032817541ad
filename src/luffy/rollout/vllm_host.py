"""What an in-process vLLM engine does to its host process, and how :mod:`luffy.rollout.vllm_engine`
undoes or shapes it: CPU environment defaults set before ``LLM()``, one known-harmless warning
dropped, and the process state (torch threads, RNGs, ``LD_PRELOAD``, ``gc.freeze``) restored after."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import random
from collections.abc import Iterator

import numpy as np
import torch


def _set_cpu_env_defaults(kv_cache_space_gib: int) -> None:
    cpus = (
        sorted(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else list(range(os.cpu_count() or 1))
    )
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(kv_cache_space_gib))
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", ",".join(map(str, cpus)))
    os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")


class _DropRecord(logging.Filter):
    """Drops one known-harmless vLLM warning: with ``skip_tokenizer_init`` its chat-template warmup
    cannot find a tokenizer and logs a traceback (we pass token ids, no chat template is used)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "Chat template warmup failed"


@contextlib.contextmanager
def _quiet_chat_template_warmup() -> Iterator[None]:
    log, flt = logging.getLogger("vllm.renderers.base"), _DropRecord()
    log.addFilter(flt)
    try:
        yield
    finally:
        log.removeFilter(flt)


@contextlib.contextmanager
def _preserve_process_state() -> Iterator[None]:
    """Undo what an in-process ``LLM()`` changes in the host process (see the module docstring)."""
    set_threads, threads = torch.set_num_threads, torch.get_num_threads()
    rng = (torch.get_rng_state(), random.getstate(), np.random.get_state())
    preload = os.environ.get("LD_PRELOAD")
    try:
        yield
    finally:
        torch.set_num_threads = set_threads
        torch.set_num_threads(threads)
        torch.set_rng_state(rng[0])
        random.setstate(rng[1])
        np.random.set_state(rng[2])
        if preload is None:
            os.environ.pop("LD_PRELOAD", None)
        else:
            os.environ["LD_PRELOAD"] = preload
        gc.unfreeze()
