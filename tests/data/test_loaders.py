"""Row schema and loaders: both formats, both containers, and one-line errors (method §3.1, §3.4)."""

import json
import sys
import types
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support import EVAL_DATA

from luffy.data import DataFormatError, Trace, TrainRow, load_hub_dataset, load_rows, write_rows

EVAL_DIR = EVAL_DATA
SYS = {"role": "system", "content": "sys"}


def _row(i=0, traces=("<think>\n1+1=2\n</think>\nThe answer is \\boxed{2}.",), split="train"):
    return TrainRow(
        id=f"r{i}",
        prompt=[{"role": "user", "content": f"Compute 1+{i}."}],
        answer=str(1 + i),
        traces=[Trace(text=t, teacher="prog") for t in traces],
        split=split,
    )


def _openr1_record(i=0, trace="<think>\nreason</think>\nThe answer is \\boxed{4}.", truth="4"):
    return {
        "data_source": "openr1",
        "prompt": [SYS, {"role": "user", "content": f"problem {i}"}],
        "target": [{"role": "assistant", "content": trace}],
        "ability": "math",
        "reward_model": {"ground_truth": truth, "style": "rule"},
        "extra_info": {"index": i, "split": "default"},
    }


def _write_jsonl(path: Path, records) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_own_format_round_trips(tmp_path, suffix):
    rows = [_row(0), _row(1, traces=()), _row(2, traces=("a", "b"), split=None)]
    path = write_rows(rows, tmp_path / f"rows{suffix}")
    assert load_rows(path) == rows
    assert load_rows(path, fmt="luffy") == rows


def test_pandas_written_parquet_with_index_column(tmp_path):
    import pandas as pd

    rows = [_row(0), _row(1)]
    path = tmp_path / "pd.parquet"
    pd.DataFrame([r.to_dict() for r in rows], index=[5, 9]).to_parquet(path)  # stores __index_level_0__
    assert load_rows(path) == rows


def test_openr1_parquet_is_converted(tmp_path):
    path = tmp_path / "openr1.parquet"
    pq.write_table(pa.Table.from_pylist([_openr1_record(0), _openr1_record(1, truth="1/2")]), path)
    rows = load_rows(path)
    assert [r.id for r in rows] == ["openr1-0", "openr1-1"]
    assert rows[0].prompt == [SYS, {"role": "user", "content": "problem 0"}]
    assert rows[1].answer == "1/2"
    assert rows[0].traces == [Trace(text="<think>\nreason</think>\nThe answer is \\boxed{4}.", teacher=None)]
    assert rows[0].split == "default"
    assert rows[0].question == "problem 0"


def test_openr1_target_lst_gives_several_traces(tmp_path):
    rec = _openr1_record(0)
    rec["target_lst"] = [[{"role": "assistant", "content": "t1"}], [{"role": "assistant", "content": "t2"}]]
    path = _write_jsonl(tmp_path / "multi.jsonl", [rec])
    assert [t.text for t in load_rows(path)[0].traces] == ["t1", "t2"]


def test_openr1_numeric_ground_truth_becomes_a_string(tmp_path):
    path = _write_jsonl(tmp_path / "num.jsonl", [_openr1_record(0, truth=142.0), _openr1_record(1, truth=7)])
    assert [r.answer for r in load_rows(path)] == ["142.0", "7"]


@pytest.mark.skipif(not (EVAL_DIR / "valid.parquet").is_file(), reason=f"{EVAL_DIR} not present (set LUFFY_EVAL_DATA)")
def test_reference_eval_parquet_loads_without_traces():
    rows = load_rows(EVAL_DIR / "valid.parquet")
    assert len(rows) == 2019  # method §3.4
    assert rows[0].answer == "204" and rows[0].traces == [] and rows[0].prompt[0]["role"] == "system"


# ------------------------------------------------------------------------------------- errors


def test_missing_parquet_column_names_file_and_column(tmp_path):
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.Table.from_pylist([{"id": "a", "answer": "1"}]), path)
    with pytest.raises(DataFormatError, match=r"bad\.parquet: missing column\(s\) \['prompt'\]"):
        load_rows(path)


def test_missing_jsonl_key_names_file_and_line(tmp_path):
    good = _row(0).to_dict()
    bad = {k: v for k, v in _row(1).to_dict().items() if k != "prompt"}
    path = _write_jsonl(tmp_path / "rows.jsonl", [good, bad])
    with pytest.raises(DataFormatError, match=r"rows\.jsonl: line 2: missing key\(s\) \['prompt'\]"):
        load_rows(path)


def test_empty_trace_names_file_and_row(tmp_path):
    path = tmp_path / "t.parquet"
    pq.write_table(pa.Table.from_pylist([_openr1_record(0), _openr1_record(1, trace="  \n")]), path)
    with pytest.raises(
        DataFormatError, match=r"t\.parquet: row 1: 'target\[0\]\.content' \(the trace\) is empty"
    ):
        load_rows(path)


