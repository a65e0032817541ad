"""Benchmark registry and loaders (method §3.4 data, §5.2 protocol, §6.1 paper numbers).

Paper suite: six math benchmarks (``aime24 aime25 amc23 math500 minerva olympiadbench``) and three
out-of-distribution multiple-choice ones (``arc_c gpqa_diamond mmlu_pro``), read from the reference's
evaluation parquets (columns ``data_source``, ``prompt`` messages, ``reward_model.ground_truth``,
``extra_info.index``). Tiny suite: ``tiny_id`` / ``tiny_ood``, the ``test_id.jsonl`` /
``test_ood.jsonl`` splits of a task folder written by :func:`luffy.data.synthetic.write_task`.

Where the paper data comes from (``data`` argument): a folder holding the parquets, one parquet file
(every benchmark whose ``data_source`` it contains), or ``None`` = ``$LUFFY_EVAL_DATA``, else the
repository's ``data/luffy-eval``, else a download of the reference repo's raw files into
``$LUFFY_CACHE`` (default ``~/.cache/luffy``), checked against the sha256s of the spec's appendix
(:mod:`luffy.data.reference`, whose names are re-exported here).

The reference repeats AIME/AMC rows 32× to get avg@32; loaders return each question once
(grouped by ``extra_info.index``, else by prompt) with ``n_repeats``, and the runner samples k per
question instead. MMLU-Pro's parquet is absent from the reference snapshot (method §3.4): its entry
fails with a message saying where to put the file, unless a hub copy is asked for (``source: hub``,
needs ``datasets``; deviation: the prompt wording of that path is this project's own).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from luffy.data.loaders import load_rows
from luffy.data.reference import (  # the reference's files and pins (also importable from here)
    MMLU_PRO_BLOB,
    MMLU_PRO_FILE,
    REFERENCE_SHA256,
    REFERENCE_URL,  # noqa: F401
    BenchmarkDataMissing,
    cache_root,  # noqa: F401
    fetch_reference_file,
    git_blob_id,
)
from luffy.data.schema import DataFormatError

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_EVAL_DIR = REPO_ROOT / "data" / "luffy-eval"  # gitignored; docs/cluster.md, "Data"
REQUIRED_COLUMNS = ("data_source", "prompt", "reward_model")

MATH_GRADERS = ("math_verify", "boxed")
CHOICE_GRADERS = ("multiple_choice", "boxed")


@dataclass(frozen=True)
class EvalQuestion:
    """One unique question. ``index`` is its 0-based position in the benchmark (first appearance)."""

    id: str
    index: int
    messages: list[dict[str, str]]
    answer: str
    source: str
    n_repeats: int = 1


@dataclass(frozen=True)
class HubSource:
    """A public Hugging Face copy: dataset id, split, and the function turning a record into a question."""

    dataset: str
    split: str
    convert: Any  # (record: dict, index: int, benchmark: str) -> EvalQuestion


@dataclass(frozen=True)
class Benchmark:
    """A registry entry: where the questions live, how they are graded, the default k, paper numbers."""

    name: str
    suite: str  # "paper" | "tiny"
    group: str  # paper: "math" | "ood"; tiny: "id" | "ood"
    graders: tuple[str, ...]
    default_k: int
    file: str  # paper: parquet file name; tiny: split file name in the task folder
    data_source: str | None = None  # rows of ``file`` with this data_source; None = all rows
    hub: HubSource | None = None
    paper: dict[str, float] = field(default_factory=dict)  # method §6.1 Table 1, percent

    def load(self, data: str | Path | None = None, *, source: str = "file",
             cache_dir: str | Path | None = None) -> list[EvalQuestion]:
        """The benchmark's unique questions (see the module docstring for ``data``)."""
        if source == "hub":
            return load_hub(self)
        if source != "file":
            raise ValueError(f"{self.name}: source must be 'file' or 'hub', got {source!r}")
        if self.suite == "tiny":
            return load_task_split(self, data)
        return load_parquet(resolve_paper_file(self, data, cache_dir), self)


