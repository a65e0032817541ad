"""Attention-kernel choice for bf16/fp16 models on CPU: eager attention instead of SDPA's fused kernel.

Measured on the project's CPU machine (BENCHMARKS.md §5): for a bf16 model, torch's fused SDPA CPU
kernel is slower than transformers' eager attention (two matmuls and a float32 softmax) at this
project's sizes -- the tiny model's log-prob forward+backward 1.3-1.4x faster with eager, HF-engine
generation 1.38x (tiny) and 1.40x (SmolLM2-135M shape); no gain was measured for float32 models,
which are left alone.

:func:`eager_attention_on_cpu` switches a model to ``"eager"`` for a block and back to ``"sdpa"``
afterwards (``model.set_attn_implementation``, ~0.3 ms each way), only when all of these hold:
:data:`ENABLED`; the model is on CPU in bf16/fp16; it currently uses ``"sdpa"``; and the attention
matrices eager materialises stay under :data:`MAX_BYTES` (eager needs O(q·kv) memory per head:
with ``keep_for_backward`` every layer's are kept, otherwise one layer's at a time). Same math,
other rounding; nothing changes on GPUs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

#: False: models always run their own attention implementation.
ENABLED = True
#: Largest eager attention footprint (bytes) for which the switch is made.
MAX_BYTES = 1 << 30


def eager_attention_bytes(model: torch.nn.Module, batch: int, q_len: int, kv_len: int, *,
                          keep_for_backward: bool) -> int:
    """Bytes of the attention matrices eager attention holds: float32 softmax + its model-dtype copy
    (8 bytes per score) per head, for every layer when they are kept for the backward pass."""
    cfg = getattr(model, "config", None)
    heads = int(getattr(cfg, "num_attention_heads", 0) or 0)
    layers = int(getattr(cfg, "num_hidden_layers", 0) or 0) if keep_for_backward else 1
    return layers * batch * heads * q_len * kv_len * 8


@contextlib.contextmanager
def eager_attention_on_cpu(model: torch.nn.Module, batch: int, q_len: int, kv_len: int, *,
                           keep_for_backward: bool, compute_dtype: torch.dtype | None = None) -> Iterator[bool]:
    """Run the block with eager attention if the conditions of the module docstring hold; yields whether
    it switched. ``compute_dtype``: the dtype the block computes in (autocast), if not the parameters'.
    The model's ``"sdpa"`` setting is restored even if the block raises."""
    p = next(model.parameters(), None)
    switch = (
        ENABLED
        and p is not None
        and p.device.type == "cpu"
        and (compute_dtype or p.dtype) in (torch.bfloat16, torch.float16)
        and hasattr(model, "set_attn_implementation")
        and getattr(getattr(model, "config", None), "_attn_implementation", None) == "sdpa"
        and eager_attention_bytes(model, batch, q_len, kv_len, keep_for_backward=keep_for_backward) <= MAX_BYTES
    )
    if not switch:
        yield False
        return
    model.set_attn_implementation("eager")
    try:
        yield True
    finally:
        model.set_attn_implementation("sdpa")
