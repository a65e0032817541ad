"""Test-wide settings (offline hub, bounded threads, GPU tests gated on CUDA with a stated reason) and
the shared session fixtures: a small synthetic task and an untrained tiny model."""

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest
import torch

from luffy.data.synthetic import TaskConfig, write_task
from luffy.model.tiny import TinyModelConfig, build_base_model

torch.set_num_threads(min(2, os.cpu_count() or 1))


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (marked gpu); run on a GPU host")
    for item in items:
        if item.get_closest_marker("gpu") is not None:  # the mark ("gpu" in keywords matches tests/gpu/ too)
            item.add_marker(skip)


@pytest.fixture(scope="session")
def task_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("task")
    write_task(d, TaskConfig(seed=1, n_train=64, n_train_rl=16, n_test_id=16, n_test_ood=8))
    return d


@pytest.fixture(scope="session")
def base_model(tmp_path_factory, task_dir) -> Path:
    """An untrained 2-layer, width-64 tiny model (weights random, tokenizer real)."""
    d = tmp_path_factory.mktemp("base") / "model"
    build_base_model(task_dir, d, TinyModelConfig(steps=0, warmup_steps=0, eval_n=0, hidden_size=64,
                                                  num_layers=2, num_heads=2, num_kv_heads=2,
                                                  intermediate_size=128))
    return d
