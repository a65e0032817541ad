"""One loader for local folders and Hub ids; dtype selection; clear errors (method §8)."""

import shutil

import pytest
import torch

from luffy.data import TaskConfig, write_task
from luffy.model import (
    ModelLoadError,
    TinyModelConfig,
    build_base_model,
    load_model,
    load_tokenizer,
    pick_dtype,
)

FAST = TinyModelConfig(
    hidden_size=64, num_heads=2, num_kv_heads=1, num_layers=1, intermediate_size=128,
    steps=1, warmup_steps=0, batch_size=4, eval_n=0, threads=1,
)  # fmt: skip


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("load")
    write_task(root / "task", TaskConfig(n_train=20, n_train_rl=2, n_test_id=2, n_test_ood=2))
    build_base_model(root / "task", root / "model", FAST)
    return root / "model"


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", torch.float32])
def test_load_local_folder(folder, dtype):
    model, tok = load_model(folder, dtype=dtype)
    want = torch.bfloat16 if dtype == "bfloat16" else torch.float32
    assert next(model.parameters()).dtype == want
    assert not model.training
    assert tok.eos_token == "<|endoftext|>" and tok.pad_token == "<|pad|>"
    model2, _ = load_model(str(folder), dtype="fp32")
    assert all(
        torch.equal(a, b)
        for a, b in zip(model2.parameters(), load_model(folder, dtype="fp32")[0].parameters())
    )


def test_pick_dtype(monkeypatch):
    assert pick_dtype("float32") is torch.float32 and pick_dtype("bf16") is torch.bfloat16
    assert pick_dtype(torch.float16) is torch.float16
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    assert pick_dtype("auto", "cpu") is torch.bfloat16
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    assert pick_dtype("auto", "cpu") is torch.float32
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_dtype("auto", "cuda") is torch.float32
    with pytest.raises(ValueError, match="unknown dtype 'float8'"):
        pick_dtype("float8")


def test_missing_local_path(tmp_path):
    with pytest.raises(ModelLoadError, match=r"nope: no such model folder"):
        load_model(tmp_path / "nope")
    with pytest.raises(ModelLoadError, match=r"^\./also/not/here: no such model folder"):
        load_model("./also/not/here")
    with pytest.raises(ModelLoadError, match="no such model folder"):
        load_model("a/b/c")  # three parts: cannot be a Hub id


def test_not_a_model_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match=r"empty: not a model folder \(no config\.json\)"):
        load_model(tmp_path / "empty")
    (tmp_path / "file.bin").write_bytes(b"x")
    with pytest.raises(ModelLoadError, match=r"file\.bin: not a model folder \(not a directory\)"):
        load_model(tmp_path / "file.bin")


def test_folder_without_tokenizer(folder, tmp_path):
    bare = tmp_path / "weights_only"
    bare.mkdir()
    for name in ("config.json", "model.safetensors", "generation_config.json"):
        shutil.copy(folder / name, bare / name)
    with pytest.raises(ModelLoadError, match=r"weights_only: model folder has no tokenizer"):
        load_model(bare)
    with pytest.raises(ModelLoadError, match=r"weights_only: model folder has no tokenizer"):
        load_tokenizer(bare)


def test_bad_device(folder):
    with pytest.raises(ModelLoadError, match="bad device 'gpu0'"):
        load_model(folder, device="gpu0")
