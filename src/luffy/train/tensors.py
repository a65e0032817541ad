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

from dataclasses import dataclass

import torch


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


def token_logprobs(model: torch.nn.Module, mb: MicroBatch, *, temperature: float = 1.0,
                   with_entropy: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(logp float[m,R], entropy float[m,R] or None) of the response tokens under ``model``.

    Logits are divided by the sampling temperature, as the reference does when recomputing
    old log-probs (spec §1.0 step 6). Computed in float32.
    """
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
