"""Rollout engines (method §1.0 step 2, §1.1): sample n responses per token-id prompt.

``make_engine("hf" | "vllm", model=..., model_path=..., tokenizer=..., **opts)`` builds one;
see :mod:`luffy.rollout.base` for the contract. The vLLM engine is imported only when asked for.
"""

from .base import (
    ENGINES,
    EngineUnavailableError,
    FinishReason,
    Generation,
    RolloutEngine,
    RolloutError,
    SamplingConfig,
    engine_options,
    make_engine,
)

__all__ = [
    "ENGINES",
    "EngineUnavailableError",
    "FinishReason",
    "Generation",
    "RolloutEngine",
    "RolloutError",
    "SamplingConfig",
    "engine_options",
    "make_engine",
]
