"""Batch tensors and per-token log-probs / entropy of the taken tokens.

Layout for a micro-batch of m sequences: prompts left-padded to P, responses right-padded to R::

    input_ids   long[m, P+R]   [pad … prompt | response … pad]
    attn        long[m, P+R]
    position    long[m, P+R]   cumsum(attn) − 1 (so left padding does not shift positions)
    resp_mask   bool[m, R]     valid response tokens (EOS included)
    off_mask    bool[m, R]     off-policy (trace) tokens

Logits at column P−1+t predict response token t, so ``logp[:, t]`` = log π(y_t | prompt, y_<t).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch
from torch.utils.checkpoint import checkpoint

from ..model.attention import eager_attention_on_cpu


@dataclass
class MicroBatch:
    input_ids: torch.Tensor
    attn: torch.Tensor
    position: torch.Tensor
    resp_mask: torch.Tensor
    off_mask: torch.Tensor
    prompt_width: int

    @property
    def resp_ids(self) -> torch.Tensor:
        return self.input_ids[:, self.prompt_width:]

    def to(self, device: torch.device | str) -> MicroBatch:
        if torch.device(device) == self.input_ids.device:
            return self
        return MicroBatch(self.input_ids.to(device), self.attn.to(device), self.position.to(device),
                          self.resp_mask.to(device), self.off_mask.to(device), self.prompt_width)


def collate(prompts: list[list[int]], responses: list[list[int]], off_masks: list[list[bool]],
            pad_id: int) -> MicroBatch:
    m = len(prompts)
    p_w = max(len(p) for p in prompts)
    r_w = max(1, max(len(r) for r in responses))
    ids = torch.full((m, p_w + r_w), pad_id, dtype=torch.long)
    attn = torch.zeros((m, p_w + r_w), dtype=torch.long)
    resp = torch.zeros((m, r_w), dtype=torch.bool)
    off = torch.zeros((m, r_w), dtype=torch.bool)
    for i, (p, r, o) in enumerate(zip(prompts, responses, off_masks)):
        ids[i, p_w - len(p): p_w] = torch.tensor(p, dtype=torch.long)
        attn[i, p_w - len(p): p_w] = 1
        if r:
            ids[i, p_w: p_w + len(r)] = torch.tensor(r, dtype=torch.long)
            attn[i, p_w: p_w + len(r)] = 1
            resp[i, : len(r)] = True
            off[i, : len(r)] = torch.tensor(o, dtype=torch.bool)
    position = (attn.cumsum(-1) - 1).clamp(min=0)
    return MicroBatch(ids, attn, position, resp, off, p_w)


#: Response positions per log-softmax chunk are chosen so that one chunk holds at most this many
#: float32 logits (64 MiB); a micro-batch that fits in one chunk is computed in one piece.
LOGIT_CHUNK_ELEMENTS = 1 << 24


def token_logprobs(model: torch.nn.Module, mb: MicroBatch, *, temperature: float = 1.0,
                   with_entropy: bool = True,
                   compute_dtype: str | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(logp float[m,R], entropy float[m,R] or None) of the response tokens under ``model``.

    Logits are divided by the sampling temperature, as the reference does when recomputing
    old log-probs (method §1.0 step 6). Computed in float32. ``compute_dtype="bfloat16"``: the model's
    forward runs under ``torch.autocast`` in bf16 (fp32 weights, bf16 matmuls); log-softmax and
    entropy stay float32.

    Memory/compute (same values as :func:`token_logprobs_reference`, up to float rounding):

    * only the R response positions go through the output head (the prompt positions' logits are
      never used);
    * for plain-head families (:data:`PLAIN_HEAD_TYPES`: Qwen2/3, Llama, Mistral) the decoder runs
      once and the output head itself runs per chunk of response positions
      (:data:`LOGIT_CHUNK_ELEMENTS` logits each) together with the float32 log-softmax / entropy,
      under activation checkpointing when a gradient is needed: no ``[m, R, V]`` logits tensor, in
      any dtype, exists in the forward or the backward pass (at 7B, 4 × 8k × 152k bf16 logits would
      be 10 GB per micro-batch). Other models: ``forward`` with ``logits_to_keep`` when it takes
      that argument, then the same chunked float32 statistics over the model-dtype logits.
      One chunk: computed directly;
    * a bf16/fp16 model on CPU runs this forward (and its backward) with eager attention
      (:mod:`luffy.model.attention`); the model's setting is restored afterwards. Same math, other
      rounding (float32 models are untouched).
    """
    r_w = mb.input_ids.shape[1] - mb.prompt_width
    m, t = mb.input_ids.shape
    cdt = getattr(torch, compute_dtype) if compute_dtype else None
    dev = mb.input_ids.device.type
    with eager_attention_on_cpu(model, m, t, t, keep_for_backward=torch.is_grad_enabled(), compute_dtype=cdt), \
            torch.autocast(dev, dtype=cdt or torch.bfloat16, enabled=cdt is not None):
        if _plain_head(model):
            return _head_forward(model)(mb, temperature, with_entropy)
        kwargs = {"logits_to_keep": r_w + 1} if _takes_logits_to_keep(model) else {}
        out = model(input_ids=mb.input_ids, attention_mask=mb.attn, position_ids=mb.position, use_cache=False,
                    **kwargs)
    logits = out.logits[:, -(r_w + 1): -1]                                   # [m, R, V], model dtype
    return _chunked_stats(lambda s, e: logits[:, s:e], mb.resp_ids, logits.shape[-1], temperature, with_entropy,
                          needs_grad=torch.is_grad_enabled() and logits.requires_grad)