# ----------------------------------------------------------------------------------- registry


def _mmlu_pro_question(rec: dict[str, Any], index: int, benchmark: str) -> EvalQuestion:
    """An MMLU-Pro hub record (question, options, answer letter) as a lettered multiple-choice prompt."""
    try:
        options, letter = list(rec["options"]), str(rec["answer"]).strip()
        lines = [str(rec["question"]).strip(), ""]
        lines += [f"{chr(ord('A') + i)}) {opt}" for i, opt in enumerate(options)]
    except (KeyError, TypeError) as e:
        raise DataFormatError(f"{benchmark} hub record {index}: expected question/options/answer ({e})") from None
    lines += ["", "Put the letter of the correct option in \\boxed{}."]
    qid = rec.get("question_id", index)
    return EvalQuestion(f"{benchmark}-{qid}", index, [{"role": "user", "content": "\n".join(lines)}], letter, "hub")


# Table 1 (method §6.1), rows Qwen-Base / On-Policy RL / LUFFY, in percent.
_T1 = {
    "aime24": (11.5, 25.1, 29.4), "aime25": (4.9, 15.3, 23.1), "amc23": (31.3, 62.0, 65.6),
    "math500": (43.6, 84.4, 87.6), "minerva": (7.4, 39.3, 37.5), "olympiadbench": (15.6, 46.8, 57.2),
    "arc_c": (18.2, 82.3, 80.5), "gpqa_diamond": (11.1, 40.4, 39.9), "mmlu_pro": (16.9, 49.3, 53.0),
}


def _paper(name: str) -> dict[str, float]:
    base, on_policy, luffy = _T1[name]
    return {"qwen_base": base, "on_policy_rl": on_policy, "luffy": luffy}


def _p(name: str, group: str, graders: tuple[str, ...], k: int, file: str, ds: str | None,
       hub: HubSource | None = None) -> Benchmark:
    return Benchmark(name, "paper", group, graders, k, file, ds, hub, _paper(name))


REGISTRY: dict[str, Benchmark] = {
    b.name: b
    for b in (
        _p("aime24", "math", MATH_GRADERS, 32, "valid.all.parquet", "aime"),
        _p("aime25", "math", MATH_GRADERS, 32, "valid.all.parquet", "aime25"),
        _p("amc23", "math", MATH_GRADERS, 32, "valid.all.parquet", "amc"),
        _p("math500", "math", MATH_GRADERS, 1, "valid.all.parquet", "math"),
        _p("minerva", "math", MATH_GRADERS, 1, "valid.all.parquet", "minerva"),
        _p("olympiadbench", "math", MATH_GRADERS, 1, "valid.all.parquet", "olympiad_bench"),
        _p("arc_c", "ood", CHOICE_GRADERS, 1, "valid.arc_c.parquet", "arc_c"),
        _p("gpqa_diamond", "ood", CHOICE_GRADERS, 1, "valid.gpqa.parquet", "gpqa"),
        _p("mmlu_pro", "ood", CHOICE_GRADERS, 1, MMLU_PRO_FILE, None,
           HubSource("TIGER-Lab/MMLU-Pro", "test", _mmlu_pro_question)),
        Benchmark("tiny_id", "tiny", "id", MATH_GRADERS, 1, "test_id.jsonl"),
        Benchmark("tiny_ood", "tiny", "ood", MATH_GRADERS, 1, "test_ood.jsonl"),
    )
}

#: Reference ``data_source`` value -> benchmark name.
DATA_SOURCES: dict[str, str] = {b.data_source: n for n, b in REGISTRY.items() if b.data_source}
DATA_SOURCES["mmlu_pro"] = "mmlu_pro"  # [inferred]: the missing file's data_source is unknown

