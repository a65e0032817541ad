"""Mixed on/off-policy groups (method §1.1): per prompt, ``n_off`` trace members + ``n_on`` rollouts.

Off-policy traces are first-class group members: their tokens come from the data, never from a
fake generation. With ``prefix_ratio`` ρ < 1 (partial-prefix guidance, not used in the paper), an
off-policy member is the first ⌊ρ·|trace|⌋ trace tokens followed by an on-policy continuation
sampled from prompt ⊕ prefix; only the prefix tokens are marked off-policy.

Trace tokenization follows the reference: when the rendered prompt ends with ``"<think>\\n"`` and
the trace starts with it, those characters are dropped; the trace is tokenized without special
tokens and one EOS is appended. Deviation: a trace longer than the response limit is truncated to
``max_response_tokens − 1`` tokens *before* the EOS is appended, so it keeps its EOS (the
reference truncates first and can lose it, method §8); truncations are counted.

Members are ordered per group: off-policy members first (copy index 0 in the reference), then
the on-policy rollouts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..data.schema import DataFormatError, TrainRow
from ..data.templates import render_prompt, strip_think_prefix


@dataclass
class Member:
    """One response of a group. ``off_mask[t]`` is True for tokens taken from a trace."""

    group: int
    row: TrainRow
    prompt_ids: list[int]
    response_ids: list[int]
    off_mask: list[bool]
    finish_reason: str
    trace_index: int | None = None  # which trace (off-policy members)

    @property
    def is_off(self) -> bool:
        return any(self.off_mask)


@dataclass
class GroupStats:
    truncated_traces: int = 0
    prefix_tokens: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def encode_prompt(tokenizer: Any, row: TrainRow) -> tuple[str, list[int]]:
    """Render the chat prompt (generation prompt included) and tokenize it without extra specials."""
    text = render_prompt(tokenizer, row.prompt)
    return text, tokenizer(text, add_special_tokens=False)["input_ids"]


def encode_trace(tokenizer: Any, prompt_text: str, trace_text: str, max_tokens: int) -> tuple[list[int], bool]:
    """Trace → token ids ending in EOS, at most ``max_tokens`` long. Returns (ids, truncated)."""
    if tokenizer.eos_token_id is None:
        raise ValueError("tokenizer has no eos_token_id; cannot terminate off-policy traces")
    text = strip_think_prefix(prompt_text, trace_text)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    truncated = len(ids) > max_tokens - 1
    return ids[: max_tokens - 1] + [tokenizer.eos_token_id], truncated


def check_rows_have_traces(rows: list[TrainRow], n_off: int, source: str) -> None:
    """Fail before training when a row has fewer traces than ``n_off`` (names the first such row)."""
    if n_off == 0:
        return
    for i, r in enumerate(rows):
        if len(r.traces) < n_off:
            raise DataFormatError(
                f"{source}: row {i} (id {r.id!r}) has {len(r.traces)} trace(s) but group.n_off = {n_off}"
            )


def build_groups(
    rows: list[TrainRow],
    tokenizer: Any,
    engine: Any,
    *,
    n_on: int,
    n_off: int,
    prefix_ratio: float,
    sampling: Any,
    max_response_tokens: int,
) -> tuple[list[Member], GroupStats]:
    """Build the step's groups. ``sampling`` is a ``luffy.rollout.SamplingConfig``."""
    stats = GroupStats()
    prompts = [encode_prompt(tokenizer, r) for r in rows]
    members: list[Member] = []
    off_members: list[list[Member]] = [[] for _ in rows]
    continuations: list[tuple[Member, list[int]]] = []
    for g, (row, (ptext, pids)) in enumerate(zip(rows, prompts)):
        if len(row.traces) < n_off:
            raise DataFormatError(f"row id {row.id!r}: {len(row.traces)} trace(s) < group.n_off = {n_off}")
        for k in range(n_off):
            ids, trunc = encode_trace(tokenizer, ptext, row.traces[k].text, max_response_tokens)
            stats.truncated_traces += int(trunc)
            if prefix_ratio >= 1.0:
                m = Member(g, row, pids, ids, [True] * len(ids), "length" if trunc else "stop", k)
            else:
                prefix = ids[: math.floor(len(ids) * prefix_ratio)]
                m = Member(g, row, pids, list(prefix), [True] * len(prefix), "stop", k)
                if not prefix or prefix[-1] != tokenizer.eos_token_id:
                    continuations.append((m, pids + prefix))
            stats.prefix_tokens += sum(m.off_mask)
            off_members[g].append(m)

    if continuations:
        # one continuation per partial-prefix member; budget = what the prefix left of the limit
        budget = max_response_tokens - max(len(m.response_ids) for m, _ in continuations)
        sp = sampling.model_copy(update={"max_new_tokens": max(1, budget)})
        outs = engine.generate([p for _, p in continuations], 1, sp)
        for (m, _), out in zip(continuations, outs):
            cont = out[0].response_ids[: max_response_tokens - len(m.response_ids)]
            m.response_ids = m.response_ids + list(cont)
            m.off_mask = m.off_mask + [False] * len(cont)
            m.finish_reason = out[0].finish_reason

    on_out = engine.generate([p for _, p in prompts], n_on, sampling) if n_on > 0 else [[] for _ in rows]
    for g, row in enumerate(rows):
        members.extend(off_members[g])
        for gen in on_out[g]:
            members.append(Member(g, row, prompts[g][1], list(gen.response_ids),
                                  [False] * len(gen.response_ids), gen.finish_reason))
    return members, stats
