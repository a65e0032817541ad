"""HF engine, both decoders (``compact``, ``generate``): contract, EOS handling, seeding, greedy =
manual argmax (also while sequences leave the compact batch at different steps), the compact
decoder's sampling distribution (temperature, top-p), weight sync."""

from __future__ import annotations

import copy

import pytest
import torch

from luffy.rollout import Generation, SamplingConfig, make_engine
from luffy.rollout.hf_engine import HFEngine, compact_decode


@pytest.fixture(scope="module", params=["compact", "generate"])
def engine(tiny, request):
    return make_engine("hf", model=tiny.model, tokenizer=tiny.tokenizer, max_batch_size=64, decode=request.param)


def manual_greedy(model, prompt: list[int], max_new: int, eos: int) -> list[int]:
    """Reference greedy decoding: full forward (no cache, no padding), argmax, stop after EOS."""
    ids, out = list(prompt), []
    with torch.no_grad():
        for _ in range(max_new):
            logits = model(torch.tensor([ids])).logits[0, -1]  # (V,)
            nxt = int(logits.argmax())
            out.append(nxt)
            ids.append(nxt)
            if nxt == eos:
                break
    return out


def test_shapes_and_n_samples(engine, tiny):
    prompts = tiny.prompts()
    out = engine.generate(prompts, 3, SamplingConfig(max_new_tokens=10, seed=0))
    assert len(out) == len(prompts)
    for p, group in zip(prompts, out):
        assert len(group) == 3
        for g in group:
            assert isinstance(g, Generation)
            assert g.prompt_ids == p
            assert 1 <= len(g.response_ids) <= 10
            assert all(isinstance(t, int) for t in g.response_ids)
    # three samples of a prompt are different draws (10 tokens over ~100 near-uniform ids)
    assert len({tuple(g.response_ids) for g in out[0]}) == 3


def test_eos_kept_nothing_after_and_length_when_capped(engine, tiny):
    eos = tiny.tokenizer.eos_token_id
    # ~1% EOS per token: over 40 tokens about a third of samples stop; seed 0 gives both kinds
    out = engine.generate(tiny.prompts(), 4, SamplingConfig(max_new_tokens=40, seed=0))
    gens = [g for group in out for g in group]
    reasons = {g.finish_reason for g in gens}
    assert reasons == {"stop", "length"}
    for g in gens:
        if g.finish_reason == "stop":
            assert g.response_ids[-1] == eos and eos not in g.response_ids[:-1]
        else:
            assert len(g.response_ids) == 40 and eos not in g.response_ids


def test_seeded_calls_are_reproducible_and_leave_global_rng_alone(engine, tiny):
    sp = SamplingConfig(max_new_tokens=12, seed=7)
    torch.manual_seed(99)
    expected_next = torch.rand(3)
    torch.manual_seed(99)
    a = engine.generate(tiny.prompts(), 2, sp)
    assert torch.equal(torch.rand(3), expected_next)  # the seeded call used a forked RNG
    b = engine.generate(tiny.prompts(), 2, sp)
    c = engine.generate(tiny.prompts(), 2, sp.model_copy(update={"seed": 8}))
    assert a == b
    assert a != c


@pytest.mark.parametrize("decode", ["compact", "generate"])
def test_greedy_equals_manual_argmax_and_ignores_checkpoint_generation_config(tiny, decode):
    model = copy.deepcopy(tiny.model)
    # settings a checkpoint may carry; they would change greedy output if generate() inherited them
    model.generation_config.repetition_penalty = 5.0
    model.generation_config.no_repeat_ngram_size = 1
    eng = HFEngine(model, tokenizer=tiny.tokenizer, max_batch_size=3, decode=decode)  # 4 prompts × 2 → 3 chunks
    prompts = tiny.prompts()
    out = eng.generate(prompts, 2, SamplingConfig(temperature=0.0, max_new_tokens=20))
    eos = tiny.tokenizer.eos_token_id
    for p, group in zip(prompts, out):
        want = manual_greedy(model, p, 20, eos)
        assert [g.response_ids for g in group] == [want, want]
        assert {g.finish_reason for g in group} == {"stop" if want[-1] == eos else "length"}
    assert model.generation_config.repetition_penalty == 5.0  # restored after the call
    # the greedy outputs repeat tokens, so a repetition penalty / n-gram ban really would matter
    assert any(len(set(g.response_ids)) < len(g.response_ids) for group in out for g in group)