#: Suite averages: key -> benchmark group (paper "Avg." and OOD "Avg.", method §5.2/§6.1).
AVERAGES: dict[str, dict[str, str]] = {"paper": {"math_avg": "math", "ood_avg": "ood"},
                                       "tiny": {"id": "id", "ood": "ood"}}


def suite_benchmarks(suite: str) -> list[str]:
    """Benchmark names of ``suite`` in registry order."""
    if suite not in AVERAGES:
        raise ValueError(f"unknown suite {suite!r}; valid: {', '.join(AVERAGES)}")
    return [n for n, b in REGISTRY.items() if b.suite == suite]


def get_benchmark(name: str, suite: str | None = None) -> Benchmark:
    """The registry entry ``name`` (of ``suite`` when given); unknown names list the valid ones."""
    valid = suite_benchmarks(suite) if suite else list(REGISTRY)
    if name not in valid:
        raise ValueError(f"unknown benchmark {name!r}; valid{' ' + suite if suite else ''}: {', '.join(valid)}")
    return REGISTRY[name]


# ---------------------------------------------------------------------------------- paper files


def resolve_paper_file(bench: Benchmark, data: str | Path | None, cache_dir: str | Path | None = None) -> Path:
    """The parquet holding ``bench``: ``data`` as a file, ``data/<file>``, or the default locations."""
    if data is not None:
        p = Path(data)
        if p.is_file():
            return p
        if not p.is_dir():
            raise FileNotFoundError(f"--data {p}: no such file or folder")
        if (p / bench.file).is_file():
            return p / bench.file
        raise _missing(bench, p)
    env = os.environ.get("LUFFY_EVAL_DATA")
    for folder in ([Path(env)] if env else []) + [DEFAULT_EVAL_DIR]:
        if (folder / bench.file).is_file():
            return folder / bench.file
    if bench.file in REFERENCE_SHA256:
        return fetch_reference_file(bench.file, cache_dir)
    raise _missing(bench, Path(env) if env else DEFAULT_EVAL_DIR)


def _missing(bench: Benchmark, folder: Path) -> BenchmarkDataMissing:
    if bench.file == MMLU_PRO_FILE:
        hint = (f"the reference snapshot lacks it (git blob {MMLU_PRO_BLOB}, method §3.4); put a copy at "
                f"{folder / bench.file} (check it with `git hash-object`) or set `source: hub` for {bench.name} "
                "in the eval config (needs the 'datasets' package)")
    else:
        hint = f"put {bench.file} there (from the reference repo's data/ folder) or pass --data"
    return BenchmarkDataMissing(f"{bench.name}: data file {folder / bench.file} is missing: {hint}")


# ------------------------------------------------------------------------------------- loaders


def load_parquet(path: str | Path, bench: Benchmark) -> list[EvalQuestion]:
    """Unique questions of ``bench`` in an evaluation parquet (method §3.4 schema).

    Rows with the same ``extra_info.index`` (else the same prompt) are one question; they must agree
    on prompt and ground truth. Errors name the file, row and column.
    """
    path = Path(path)
    if bench.file == MMLU_PRO_FILE and git_blob_id(path) != MMLU_PRO_BLOB:
        raise DataFormatError(f"{path}: git blob id {git_blob_id(path)[:12]}… is not the reference's {MMLU_PRO_BLOB}")
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as e:
        raise DataFormatError(f"{path}: cannot read parquet ({type(e).__name__}: {' '.join(str(e).split())})") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
    if missing:
        raise DataFormatError(f"{path}: missing column {missing[0]!r} (expected {', '.join(REQUIRED_COLUMNS)})")
    cols = [c for c in (*REQUIRED_COLUMNS, "extra_info") if c in table.column_names]
    rows = table.select(cols).to_pylist()
    groups: dict[Any, dict[str, Any]] = {}
    for i, row in enumerate(rows):
        if bench.data_source is not None and row["data_source"] != bench.data_source:
            continue
        messages, answer, key = _parse_row(path, i, row)
        g = groups.get(key)
        if g is None:
            groups[key] = {"messages": messages, "answer": answer, "key": key, "n": 1, "row": i}
        elif g["messages"] != messages or g["answer"] != answer:
            raise DataFormatError(f"{path}: row {i}: repeats question {key!r} of row {g['row']} with another "
                                  "prompt or ground truth")
        else:
            g["n"] += 1
    if not groups:
        sources = sorted({r["data_source"] for r in rows})
        raise DataFormatError(f"{path}: no rows with data_source {bench.data_source!r} for {bench.name} "
                              f"(found {sources})")
    return [
        EvalQuestion(f"{bench.name}-{_key_str(g['key'])}", j, g["messages"], g["answer"],
                     bench.data_source or rows[g["row"]]["data_source"], g["n"])
        for j, g in enumerate(groups.values())
    ]


