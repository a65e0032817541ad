"""token_logprobs (head on response positions only, chunked float32 statistics) equals the
straightforward computation (token_logprobs_reference): values and gradients, to 1e-6 in float32."""

import pytest
import torch
from transformers import Qwen2ForCausalLM

from luffy.model import attention
from luffy.model.tiny import TinyModelConfig, build_tokenizer, model_config
from luffy.train import tensors
from luffy.train.tensors import collate, token_logprobs, token_logprobs_reference


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    cfg = TinyModelConfig(hidden_size=64, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=128)
    return Qwen2ForCausalLM(model_config(cfg, build_tokenizer())).float().train()


def _batch(vocab: int):
    g = torch.Generator().manual_seed(1)
    lens_p, lens_r = [5, 9, 3, 7], [6, 1, 11, 4]  # ragged: left-padded prompts, right-padded responses
    prompts = [torch.randint(4, vocab, (n,), generator=g).tolist() for n in lens_p]
    resps = [torch.randint(4, vocab, (n,), generator=g).tolist() for n in lens_r]
    offs = [[i % 2 == 0] * n for i, n in enumerate(lens_r)]
    return collate(prompts, resps, offs, pad_id=0)


def _grads(model, fn, mb, **kw):
    model.zero_grad(set_to_none=True)
    lp, ent = fn(model, mb, **kw)
    m = mb.resp_mask
    w = torch.linspace(0.5, 1.5, lp.shape[1])  # position-dependent weights: a gradient error cannot cancel
    loss = (lp * w * m).sum() + ((ent * m).sum() if ent is not None else 0.0)
    loss.backward()
    g = {k: p.grad.detach().clone() for k, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    return lp.detach(), None if ent is None else ent.detach(), g


@pytest.mark.parametrize("chunked", [False, True])
@pytest.mark.parametrize("temperature", [1.0, 0.6])
@pytest.mark.parametrize("with_entropy", [True, False])
def test_fast_path_equals_reference(model, monkeypatch, chunked, temperature, with_entropy):
    vocab = model.get_input_embeddings().weight.shape[0]
    mb = _batch(vocab)
    if chunked:  # at most 2 response positions per chunk (4 sequences x vocab logits each)
        monkeypatch.setattr(tensors, "LOGIT_CHUNK_ELEMENTS", 4 * vocab * 2)
    kw = {"temperature": temperature, "with_entropy": with_entropy}
    a_lp, a_h, a_g = _grads(model, token_logprobs_reference, mb, **kw)
    b_lp, b_h, b_g = _grads(model, token_logprobs, mb, **kw)
    assert b_lp.shape == a_lp.shape == mb.resp_mask.shape and b_lp.dtype == torch.float32
    m = mb.resp_mask
    torch.testing.assert_close(b_lp[m], a_lp[m], rtol=0, atol=1e-6)
    if with_entropy:
        torch.testing.assert_close(b_h[m], a_h[m], rtol=0, atol=1e-6)
    else:
        assert b_h is None and a_h is None
    for k in a_g:
        torch.testing.assert_close(b_g[k], a_g[k], rtol=1e-5, atol=1e-6, msg=k)


def test_chunking_really_splits(model, monkeypatch):
    """The forced-chunk setting above must produce several chunks (else it tests nothing new)."""
    vocab = model.get_input_embeddings().weight.shape[0]
    mb = _batch(vocab)
    monkeypatch.setattr(tensors, "LOGIT_CHUNK_ELEMENTS", 4 * vocab * 2)
    calls = []
    orig = tensors._logp_entropy
    monkeypatch.setattr(tensors, "_logp_entropy", lambda *a: calls.append(a[0].shape[1]) or orig(*a))
    token_logprobs(model, mb)
    assert len(calls) == -(-mb.resp_mask.shape[1] // 2) and max(calls) == 2


def test_output_head_runs_per_chunk(model, monkeypatch):
    """Plain-head models: the output head sees at most one chunk of positions per call (no [m, R, V]
    logits), in the forward and in the backward's recomputation, with the reference's values."""
    vocab = model.get_input_embeddings().weight.shape[0]
    mb = _batch(vocab)
    monkeypatch.setattr(tensors, "LOGIT_CHUNK_ELEMENTS", 4 * vocab * 2)   # 2 positions per chunk
    widths = []
    hook = model.get_output_embeddings().register_forward_hook(lambda mod, a, out: widths.append(out.shape[1]))
    try:
        assert tensors._plain_head(model)
        _, _, g = _grads(model, token_logprobs, mb)
    finally:
        hook.remove()
    chunks = -(-mb.resp_mask.shape[1] // 2)
    assert max(widths) == 2 and len(widths) == 2 * chunks     # each chunk: forward + recompute in backward
    _, _, ref = _grads(model, token_logprobs_reference, mb)
    for k in ref:
        torch.testing.assert_close(g[k], ref[k], rtol=1e-5, atol=1e-6, msg=k)


def test_model_without_logits_to_keep_falls_back(model):
    """A wrapper whose forward does not take logits_to_keep gets full logits, sliced the same way."""

    class Wrapped(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, position_ids, use_cache):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                              use_cache=use_cache)

    mb = _batch(model.get_input_embeddings().weight.shape[0])
    assert not tensors._takes_logits_to_keep(Wrapped(model)) and tensors._takes_logits_to_keep(model)
    with torch.no_grad():
        a, _ = token_logprobs_reference(model, mb)
        b, _ = token_logprobs(Wrapped(model), mb)
    torch.testing.assert_close(b[mb.resp_mask], a[mb.resp_mask], rtol=0, atol=1e-6)


def test_bf16_cpu_uses_eager_attention_and_restores_it(model, monkeypatch):
    """A bf16 model on CPU: the log-prob forward runs with eager attention, the model keeps SDPA after
    the call (also when the forward raises), and the values match the SDPA reference to bf16 rounding."""
    m = type(model)(model.config)
    m.load_state_dict(model.state_dict())
    m = m.to(torch.bfloat16)
    assert m.config._attn_implementation == "sdpa"
    mb = _batch(m.get_input_embeddings().weight.shape[0])
    seen = []
    dec = m.get_decoder()  # both paths (chunked head, plain forward) run the decoder
    orig_forward = dec.forward

    def spy(*a, **k):
        seen.append(m.config._attn_implementation)
        return orig_forward(*a, **k)

    monkeypatch.setattr(dec, "forward", spy)
    lp, ent = token_logprobs(m, mb)
    assert seen == ["eager"] and m.config._attn_implementation == "sdpa"
    ref_lp, ref_ent = token_logprobs_reference(m, mb)
    assert seen[-1] == "sdpa"
    msk = mb.resp_mask
    torch.testing.assert_close(lp[msk], ref_lp[msk], rtol=0, atol=0.05)  # bf16 logits: ~3 significant digits
    torch.testing.assert_close(ent[msk], ref_ent[msk], rtol=0, atol=0.05)

    monkeypatch.setattr(attention, "ENABLED", False)
    token_logprobs(m, mb)
    assert seen[-1] == "sdpa"  # switched off: the model's own attention
    monkeypatch.setattr(attention, "ENABLED", True)

    def boom(*a, **k):
        raise RuntimeError("boom")

    monkeypatch.setattr(dec, "forward", boom)
    with pytest.raises(RuntimeError, match="boom"):
        token_logprobs(m, mb)
    assert m.config._attn_implementation == "sdpa"


def test_float32_and_large_attention_keep_sdpa(model, monkeypatch):
    mb = _batch(model.get_input_embeddings().weight.shape[0])
    calls = []
    monkeypatch.setattr(model, "set_attn_implementation", lambda impl: calls.append(impl))
    token_logprobs(model, mb)  # float32: untouched
    assert calls == []
    m = type(model)(model.config).to(torch.bfloat16)
    monkeypatch.setattr(m, "set_attn_implementation", lambda impl: calls.append(impl))
    monkeypatch.setattr(attention, "MAX_BYTES", 1)  # the attention matrices would not fit
    token_logprobs(m, mb)
    assert calls == []
    monkeypatch.setattr(attention, "MAX_BYTES", 1 << 30)
    token_logprobs(m, mb)
    assert calls == ["eager", "sdpa"]
