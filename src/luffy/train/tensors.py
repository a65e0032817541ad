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

    * only the R+1 last positions go through the output head (``logits_to_keep``; the prompt
      positions' logits are never used), when the model's ``forward`` takes that argument;
    * the float32 log-softmax / entropy runs over chunks of response positions
      (:data:`LOGIT_CHUNK_ELEMENTS` logits each), each under activation checkpointing when a
      gradient is needed, so no float32 ``[m, R, V]`` tensor (nor its softmax) is kept for the
      backward pass -- only the model-dtype logits are. One chunk: computed directly, as before;
    * a bf16/fp16 model on CPU runs this forward (and its backward) with eager attention
      (:mod:`luffy.model.attention`); the model's setting is restored afterwards. Same math, other
      rounding (float32 models are untouched).
    """
    r_w = mb.input_ids.shape[1] - mb.prompt_width
    kwargs = {"logits_to_keep": r_w + 1} if _takes_logits_to_keep(model) else {}
    m, t = mb.input_ids.shape
    cdt = getattr(torch, compute_dtype) if compute_dtype else None
    dev = mb.input_ids.device.type
    with eager_attention_on_cpu(model, m, t, t, keep_for_backward=torch.is_grad_enabled(), compute_dtype=cdt), \
            torch.autocast(dev, dtype=cdt or torch.bfloat16, enabled=cdt is not None):
        out = model(input_ids=mb.input_ids, attention_mask=mb.attn, position_ids=mb.position, use_cache=False,
                    **kwargs)
    logits = out.logits[:, -(r_w + 1): -1]                                   # [m, R, V], model dtype
    ids = mb.resp_ids                                                        # [m, R]
    m, _, v = logits.shape
    step = max(1, LOGIT_CHUNK_ELEMENTS // max(1, m * v))
    if step >= r_w:
        return _logp_entropy(logits, ids, temperature, with_entropy)
    lps, ents = [], []
    for s in range(0, r_w, step):
        args = (logits[:, s: s + step], ids[:, s: s + step], temperature, with_entropy)
        if torch.is_grad_enabled() and logits.requires_grad:
            lp, ent = checkpoint(_logp_entropy, *args, use_reentrant=False)
        else:
            lp, ent = _logp_entropy(*args)
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