def test_compact_logits_match_a_full_forward_while_sequences_leave_the_batch(tiny, monkeypatch):
    """Sequences that sample EOS leave the compact batch (and the KV cache) at different steps: the
    logits every remaining sequence is sampled from must still equal a full forward of its own
    prompt + tokens so far (no padding, no cache), at every step."""
    from luffy.rollout import hf_engine

    seen = []                                                                  # logits float[b_live, V] per step
    real = hf_engine._sample

    def recording(logits, sampling, banned):
        seen.append(logits.clone())
        return real(logits, sampling, banned)

    monkeypatch.setattr(hf_engine, "_sample", recording)
    model = tiny.model
    prompts = [p for p in tiny.prompts() for _ in range(6)]
    ids, mask = _left_pad(prompts, tiny.tokenizer.pad_token_id)
    eos = tiny.tokenizer.eos_token_id
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            torch.manual_seed(0)
            got = compact_decode(model, ids, mask, SamplingConfig(max_new_tokens=40), eos)
            stops = {len(seq) for seq in got if seq[-1] == eos}
            assert len(stops) >= 3, stops                                      # rows left at >= 3 different steps
            for t, logits in enumerate(seen):
                live = [r for r, seq in enumerate(got) if len(seq) > t]      # the batch at step t, in row order
                assert logits.shape[0] == len(live)
                for j, r in enumerate(live):
                    want = model(torch.tensor([prompts[r] + got[r][:t]])).logits[0, -1].float()
                    torch.testing.assert_close(logits[j], want, atol=1e-4, rtol=1e-4)
    finally:
        model.train(was)