def test_empty_trace_in_own_format(tmp_path):
    rec = _row(0).to_dict()
    rec["traces"] = [{"text": "", "teacher": None}]
    path = _write_jsonl(tmp_path / "own.jsonl", [rec])
    with pytest.raises(DataFormatError, match=r"own\.jsonl: line 1: traces\[0\]: trace text is empty"):
        load_rows(path)


def test_non_utf8_names_file_and_line(tmp_path):
    path = tmp_path / "latin.jsonl"
    path.write_bytes(json.dumps(_row(0).to_dict()).encode() + b"\n" + b'{"id": "caf\xe9"}\n')
    with pytest.raises(DataFormatError, match=r"latin\.jsonl: line 2: not valid UTF-8 \(byte 0xe9"):
        load_rows(path)


@pytest.mark.parametrize("answer", [[1, 2], {"a": 1}, None, True])
def test_wrong_answer_dtype_names_file_row_and_key(tmp_path, answer):
    rec = _row(0).to_dict()
    rec["answer"] = answer
    path = _write_jsonl(tmp_path / "dt.jsonl", [rec])
    with pytest.raises(DataFormatError, match=r"dt\.jsonl: line 1: 'answer' must be a string or number"):
        load_rows(path)


def test_wrong_ground_truth_dtype_in_parquet(tmp_path):
    rec = _openr1_record(0)
    rec["reward_model"] = {"ground_truth": [1.0], "style": "rule"}
    path = tmp_path / "gt.parquet"
    pq.write_table(pa.Table.from_pylist([rec]), path)
    with pytest.raises(DataFormatError, match=r"gt\.parquet: row 0: 'reward_model\.ground_truth' must be"):
        load_rows(path)


def test_nan_answer_is_rejected(tmp_path):
    path = tmp_path / "nan.parquet"
    pq.write_table(pa.Table.from_pylist([{**_row(0).to_dict(), "answer": float("nan")}]), path)
    with pytest.raises(DataFormatError, match=r"nan\.parquet: row 0: 'answer' must be a finite number"):
        load_rows(path)


def test_bad_prompt_role(tmp_path):
    rec = _row(0).to_dict()
    rec["prompt"] = [{"role": "human", "content": "hi"}]
    path = _write_jsonl(tmp_path / "role.jsonl", [rec])
    with pytest.raises(DataFormatError, match=r"role\.jsonl: line 1: prompt\[0\]\.role must be one of"):
        load_rows(path)


def test_invalid_json_names_line(tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text(json.dumps(_row(0).to_dict()) + "\n\n{not json\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"broken\.jsonl: line 3: invalid JSON"):
        load_rows(path)


def test_unknown_format_and_file_type_and_missing_file(tmp_path):
    path = write_rows([_row(0)], tmp_path / "ok.jsonl")
    with pytest.raises(DataFormatError, match=r"ok\.jsonl: unknown row format 'xml'"):
        load_rows(path, fmt="xml")
    csv = tmp_path / "rows.csv"
    csv.write_text("id,answer\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"rows\.csv: unknown file type '\.csv'"):
        load_rows(csv)
    with pytest.raises(DataFormatError, match=r"absent\.jsonl: no such file"):
        load_rows(tmp_path / "absent.jsonl")
    with pytest.raises(DataFormatError, match=r"out\.txt: unknown file type"):
        write_rows([_row(0)], tmp_path / "out.txt")


def test_unrecognised_columns_and_empty_file(tmp_path):
    path = _write_jsonl(tmp_path / "odd.jsonl", [{"question": "q", "solution": "s"}])
    with pytest.raises(DataFormatError, match=r"odd\.jsonl: cannot tell the row format from columns"):
        load_rows(path)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"empty\.jsonl: file has no rows"):
        load_rows(empty)


def test_corrupt_parquet_is_one_line(tmp_path):
    path = tmp_path / "junk.parquet"
    path.write_bytes(b"not a parquet file")
    with pytest.raises(DataFormatError, match=r"junk\.parquet: cannot read parquet") as e:
        load_rows(path)
    assert "\n" not in str(e.value)


def test_trainrow_validates_itself():
    with pytest.raises(DataFormatError, match="'answer' must be a non-empty string"):
        TrainRow(id="x", prompt=[{"role": "user", "content": "q"}], answer="")
    with pytest.raises(DataFormatError, match="'prompt' has no user message"):
        TrainRow(id="x", prompt=[SYS], answer="1")
    with pytest.raises(DataFormatError, match="trace text is empty"):
        Trace(text="")


# ------------------------------------------------------------------------------------ hub


def test_hub_loader_without_datasets_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # makes `import datasets` raise ImportError
    with pytest.raises(ImportError, match="pip install datasets"):
        load_hub_dataset("Elliott/Openr1-Math-46k-8192")


def test_hub_loader_converts_rows_like_the_parquet(monkeypatch):
    calls = []

    def fake_load_dataset(hub_id, split):
        calls.append((hub_id, split))
        return [_openr1_record(0), _openr1_record(1, trace="")]

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=fake_load_dataset))
    with pytest.raises(DataFormatError, match=r"^Elliott/x\[train\]: row 1: 'target\[0\]\.content'"):
        load_hub_dataset("Elliott/x")
    assert calls == [("Elliott/x", "train")]
