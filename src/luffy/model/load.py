"""Load a causal LM and its tokenizer from a local HF folder or a Hub id (method §8).

The same code path serves the tiny base model (a local folder written by
:func:`luffy.model.tiny.build_base_model`) and real models such as
``Elliott/Qwen2.5-Math-7B-16k-think``. Local folders load with ``local_files_only=True``, so
they never touch the network.

dtype ``"auto"`` (see :func:`pick_dtype`): bf16 on CUDA devices that support it, and on CPUs
with native AVX-512 bf16 (``torch.cpu._is_avx512_bf16_supported()``); fp32 everywhere else --
emulated bf16 on AVX2-only CPUs is slower than fp32 (env notes §3). Deviation from the paper
(method §8: fp32 master weights, bf16 compute): the dtype chosen here is the weights' dtype;
trainers that want fp32 masters pass ``dtype="float32"`` and autocast themselves.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

log = logging.getLogger(__name__)

DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")


class ModelLoadError(ValueError):
    """A model or tokenizer could not be loaded; the message names the path or id."""


def pick_dtype(dtype: str | torch.dtype = "auto", device: str | torch.device = "cpu") -> torch.dtype:
    """Resolve ``"auto"`` / a dtype name / a ``torch.dtype`` to a ``torch.dtype`` for ``device``."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype != "auto":
        if dtype not in DTYPES:
            raise ValueError(f"unknown dtype {dtype!r}; expected 'auto' or one of {sorted(DTYPES)}")
        return DTYPES[dtype]
    dev = torch.device(device)
    if dev.type == "cuda":
        return (
            torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32
        )
    if dev.type == "cpu" and torch.cpu._is_avx512_bf16_supported():
        return torch.bfloat16
    return torch.float32


def pick_device(want: str) -> str:
    """``auto`` = ``cuda`` when torch sees a GPU, else ``cpu``; ``cuda`` without one is a one-line error."""
    if want == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if want == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError("resources.device is cuda but torch sees no CUDA device here")
    return want


def load_tokenizer(path_or_id: str | Path) -> Any:
    """The tokenizer of a model folder or Hub id; ``pad_token`` falls back to ``eos_token``."""
    source, local = _resolve(path_or_id)
    if local and not any((Path(source) / f).is_file() for f in TOKENIZER_FILES):
        raise ModelLoadError(f"{source}: model folder has no tokenizer (none of {list(TOKENIZER_FILES)})")
    try:
        tok = AutoTokenizer.from_pretrained(source, local_files_only=local)
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"{source}: cannot load tokenizer ({_one_line(e)})") from None
    if tok.pad_token is None and tok.eos_token is not None:
        log.warning("%s: tokenizer has no pad token; using eos %r as pad", source, tok.eos_token)
        tok.pad_token = tok.eos_token
    return tok


def load_model(
    path_or_id: str | Path, *, dtype: str | torch.dtype = "auto", device: str | torch.device = "cpu"
) -> tuple[Any, Any]:
    """``(model, tokenizer)`` from a local HF folder or a Hub id, in eval mode on ``device``."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ModelLoadError(f"bad device {device!r} ({_one_line(e)})") from None
    torch_dtype = pick_dtype(dtype, dev)
    source, local = _resolve(path_or_id)
    if local and not (Path(source) / "config.json").is_file():
        raise ModelLoadError(f"{source}: not a model folder (no config.json)")
    tok = load_tokenizer(source)
    try:
        model = AutoModelForCausalLM.from_pretrained(source, dtype=torch_dtype, local_files_only=local)
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"{source}: cannot load model ({_one_line(e)})") from None
    return model.to(dev).eval(), tok


def safetensors_names(folder: str | Path) -> set[str]:
    """Tensor names in a local model folder's ``*.safetensors`` files (empty: none, or not a folder)."""
    from safetensors import safe_open

    folder = Path(folder)
    names: set[str] = set()
    for f in sorted(folder.glob("*.safetensors")) if folder.is_dir() else []:
        with safe_open(str(f), framework="pt") as sf:
            names.update(sf.keys())
    return names


def build_empty_model(path_or_id: str | Path) -> Any:
    """The model of ``path_or_id``'s config on the meta device (float32, no storage, no weights read):
    for sharding before any memory is allocated (:mod:`luffy.train.distributed.worker`)."""
    from transformers import AutoConfig

    source, local = _resolve(path_or_id)
    try:
        config = AutoConfig.from_pretrained(source, local_files_only=local)
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"{source}: cannot read the model config ({_one_line(e)})") from None
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config, dtype=torch.float32)


def _resolve(path_or_id: str | Path) -> tuple[str, bool]:
    """``(source, is_local)``. Existing paths are local; so is anything that cannot be a Hub id."""
    s = str(path_or_id)
    p = Path(s).expanduser()
    if p.exists():
        if not p.is_dir():
            raise ModelLoadError(f"{p}: not a model folder (not a directory)")
        return str(p), True
    if isinstance(path_or_id, Path) or s.startswith((".", "/", "~")) or not _HUB_ID.match(s):
        raise ModelLoadError(f"{s}: no such model folder (and not a Hugging Face Hub id)")
    return s, False


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())[:300]
