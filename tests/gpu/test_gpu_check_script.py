"""scripts/gpu-check.sh on a CPU host: one clear error line without CUDA, and the Markdown rows it prints
from the records that tests/gpu/test_gpu_step.py writes (here the CPU variants' records)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from test_gpu_step import REPO, SIZES, emit, generate_check, train_check, write_model

SCRIPT = REPO / "scripts" / "gpu-check.sh"


@pytest.fixture(scope="module")
def model_folder_cpu(tmp_path_factory):
    return write_model(SIZES["tiny"], tmp_path_factory.mktemp("model") / "m", "cpu")


def _run(*args: str, **env: str) -> subprocess.CompletedProcess:
    e = {**os.environ, "PYTHON": sys.executable, **env}
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=120, env=e,
                          check=False)


def test_no_cuda_is_one_clear_error_line(tmp_path):
    # CUDA_VISIBLE_DEVICES="" hides any GPU, so this is the CPU-only case on every host
    r = _run(CUDA_VISIBLE_DEVICES="", LUFFY_GPU_OUT=str(tmp_path / "out"))
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("gpu-check: error: torch ") and "sees no CUDA device" in lines[0]
    assert "envs/luffy-gpu.yaml" in lines[0]
    assert not (tmp_path / "out").exists()  # nothing ran


def test_table_rows_from_records(tmp_path, monkeypatch, model_folder_cpu):
    monkeypatch.setenv("LUFFY_GPU_OUT", str(tmp_path))
    rec = train_check("tiny", "cpu", False, model_folder_cpu)
    emit(rec, "train-tiny-cpu")
    gen = generate_check("tiny", "cpu", model_folder_cpu)
    emit(gen, "generate-tiny-cpu")
    assert json.loads((tmp_path / "train-tiny-cpu.json").read_text())["mfu"] == rec["mfu"]

    r = _run("--table", str(tmp_path))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 3 and lines[0].startswith("| card |") and lines[1].startswith("| --- |")
    cells = [c.strip() for c in lines[2].strip("|").split("|")]
    assert cells[1] == f"tiny ({rec['params'] / 1e6:.3g}M)" and cells[3] == "no"
    assert cells[4] == str(rec["tokens_per_update"]) and cells[5] == f"{rec['update_s']:.3f}"
    assert cells[10] == f"{rec['mfu'] * 100:.1f}%"
    assert cells[11] == f"{gen['tokens_per_s']:.0f} ({gen['batch']} × {gen['new_tokens']})"


def test_table_of_an_empty_folder_is_an_error(tmp_path):
    r = _run("--table", str(tmp_path))
    assert r.returncode != 0 and "no training record" in r.stderr
