"""luffy.model.attention: eager attention for bf16/fp16 models on CPU, only within its memory cap,
restored afterwards; the HF engine's generation and the log-prob passes use it."""

import pytest
import torch
from transformers import Qwen2ForCausalLM

from luffy.model import attention
from luffy.model.attention import eager_attention_bytes, eager_attention_on_cpu
from luffy.model.tiny import TinyModelConfig, build_tokenizer, model_config
from luffy.rollout import SamplingConfig, make_engine


@pytest.fixture()
def tiny_bf16():
    tok = build_tokenizer()
    torch.manual_seed(0)
    cfg = TinyModelConfig(hidden_size=64, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=128)
    return Qwen2ForCausalLM(model_config(cfg, tok)).to(torch.bfloat16).eval(), tok


def test_bytes_formula(tiny_bf16):
    m, _ = tiny_bf16  # 2 layers, 2 heads
    assert eager_attention_bytes(m, 3, 5, 7, keep_for_backward=True) == 2 * 3 * 2 * 5 * 7 * 8
    assert eager_attention_bytes(m, 3, 5, 7, keep_for_backward=False) == 1 * 3 * 2 * 5 * 7 * 8


def test_switches_only_when_it_should(tiny_bf16, monkeypatch):
    m, _ = tiny_bf16
    with eager_attention_on_cpu(m, 2, 8, 8, keep_for_backward=True) as on:
        assert on and m.config._attn_implementation == "eager"
    assert m.config._attn_implementation == "sdpa"
    with pytest.raises(RuntimeError), eager_attention_on_cpu(m, 2, 8, 8, keep_for_backward=True):
        raise RuntimeError("restored even on error")
    assert m.config._attn_implementation == "sdpa"
    monkeypatch.setattr(attention, "MAX_BYTES", 2 * 2 * 2 * 8 * 8 * 8 - 1)  # one byte short
    with eager_attention_on_cpu(m, 2, 8, 8, keep_for_backward=True) as on:
        assert not on and m.config._attn_implementation == "sdpa"
    monkeypatch.setattr(attention, "MAX_BYTES", 1 << 30)
    m32 = m.float()
    with eager_attention_on_cpu(m32, 2, 8, 8, keep_for_backward=True) as on:
        assert not on  # float32: no gain measured, left alone
    monkeypatch.setattr(attention, "ENABLED", False)
    with eager_attention_on_cpu(m.to(torch.bfloat16), 2, 8, 8, keep_for_backward=True) as on:
        assert not on


def test_hf_engine_generates_with_eager_and_restores(tiny_bf16, monkeypatch):
    m, tok = tiny_bf16
    seen = []
    orig = m.forward
    monkeypatch.setattr(m, "forward", lambda *a, **k: seen.append(m.config._attn_implementation) or orig(*a, **k))
    eng = make_engine("hf", model=m, tokenizer=tok)
    out = eng.generate([[10, 11, 12], [13]], 2, SamplingConfig(max_new_tokens=5, min_new_tokens=5, seed=0))
    assert [len(g.response_ids) for grp in out for g in grp] == [5] * 4
    assert seen and set(seen) == {"eager"} and m.config._attn_implementation == "sdpa"
