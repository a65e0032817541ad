"""Read and write training rows (method §3.1, §3.4).

Two row formats, each in a ``.jsonl`` or ``.parquet`` container:

* ``"openr1"`` -- the paper's ``Openr1-Math-46k-8192`` layout: ``prompt`` (chat messages),
  ``reward_model.ground_truth``, ``target`` (a list of ``{role, content}`` whose first
  ``content`` is the trace) and the optional ``target_lst`` (several traces). The eval parquets
  of method §3.4 have the same layout without ``target``, so ``target`` may be absent (0 traces).
* ``"luffy"`` -- the project's own: the :class:`TrainRow` fields as columns/keys.

``fmt="auto"`` picks the format from the columns. Every error is one line naming the file and
the row: ``line N`` (1-based) for JSONL, ``row N`` (0-based, as pandas counts) for parquet.

Deviations from the reference loader (``rl_dataset_with_target.py``): ``target_lst``, when
present and non-empty, replaces ``target`` (all its traces are kept); rows are not dropped
for prompt length here -- that needs a tokenizer and belongs to the trainer.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from luffy.data.schema import DataFormatError, Trace, TrainRow, answer_to_str
from luffy.utils.jsonl import JsonlError, read_jsonl_lines, write_jsonl

FORMATS = ("auto", "luffy", "openr1")
_LUFFY_KEYS = {"id", "prompt", "answer", "traces", "split"}
_SUFFIXES = (".jsonl", ".parquet")

_MESSAGES = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
_LUFFY_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("prompt", _MESSAGES),
        ("answer", pa.string()),
        ("traces", pa.list_(pa.struct([("text", pa.string()), ("teacher", pa.string())]))),
        ("split", pa.string()),
    ]
)


def load_rows(path: str | Path, fmt: str = "auto") -> list[TrainRow]:
    """Load ``path`` (``.jsonl`` or ``.parquet``) as TrainRows; ``fmt`` is auto|luffy|openr1."""
    path = Path(path)
    if fmt not in FORMATS:
        raise DataFormatError(f"{path}: unknown row format {fmt!r}; expected one of {list(FORMATS)}")
    if not path.is_file():
        raise DataFormatError(f"{path}: no such file")
    if path.suffix == ".jsonl":
        records = _read_jsonl(path)
        columns = set().union(*(r.keys() for _, r in records)) if records else set()
    elif path.suffix == ".parquet":
        records, columns = _read_parquet(path)
    else:
        raise DataFormatError(f"{path}: unknown file type {path.suffix!r}; expected one of {list(_SUFFIXES)}")
    if not records:
        raise DataFormatError(f"{path}: file has no rows")
    fmt = _detect_format(path, columns) if fmt == "auto" else fmt
    if path.suffix == ".parquet":
        _check_columns(path, columns, fmt)
    convert = _from_luffy if fmt == "luffy" else _from_openr1
    return [_located(f"{path}: {where}", convert, rec, i) for i, (where, rec) in enumerate(records)]


def write_rows(rows: Iterable[TrainRow], path: str | Path) -> Path:
    """Write rows in the project's own format; the container follows the suffix."""
    path = Path(path)
    if path.suffix not in _SUFFIXES:
        raise DataFormatError(f"{path}: unknown file type {path.suffix!r}; expected one of {list(_SUFFIXES)}")
    dicts = [r.to_dict() for r in rows]
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".jsonl":
        write_jsonl(path, dicts)
    else:
        pq.write_table(pa.Table.from_pylist(dicts, schema=_LUFFY_SCHEMA), path)
    return path


def load_hub_dataset(hub_id: str, split: str = "train") -> list[TrainRow]:
    """Load an OpenR1-layout dataset (e.g. ``Elliott/Openr1-Math-46k-8192``) from the HF Hub.

    Needs the optional ``datasets`` package; rows are converted exactly as :func:`load_rows`
    converts an ``openr1`` parquet.
    """
    try:
        import datasets
    except ImportError:
        raise ImportError(
            f"loading {hub_id!r} from the Hugging Face Hub needs the 'datasets' package: pip install datasets"
        ) from None
    ds = datasets.load_dataset(hub_id, split=split)
    return [_located(f"{hub_id}[{split}]: row {i}", _from_openr1, rec, i) for i, rec in enumerate(ds)]


# ---------------------------------------------------------------------------------------- reading


