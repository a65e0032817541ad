"""Group construction (method §1.1): counts, masks, trace tokenization with and without <think>\\n."""

import pytest

from luffy.data.schema import DataFormatError, Trace, TrainRow
from luffy.model.tiny import build_tokenizer
from luffy.rollout import Generation, SamplingConfig
from luffy.rollout.groups import build_groups, encode_prompt, encode_trace


class FakeEngine:
    """Returns fixed responses and records what it was asked."""

    def __init__(self, eos: int, length: int = 3) -> None:
        self.eos, self.length, self.calls = eos, length, []

    def generate(self, prompts, n, sampling):
        self.calls.append((prompts, n, sampling.max_new_tokens))
        return [[Generation(list(p), [7] * self.length + [self.eos], "stop") for _ in range(n)] for p in prompts]


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer()


def row(i: int, trace: str = "<think>\n2+3=5\n</think>\nThe answer is \\boxed{5}.", n_traces: int = 1):
    return TrainRow(id=f"r{i}", prompt=[{"role": "user", "content": "Compute 2+3."}], answer="5",
                    traces=[Trace(trace)] * n_traces)


def test_trace_think_prefix_is_stripped_only_when_both_have_it(tok):
    ptext, _ = encode_prompt(tok, row(0))
    assert ptext.endswith("<think>\n")
    with_prefix, _ = encode_trace(tok, ptext, "<think>\n2+3=5\n</think>\n\\boxed{5}", 100)
    without, _ = encode_trace(tok, ptext, "2+3=5\n</think>\n\\boxed{5}", 100)
    assert with_prefix == without
    assert tok.decode(with_prefix) == "2+3=5\n</think>\n\\boxed{5}<|endoftext|>"
    assert with_prefix[-1] == tok.eos_token_id
    # a prompt that does not end with <think>\n keeps the trace's own <think>\n
    kept, _ = encode_trace(tok, "User: hi\n", "<think>\nx</think>", 100)
    assert tok.decode(kept).startswith("<think>\n")


def test_trace_truncation_keeps_eos_and_is_reported(tok):
    ptext, _ = encode_prompt(tok, row(0))
    ids, trunc = encode_trace(tok, ptext, "<think>\n" + "1+1=2\n" * 20, 10)
    assert trunc and len(ids) == 10 and ids[-1] == tok.eos_token_id
    ids, trunc = encode_trace(tok, ptext, "<think>\n1+1=2\n", 10)
    assert not trunc


def test_counts_order_and_masks(tok):
    eng = FakeEngine(tok.eos_token_id)
    rows = [row(0), row(1, n_traces=2)]
    sp = SamplingConfig(max_new_tokens=64)
    members, stats = build_groups(rows, tok, eng, n_on=3, n_off=1, prefix_ratio=1.0, sampling=sp,
                                  max_response_tokens=64)
    assert len(members) == 8
    assert [m.group for m in members] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert [m.is_off for m in members] == [True, False, False, False] * 2
    off = members[0]
    assert all(off.off_mask) and len(off.off_mask) == len(off.response_ids)
    assert off.response_ids[-1] == tok.eos_token_id
    for m in members[1:4]:
        assert not any(m.off_mask) and m.response_ids == [7, 7, 7, tok.eos_token_id]
    # the trace is never generated: only the on-policy prompts went to the engine, n = 3 each
    assert len(eng.calls) == 1 and eng.calls[0][1] == 3 and len(eng.calls[0][0]) == 2
    assert stats.truncated_traces == 0


def test_several_traces_per_prompt(tok):
    rows = [row(0, n_traces=2)]
    members, _ = build_groups(rows, tok, FakeEngine(tok.eos_token_id), n_on=2, n_off=2, prefix_ratio=1.0,
                              sampling=SamplingConfig(max_new_tokens=8), max_response_tokens=64)
    assert [m.is_off for m in members] == [True, True, False, False]
    assert [m.trace_index for m in members[:2]] == [0, 1]


def test_partial_prefix_guidance_masks_only_the_prefix(tok):
    eng = FakeEngine(tok.eos_token_id, length=2)
    ptext, pids = encode_prompt(tok, row(0))
    full, _ = encode_trace(tok, ptext, row(0).traces[0].text, 64)
    members, _ = build_groups([row(0)], tok, eng, n_on=1, n_off=1, prefix_ratio=0.5,
                              sampling=SamplingConfig(max_new_tokens=64), max_response_tokens=64)
    guided = members[0]
    k = len(full) // 2
    assert guided.response_ids[:k] == full[:k]
    assert guided.off_mask == [True] * k + [False] * 3
    assert guided.response_ids[k:] == [7, 7, tok.eos_token_id]
    # the continuation was sampled from prompt + prefix with the remaining budget
    cont_prompt, n, budget = eng.calls[0]
    assert cont_prompt == [pids + full[:k]] and n == 1 and budget == 64 - k


def test_too_few_traces_is_a_clear_error(tok):
    with pytest.raises(DataFormatError, match=r"row id 'r0': 1 trace\(s\) < group.n_off = 2"):
        build_groups([row(0)], tok, FakeEngine(tok.eos_token_id), n_on=1, n_off=2, prefix_ratio=1.0,
                     sampling=SamplingConfig(max_new_tokens=8), max_response_tokens=16)
