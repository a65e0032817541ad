"""Shared fixtures for trainer tests: a small synthetic task and an untrained tiny model."""

from pathlib import Path

import pytest

from luffy.data.synthetic import TaskConfig, write_task
from luffy.model.tiny import TinyModelConfig, build_base_model


@pytest.fixture(scope="session")
def task_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("task")
    write_task(d, TaskConfig(seed=1, n_train=64, n_train_rl=16, n_test_id=16, n_test_ood=8))
    return d


@pytest.fixture(scope="session")
def base_model(tmp_path_factory, task_dir) -> Path:
    d = tmp_path_factory.mktemp("base") / "model"
    build_base_model(task_dir, d, TinyModelConfig(steps=0, warmup_steps=0, eval_n=0, hidden_size=64,
                                                  num_layers=2, num_heads=2, num_kv_heads=2,
                                                  intermediate_size=128))
    return d


