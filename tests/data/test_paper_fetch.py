"""``luffy fetch-data`` (method §2, §3.1, §3.4): a fake ``datasets`` module and local files, no network."""

import hashlib
import json
import sys
import types

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support import EVAL_DATA

from luffy.cli import main
from luffy.data import load_rows, paper
from luffy.data.reference import BenchmarkDataMissing

TRAIN_ID, COMP_ID = "Elliott/Openr1-Math-46k-8192", "Elliott/Openr1-Math-48k-Complement"
SHARED_VALID = EVAL_DATA / "valid.parquet"
SYS = "Your task is to follow a systematic, thorough reasoning process."


def _record(i, truth, trace="<think>\nsteps</think>\nSo \\boxed{x}."):
    """One row in the OpenR1-Math-46k-8192 layout (method §3.1)."""
    rec = {
        "data_source": "openr1",
        "prompt": [{"content": SYS, "role": "system"}, {"content": f"Problem {i}", "role": "user"}],
        "target": [{"content": trace, "role": "assistant"}],
        "ability": "math",
        "reward_model": {"ground_truth": truth, "style": "rule"},
        "extra_info": {"index": i, "split": "default"},
    }
    return rec


TRAIN = [_record(0, "4"), _record(1, "\\frac{1}{2}"), _record(2, "7", trace="<think>\nb</think>\n\\boxed{7}")]
COMPLEMENT = [{k: v for k, v in _record(i, str(i)).items() if k != "target"} for i in (10, 11)]


def _write_valid(path, n=3):
    """A small parquet in the eval layout of method §3.4 (pandas index column included)."""
    rows = [
        {
            "data_source": "math",
            "prompt": [{"content": SYS, "role": "system"}, {"content": f"Q{i}", "role": "user"}],
            "ability": "math",
            "reward_model": {"ground_truth": str(i), "style": "rule"},
            "extra_info": {"index": i, "split": "default"},
            "__index_level_0__": i,
        }
        for i in range(n)
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


@pytest.fixture
def fake_hub(monkeypatch):
    """Install a fake ``datasets`` module serving ``data[id]``; records every call in ``calls``."""
    data = {TRAIN_ID: TRAIN, COMP_ID: COMPLEMENT}
    calls = []

    def load_dataset(name, split=None):
        calls.append((name, split))
        if name not in data:
            raise ConnectionError(f"Couldn't reach 'https://huggingface.co/datasets/{name}'\n(offline)")
        return iter(data[name])

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    return data, calls


def _run(tmp_path, eval_dir=None, train=TRAIN_ID, comp=COMP_ID):
    eval_dir = eval_dir if eval_dir is not None else _write_valid(tmp_path / "eval" / "valid.parquet").parent
    return main(
        [
            "fetch-data",
            "--train-dataset",
            train,
            "--complement-dataset",
            comp,
            "--eval-dir",
            str(eval_dir),
            "--out",
            str(tmp_path / "out"),
        ]
    )


def _error_line(capsys):
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("luffy:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_fetch_writes_the_four_files_and_they_round_trip(tmp_path, fake_hub, capsys):
    _, calls = fake_hub
    assert _run(tmp_path) == 0
    out = tmp_path / "out"
    assert calls == [(TRAIN_ID, "train"), (COMP_ID, "train")]
    assert sorted(p.name for p in out.iterdir()) == [
        "data.json",
        "openr1.complement.parquet",
        "openr1.parquet",
        "valid.parquet",
    ]  # no temp files left
    # the training parquet is the hub rows unchanged (OpenR1 columns), and load_rows reads it
    assert pq.read_table(out / "openr1.parquet").to_pylist() == TRAIN
    rows = load_rows(out / "openr1.parquet")
    assert [r.answer for r in rows] == ["4", "\\frac{1}{2}", "7"]
    assert [r.traces[0].text for r in rows] == [t["target"][0]["content"] for t in TRAIN]
    assert rows[0].prompt == [{"role": "system", "content": SYS}, {"role": "user", "content": "Problem 0"}]
    comp = load_rows(out / "openr1.complement.parquet")
    assert [(r.answer, r.traces) for r in comp] == [("10", []), ("11", [])]
    assert (out / "valid.parquet").read_bytes() == (tmp_path / "eval" / "valid.parquet").read_bytes()

    info = json.loads((out / "data.json").read_text())
    assert json.loads(capsys.readouterr().out) == info
    assert (info["train_dataset"], info["complement_dataset"]) == (TRAIN_ID, COMP_ID)
    f = info["files"]
    assert {k: (v["file"], v["rows"]) for k, v in f.items()} == {
        "train": ("openr1.parquet", 3),
        "train_rl": ("openr1.complement.parquet", 2),
        "val": ("valid.parquet", 3),
    }
    for v in f.values():
        assert v["sha256"] == hashlib.sha256((out / v["file"]).read_bytes()).hexdigest()
    assert f["train"]["source"] == f"hub:{TRAIN_ID}" and f["train_rl"]["source"] == f"hub:{COMP_ID}"
    assert f["val"]["source"] == str(tmp_path / "eval" / "valid.parquet")
    assert f["val"]["matches_reference"] is False  # a fake file, not the reference bytes


def test_data_json_is_written_last_and_a_stale_one_is_removed(tmp_path, fake_hub, capsys):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "data.json").write_text("{}")
    assert _run(tmp_path, comp="nobody/missing") == 2
    assert "nobody/missing[train]: cannot load from the Hugging Face Hub (ConnectionError" in _error_line(
        capsys
    )
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["openr1.parquet", "valid.parquet"]


def test_missing_datasets_package_is_one_clear_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "datasets", None)  # makes `import datasets` raise ImportError
    assert _run(tmp_path) == 2
    line = _error_line(capsys)
    assert TRAIN_ID in line and line.endswith("needs the 'datasets' package: pip install datasets")