def _left_pad(prompts: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(map(len, prompts))
    ids = torch.full((len(prompts), width), pad, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for r, p in enumerate(prompts):
        ids[r, width - len(p):], mask[r, width - len(p):] = torch.tensor(p), 1
    return ids, mask


@pytest.mark.parametrize("temperature, top_p", [(1.0, 1.0), (0.7, 0.8)])
def test_compact_samples_follow_the_tempered_nucleus(tiny, temperature, top_p):
    """First and second tokens of 3000 samples of one prompt against the model's own probabilities:
    softmax(logits / T) restricted to the top-p nucleus and renormalized. The model's final norm is
    scaled ×4 so that one token holds ~40% and the rest a long tail; tokens are binned by their rank
    (1, 2–5, 6–20, 21–60, the rest) and the binned frequencies stay within a total variation of 0.05
    of the binned probabilities (sampling error of 3000 draws: ~0.02); no token outside the nucleus
    is ever drawn."""
    model = copy.deepcopy(tiny.model).eval()
    with torch.no_grad():
        model.model.norm.weight.mul_(4.0)
    prompt = tiny.prompts()[1]
    eng = HFEngine(model, tokenizer=tiny.tokenizer, max_batch_size=1000)
    out = eng.generate([prompt], 3000, SamplingConfig(temperature=temperature, top_p=top_p, max_new_tokens=2,
                                                      seed=11))[0]
    firsts = torch.tensor([g.response_ids[0] for g in out])

    def nucleus(ids: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """(renormalized nucleus probabilities float[V], rank of every token long[V])."""
        with torch.no_grad():
            p = torch.softmax(model(torch.tensor([ids])).logits[0, -1].float() / temperature, -1)
        sp, order = p.sort(descending=True)
        sp[(sp.cumsum(0) - sp) >= top_p] = 0
        rank = torch.empty_like(order).scatter_(0, order, torch.arange(order.numel()))
        return torch.zeros_like(p).scatter_(0, order, sp / sp.sum()), rank

    def binned_tv(drawn: torch.Tensor, ids: list[int]) -> float:
        want, rank = nucleus(ids)
        assert float(want[drawn].min()) > 0, "a token outside the nucleus was drawn"
        edges = torch.tensor([1, 5, 20, 60])
        bin_of = torch.bucketize(rank, edges, right=True)                      # long[V] in 0..4
        freq = torch.bincount(bin_of[drawn], minlength=5).float() / drawn.numel()
        expect = torch.zeros(5).index_add_(0, bin_of, want)
        return 0.5 * float((freq - expect).abs().sum())

    assert binned_tv(firsts, prompt) < 0.05
    top = int(torch.bincount(firsts).argmax())                                 # second token after the top first
    seconds = torch.tensor([g.response_ids[1] for g in out if g.response_ids[0] == top and len(g.response_ids) > 1])
    assert seconds.numel() > 500
    assert binned_tv(seconds, prompt + [top]) < 0.05 + 1.0 / seconds.numel() ** 0.5


def test_tiny_top_p_is_greedy(engine, tiny):
    greedy = engine.generate(tiny.prompts(), 1, SamplingConfig(temperature=0.0, max_new_tokens=16))
    nucleus = engine.generate(tiny.prompts(), 2, SamplingConfig(top_p=1e-6, max_new_tokens=16, seed=3))
    for g, group in zip(greedy, nucleus):
        assert [s.response_ids for s in group] == [g[0].response_ids] * 2


def test_mode_and_grad_state_restored(tiny):
    model = copy.deepcopy(tiny.model)
    eng = HFEngine(model, tokenizer=tiny.tokenizer)
    seen = {}

    def hook(module, args, output):
        seen["training"], seen["grad"] = module.training, torch.is_grad_enabled()

    handle = model.register_forward_hook(hook)
    model.train()
    eng.generate(tiny.prompts()[:1], 1, SamplingConfig(max_new_tokens=3, seed=0))
    assert seen == {"training": False, "grad": False} and model.training
    model.eval()
    eng.generate(tiny.prompts()[:1], 1, SamplingConfig(max_new_tokens=3, seed=0))
    assert not model.training
    handle.remove()


def test_sync_weights_same_object_noop_other_module_copied(tiny):
    mine = copy.deepcopy(tiny.model)
    eng = HFEngine(mine, tokenizer=tiny.tokenizer)
    before = mine.lm_head.weight.clone()
    eng.sync_weights(mine)
    assert torch.equal(mine.lm_head.weight, before)
    other = copy.deepcopy(tiny.model)
    with torch.no_grad():
        other.model.norm.weight.mul_(-3.0)
    sp = SamplingConfig(temperature=0.0, max_new_tokens=12)
    want = HFEngine(other, tokenizer=tiny.tokenizer).generate(tiny.prompts(), 1, sp)
    assert eng.generate(tiny.prompts(), 1, sp) != want
    eng.sync_weights(other)
    assert eng.generate(tiny.prompts(), 1, sp) == want


@pytest.mark.parametrize(
    "prompts, n, match",
    [
        ([[5, 6]], 0, "n: expected an int >= 1"),
        ([[]], 1, r"prompts\[0\]: expected a non-empty"),
        ([[5], [5, 100000]], 1, r"prompts\[1\]: token id 100000"),
        ([[5], [-1]], 1, r"prompts\[1\]: token id -1"),
        ("abc", 1, "prompts: expected a list"),
    ],
)
def test_bad_requests_raise_one_line_value_error(engine, prompts, n, match):
    with pytest.raises(ValueError, match=match):
        engine.generate(prompts, n, SamplingConfig(max_new_tokens=4))


def test_bad_sampling_config_and_options(engine, tiny):
    with pytest.raises(ValueError, match="temperature"):
        SamplingConfig(temperature=-0.1, max_new_tokens=4)
    with pytest.raises(ValueError, match="top_k"):
        SamplingConfig(max_new_tokens=4, top_k=5)  # unknown key rejected
    with pytest.raises(ValueError, match="max_new_tokens"):
        SamplingConfig()
    with pytest.raises(ValueError, match="sampling: expected a SamplingConfig"):
        engine.generate([[5]], 1, {"max_new_tokens": 4})
    with pytest.raises(ValueError, match="max_batch_size"):
        HFEngine(tiny.model, tokenizer=tiny.tokenizer, max_batch_size=0)
    with pytest.raises(ValueError, match="autocast_dtype"):
        HFEngine(tiny.model, tokenizer=tiny.tokenizer, autocast_dtype="fp8")
    with pytest.raises(ValueError, match="decode must be one of"):
        HFEngine(tiny.model, tokenizer=tiny.tokenizer, decode="beam")
    with pytest.raises(ValueError, match="model must be"):
        HFEngine(None, tokenizer=tiny.tokenizer)