def _parse_row(path: Path, i: int, row: dict[str, Any]) -> tuple[list[dict[str, str]], str, Any]:
    where = f"{path}: row {i}"
    msgs = row["prompt"]
    if not isinstance(msgs, list) or not msgs or not all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in msgs
    ):
        raise DataFormatError(f"{where}: column 'prompt' must be a non-empty list of {{role, content}} messages")
    if not any(m["role"] == "user" for m in msgs):
        raise DataFormatError(f"{where}: column 'prompt' has no user message")
    rm = row["reward_model"]
    gt = rm.get("ground_truth") if isinstance(rm, dict) else None
    if isinstance(gt, (int, float)) and not isinstance(gt, bool):
        gt = str(gt)
    if not isinstance(gt, str) or not gt.strip():
        raise DataFormatError(f"{where}: column 'reward_model.ground_truth' must be a non-empty string, got {gt!r}")
    messages = [{"role": m["role"], "content": m["content"]} for m in msgs]
    info = row.get("extra_info")
    index = info.get("index") if isinstance(info, dict) else None
    key = ("index", index) if isinstance(index, int) else ("prompt", messages[-1]["content"])
    return messages, gt, key


def _key_str(key: tuple[str, Any]) -> str:
    kind, value = key
    if kind == "index":
        return str(value)
    return hashlib.sha256(str(value).encode()).hexdigest()[:12]


def load_task_split(bench: Benchmark, data: str | Path | None) -> list[EvalQuestion]:
    """A tiny-task split (``<task dir>/<file>``, rows in luffy.data's schema) as questions."""
    if data is None:
        raise FileNotFoundError(f"{bench.name}: the tiny suite needs --data TASK_DIR (a folder written by make-task)")
    folder = Path(data)
    if not folder.is_dir():
        raise FileNotFoundError(f"--data {folder}: expected a task folder with {bench.file}")
    path = folder / bench.file
    if not path.is_file():
        raise BenchmarkDataMissing(f"{bench.name}: {path} is missing (write the task with `python -m luffy make-task`)")
    rows = load_rows(path, fmt="luffy")
    seen: dict[str, int] = {}
    out = []
    for j, row in enumerate(rows):
        if row.id in seen:
            raise DataFormatError(f"{path}: rows {seen[row.id]} and {j} share id {row.id!r}")
        seen[row.id] = j
        out.append(EvalQuestion(row.id, j, list(row.prompt), row.answer, row.split or bench.name))
    return out


def load_hub(bench: Benchmark) -> list[EvalQuestion]:
    """Questions from the benchmark's public Hugging Face copy (needs the optional ``datasets``)."""
    if bench.hub is None:
        raise ValueError(f"{bench.name}: no public hub copy is registered (source: hub is for mmlu_pro)")
    try:
        import datasets
    except ImportError:
        raise BenchmarkDataMissing(
            f"{bench.name}: source 'hub' ({bench.hub.dataset}) needs the 'datasets' package: pip install datasets"
        ) from None
    ds = datasets.load_dataset(bench.hub.dataset, split=bench.hub.split)
    return [bench.hub.convert(rec, i, bench.name) for i, rec in enumerate(ds)]