def test_training_row_without_trace_is_rejected(tmp_path, fake_hub, capsys):
    data, _ = fake_hub
    data[TRAIN_ID] = [TRAIN[0], {**TRAIN[1], "target": []}]
    assert _run(tmp_path) == 2
    assert _error_line(capsys) == (
        f"luffy: error: {TRAIN_ID}[train]: row 1 has no trace in 'target'; training rows need one (method §3.1)"
    )
    assert not (tmp_path / "out" / "openr1.parquet").exists()
    assert not list((tmp_path / "out").glob(".*"))  # the temp file is gone too


def test_bad_row_error_names_the_dataset_and_row(tmp_path, fake_hub, capsys):
    data, _ = fake_hub
    data[COMP_ID] = [
        COMPLEMENT[0],
        {**COMPLEMENT[1], "reward_model": {"ground_truth": None, "style": "rule"}},
    ]
    assert _run(tmp_path) == 2
    line = _error_line(capsys)
    assert line.startswith(f"luffy: error: {COMP_ID}[train]: row 1: ") and "ground_truth" in line


def test_missing_columns_are_named(tmp_path, fake_hub, capsys):
    data, _ = fake_hub
    data[TRAIN_ID] = [{k: v for k, v in r.items() if k != "reward_model"} for r in TRAIN]
    assert _run(tmp_path) == 2
    assert f"{TRAIN_ID}[train]: missing column(s) ['reward_model']" in _error_line(capsys)


def test_valid_is_downloaded_when_eval_dir_lacks_it(tmp_path, fake_hub, monkeypatch, capsys):
    monkeypatch.setenv("LUFFY_EVAL_URL", "https://example.invalid/data/{file}")
    got = []

    def fake_fetch(name, cache_dir=None, *, url=None):
        got.append((name, url))
        return _write_valid(tmp_path / "cache" / name, n=5)

    monkeypatch.setattr(paper, "fetch_reference_file", fake_fetch)
    assert _run(tmp_path, eval_dir=tmp_path / "empty") == 0
    assert got == [("valid.parquet", "https://example.invalid/data/valid.parquet")]
    info = json.loads((tmp_path / "out" / "data.json").read_text())
    assert info["files"]["val"]["source"] == "https://example.invalid/data/valid.parquet"
    assert info["files"]["val"]["rows"] == 5


def test_failed_valid_download_names_file_and_url(tmp_path, fake_hub, monkeypatch, capsys):
    monkeypatch.setenv("LUFFY_EVAL_URL", "https://example.invalid/data/{file}")

    def fake_fetch(name, cache_dir=None, *, url=None):
        raise BenchmarkDataMissing(f"{name}: download from {url} failed (<urlopen error offline>)")

    monkeypatch.setattr(paper, "fetch_reference_file", fake_fetch)
    assert _run(tmp_path, eval_dir=tmp_path / "empty") == 2
    line = _error_line(capsys)
    assert line.startswith("luffy: error: valid.parquet: not in --eval-dir ")
    assert "https://example.invalid/data/valid.parquet failed" in line
    assert not (tmp_path / "out" / "data.json").exists()


@pytest.mark.skipif(not SHARED_VALID.is_file(), reason=f"reference file {SHARED_VALID} not present")
def test_reference_valid_parquet_matches_the_spec(tmp_path, fake_hub, capsys):
    assert _run(tmp_path, eval_dir=SHARED_VALID.parent) == 0
    val = json.loads((tmp_path / "out" / "data.json").read_text())["files"]["val"]
    assert (val["rows"], val["bytes"], val["matches_reference"]) == (
        2019,
        258736,
        True,
    )  # method §3.4, appendix
    assert val["sha256"].startswith("3acbd7f5")