def _read_jsonl(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """``[("line N", object), ...]``; a data split has no torn tail: any bad line is an error."""
    try:
        return [(f"line {n}", rec) for n, rec in read_jsonl_lines(path, torn_tail="error")]
    except JsonlError as e:
        raise DataFormatError(str(e)) from None


def _read_parquet(path: Path) -> tuple[list[tuple[str, dict[str, Any]]], set[str]]:
    try:
        table = pq.read_table(path)
        rows = table.to_pylist()
    except (pa.ArrowException, OSError, UnicodeDecodeError) as e:
        raise DataFormatError(f"{path}: cannot read parquet ({type(e).__name__}: {_one_line(e)})") from None
    index_cols = {c for c in table.column_names if c.startswith("__index_level_")}  # pandas' saved index
    records = [(f"row {i}", {k: v for k, v in r.items() if k not in index_cols}) for i, r in enumerate(rows)]
    return records, set(table.column_names) - index_cols


def _detect_format(path: Path, columns: set[str]) -> str:
    if "reward_model" in columns or "target" in columns:
        return "openr1"
    if "answer" in columns:
        return "luffy"
    raise DataFormatError(
        f"{path}: cannot tell the row format from columns {sorted(columns)}; expected "
        "luffy (id, prompt, answer[, traces, split]) or openr1 (prompt, reward_model[, target, target_lst])"
    )


def _check_columns(path: Path, columns: set[str], fmt: str) -> None:
    required = {"id", "prompt", "answer"} if fmt == "luffy" else {"prompt", "reward_model"}
    missing = sorted(required - columns)
    if missing:
        raise DataFormatError(f"{path}: missing column(s) {missing} for format {fmt!r}")


def _located(where: str, convert: Any, rec: dict[str, Any], index: int) -> TrainRow:
    try:
        return convert(rec, index)
    except DataFormatError as e:
        raise DataFormatError(f"{where}: {e}") from None


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())


# ------------------------------------------------------------------------------------- converting


def _from_luffy(rec: dict[str, Any], index: int) -> TrainRow:
    _check_finite(rec.get("answer"), "answer")
    return TrainRow.from_dict(rec)


def _from_openr1(rec: dict[str, Any], index: int) -> TrainRow:
    for key in ("prompt", "reward_model"):
        if key not in rec:
            raise DataFormatError(f"missing key {key!r}")
    rm = rec["reward_model"]
    if not isinstance(rm, dict) or "ground_truth" not in rm:
        raise DataFormatError("'reward_model' must be an object with a 'ground_truth' key")
    _check_finite(rm["ground_truth"], "reward_model.ground_truth")
    answer = answer_to_str(rm["ground_truth"], key="reward_model.ground_truth")
    if rec.get("target_lst"):
        traces = [
            _trace(t, f"target_lst[{j}]") for j, t in enumerate(_as_list(rec["target_lst"], "target_lst"))
        ]
    elif rec.get("target") is not None:
        target = _as_list(rec["target"], "target")
        traces = [_trace(target, "target")] if target else []
    else:
        traces = []
    info = rec.get("extra_info") if isinstance(rec.get("extra_info"), dict) else {}
    source = rec.get("data_source") if isinstance(rec.get("data_source"), str) else "row"
    return TrainRow(
        id=f"{source}-{index}",
        prompt=_messages(rec["prompt"]),
        answer=answer,
        traces=traces,
        split=info.get("split"),
    )


def _trace(target: Any, key: str) -> Trace:
    """A target is ``[{role, content}, ...]`` (first message used) or one ``{role, content}``."""
    if isinstance(target, list):
        if not target:
            raise DataFormatError(f"'{key}' is an empty message list")
        target, key = target[0], f"{key}[0]"
    if not isinstance(target, dict) or not isinstance(target.get("content"), str):
        raise DataFormatError(f"'{key}' must be a message with a string 'content'")
    if not target["content"].strip():
        raise DataFormatError(f"'{key}.content' (the trace) is empty")
    return Trace(text=target["content"], teacher=None)


def _messages(value: Any) -> list[dict[str, str]]:
    msgs = _as_list(value, "prompt")
    if not all(isinstance(m, dict) for m in msgs):
        raise DataFormatError("'prompt' must be a list of {role, content} messages")
    return [{"role": m.get("role"), "content": m.get("content")} for m in msgs]


def _as_list(value: Any, key: str) -> list[Any]:
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):  # numpy arrays from pandas
        value = value.tolist()
    if not isinstance(value, list):
        raise DataFormatError(f"'{key}' must be a list, got {type(value).__name__}")
    return value


def _check_finite(value: Any, key: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise DataFormatError(f"'{key}' must be a finite number or a string, got {value!r}")