#: Decoder-only families whose logits are exactly ``lm_head(last hidden state)`` (no soft-capping or
#: logit scale): for them the output head itself runs chunk by chunk (:func:`_head_logp`).
PLAIN_HEAD_TYPES = frozenset({"qwen2", "qwen3", "llama", "mistral"})
_HEAD_METHOD = "_luffy_head_logp"


def _plain_head(model: torch.nn.Module) -> bool:
    cfg = getattr(model, "config", None)
    return (getattr(cfg, "model_type", None) in PLAIN_HEAD_TYPES and hasattr(model, "get_decoder")
            and isinstance(model.get_output_embeddings(), torch.nn.Linear)
            and not getattr(cfg, "final_logit_softcapping", None) and getattr(cfg, "logit_scale", None) in (None, 1.0))


def _head_forward(model: torch.nn.Module):
    """``model``'s chunked-head forward as a method of the model: under FSDP2 it is registered with
    ``register_fsdp_forward_method`` so the root's parameters (embeddings, final norm, head) are
    gathered around it and its backward, as for ``forward``."""
    fn = getattr(model, _HEAD_METHOD, None)
    if fn is None:
        from torch.distributed.fsdp import FSDPModule, register_fsdp_forward_method

        setattr(model, _HEAD_METHOD, _head_logp.__get__(model))
        if isinstance(model, FSDPModule):
            register_fsdp_forward_method(model, _HEAD_METHOD)
        fn = getattr(model, _HEAD_METHOD)
    return fn


def _head_logp(model: torch.nn.Module, mb: MicroBatch, temperature: float,
               with_entropy: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Decoder once, then ``lm_head`` + float32 log-softmax / entropy per chunk of response positions:
    no ``[m, R, V]`` logits tensor exists at any time (forward or backward)."""
    r_w = mb.input_ids.shape[1] - mb.prompt_width
    hidden = model.get_decoder()(input_ids=mb.input_ids, attention_mask=mb.attn, position_ids=mb.position,
                                 use_cache=False).last_hidden_state[:, -(r_w + 1): -1]   # [m, R, H]
    head = model.get_output_embeddings()
    return _chunked_stats(lambda s, e: hidden[:, s:e], mb.resp_ids, head.out_features, temperature, with_entropy,
                          needs_grad=torch.is_grad_enabled() and hidden.requires_grad, head=head)


def _chunked_stats(piece, ids: torch.Tensor, vocab: int, temperature: float, with_entropy: bool, *,
                   needs_grad: bool, head: torch.nn.Module | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(logp, entropy) float32[m, R] over chunks of response positions. ``piece(s, e)``: logits (or, with
    ``head``, hidden states that ``head`` turns into logits) of positions s..e-1. Each chunk holds at most
    :data:`LOGIT_CHUNK_ELEMENTS` logits and runs under activation checkpointing when a gradient is needed."""
    m, r_w = ids.shape
    step = max(1, LOGIT_CHUNK_ELEMENTS // max(1, m * vocab))

    def stats(x: torch.Tensor, taken: torch.Tensor):
        return _logp_entropy(head(x) if head is not None else x, taken, temperature, with_entropy)

    if step >= r_w:
        return stats(piece(0, r_w), ids)
    lps, ents = [], []
    for s in range(0, r_w, step):
        args = (piece(s, s + step), ids[:, s: s + step])
        lp, ent = checkpoint(stats, *args, use_reentrant=False) if needs_grad else stats(*args)
        lps.append(lp)
        ents.append(ent)
    return torch.cat(lps, dim=1), (torch.cat(ents, dim=1) if with_entropy else None)


def _logp_entropy(logits: torch.Tensor, ids: torch.Tensor, temperature: float,
                  with_entropy: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """logits [m, r, V] (any float dtype), ids long[m, r] -> (logp float32[m, r], entropy float32[m, r] | None)."""
    x = logits.float()
    if temperature not in (0.0, 1.0):
        x = x / temperature
    logz = torch.logsumexp(x, dim=-1)                                        # [m, r]
    logp = x.gather(-1, ids.unsqueeze(-1)).squeeze(-1) - logz               # [m, r]
    if not with_entropy:
        return logp, None
    ent = logz - (torch.softmax(x, dim=-1) * x).sum(-1)                      # H = logZ - E_p[x]
    return logp, ent


def _takes_logits_to_keep(model: torch.nn.Module) -> bool:
    try:
        return "logits_to_keep" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


def token_logprobs_reference(model: torch.nn.Module, mb: MicroBatch, *, temperature: float = 1.0,
                             with_entropy: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The straightforward computation :func:`token_logprobs` must equal: logits at every position,
    one float32 ``[m, R, V]`` copy, log-softmax and entropy over it. Tests and benchmarks only."""
    out = model(input_ids=mb.input_ids, attention_mask=mb.attn, position_ids=mb.position, use_cache=False)
    p_w = mb.prompt_width
    logits = out.logits[:, p_w - 1: -1].float()
    if temperature not in (0.0, 1.0):
        logits = logits / temperature
    logz = torch.logsumexp(logits, dim=-1)                                   # [m, R]
    taken = logits.gather(-1, mb.resp_ids.unsqueeze(-1)).squeeze(-1)       # [m, R]
    logp = taken - logz
    ent = None
    if with_entropy:
        probs = torch.softmax(logits, dim=-1)
        ent = logz - (probs * logits).sum(-1)
    return logp, ent
