"""Test-wide settings: offline hub, bounded threads, GPU tests gated on CUDA with a stated reason."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(min(2, os.cpu_count() or 1))


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (marked gpu); run on a GPU host")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
