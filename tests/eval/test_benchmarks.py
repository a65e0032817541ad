"""Benchmark registry, loaders and the eval config (method §3.4, §5.2, §6.1).

The real-parquet tests read ``$LUFFY_EVAL_DATA`` or ``<repo>/data/luffy-eval`` and are
skipped, with that reason, when the folder is absent. Everything else builds its own small files.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support import EVAL_DATA

from luffy.config import ConfigError
from luffy.data.schema import DataFormatError
from luffy.eval import benchmarks as B
from luffy.eval.protocol import EvalConfig, load_eval_config
from luffy.eval.summary import paper_average
from luffy.utils.stats import mean_se

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = EVAL_DATA
needs_data = pytest.mark.skipif(not DATA_DIR.is_dir(), reason=f"evaluation parquets not found in {DATA_DIR}")

# Unique questions per benchmark (method §3.4 table: aime 30×32, amc 83×32, aime25 30×32, ...).
UNIQUE = {"aime24": (30, 32), "aime25": (30, 32), "amc23": (83, 32), "math500": (500, 1), "minerva": (272, 1),
          "olympiadbench": (675, 1), "arc_c": (1172, 1), "gpqa_diamond": (198, 1)}


# ------------------------------------------------------------------------------ real parquets


@needs_data
@pytest.mark.parametrize("name", list(UNIQUE))
def test_real_parquets_unique_question_counts(name: str) -> None:
    qs = B.get_benchmark(name).load(DATA_DIR)
    n, repeats = UNIQUE[name]
    assert len(qs) == n
    assert {q.n_repeats for q in qs} == {repeats}
    assert [q.index for q in qs] == list(range(n))
    assert len({q.id for q in qs}) == n
    assert all(q.messages[0]["role"] == "system" and q.messages[-1]["role"] == "user" for q in qs)


@needs_data
def test_real_parquet_first_rows() -> None:
    aime = B.get_benchmark("aime24").load(DATA_DIR)
    assert aime[0].id == "aime24-0" and aime[0].answer == "204" and aime[0].source == "aime"
    assert B.get_benchmark("amc23").load(DATA_DIR)[0].answer == "142.0"  # floats as strings (method §3.4)
    assert B.get_benchmark("arc_c").load(DATA_DIR)[0].answer == "C"


@needs_data
def test_in_training_valid_parquet_as_a_single_file() -> None:
    """``--data valid.parquet``: AIME is 30 questions × 8 rows, AMC 83 × 4; aime25 is absent (method §3.4)."""
    f = DATA_DIR / "valid.parquet"
    aime = B.get_benchmark("aime24").load(f)
    assert (len(aime), aime[0].n_repeats) == (30, 8)
    amc = B.get_benchmark("amc23").load(f)
    assert (len(amc), amc[0].n_repeats) == (83, 4)
    with pytest.raises(DataFormatError, match=r"valid\.parquet: no rows with data_source 'aime25'"):
        B.get_benchmark("aime25").load(f)


@needs_data
def test_paper_k_from_protocol() -> None:
    cfg = load_eval_config(REPO_ROOT / "config" / "eval" / "paper.yaml")
    ks = {name: cfg.protocol_for(name).k for name in cfg.benchmarks}
    assert ks == {"aime24": 32, "aime25": 32, "amc23": 32, "math500": 1, "minerva": 1, "olympiadbench": 1,
                  "arc_c": 1, "gpqa_diamond": 1, "mmlu_pro": 1}
    p = cfg.protocol_for("gpqa_diamond")
    assert (p.temperature, p.top_p, p.max_new_tokens, p.primary_grader) == (0.6, 1.0, 8192, "boxed")
    assert p.graders == ("multiple_choice", "boxed") and cfg.protocol_for("aime24").graders == ("math_verify", "boxed")
    assert cfg.protocol_for("aime24", k=4).k == 4  # --k overrides


# ------------------------------------------------------------------------------ registry


def test_registry_suites_and_data_sources() -> None:
    assert B.suite_benchmarks("paper") == ["aime24", "aime25", "amc23", "math500", "minerva", "olympiadbench",
                                           "arc_c", "gpqa_diamond", "mmlu_pro"]
    assert B.suite_benchmarks("tiny") == ["tiny_id", "tiny_ood"]
    assert B.DATA_SOURCES["olympiad_bench"] == "olympiadbench" and B.DATA_SOURCES["gpqa"] == "gpqa_diamond"
    assert B.DATA_SOURCES["amc"] == "amc23" and B.DATA_SOURCES["aime"] == "aime24"
    assert {B.REGISTRY[n].default_k for n in ("aime24", "aime25", "amc23")} == {32}
    with pytest.raises(ValueError, match=r"unknown benchmark 'aime2024'; valid paper: aime24, aime25"):
        B.get_benchmark("aime2024", "paper")


def test_paper_averages_reproduce_table1() -> None:
    """Unweighted means of Table 1 rows match its Avg. columns up to the table's rounding (method §6.1)."""
    rows = {"luffy": (50.1, 57.8), "qwen_base": (19.0, 15.4), "on_policy_rl": (45.5, 57.3)}
    for row, (math_avg, ood_avg) in rows.items():
        values = {n: B.REGISTRY[n].paper[row] for n in B.suite_benchmarks("paper")}
        # e.g. LUFFY: (29.4+23.1+65.6+87.6+37.5+57.2)/6 = 50.07; Qwen-Base 114.3/6 = 19.05 (printed 19.0)
        assert abs(paper_average(values, "math") - math_avg) <= 0.05 + 1e-9, row
        assert abs(paper_average(values, "ood") - ood_avg) <= 0.05 + 1e-9, row


def test_mean_and_stderr_by_hand() -> None:
    mean, se = mean_se([1.0, 0.5, 0.0, 0.5])
    assert mean == 0.5
    assert se == pytest.approx(((0.25 + 0 + 0.25 + 0) / 3) ** 0.5 / 2)  # sample sd / sqrt(4)
    assert mean_se([0.25]) == (0.25, None) and mean_se([]) == (None, None)


# ------------------------------------------------------------------------------ parquet loader


def _row(src: str, idx: int, q: str, gt: str, system: bool = True) -> dict:
    prompt = ([{"content": "SYS", "role": "system"}] if system else []) + [{"content": q, "role": "user"}]
    return {"data_source": src, "prompt": prompt, "ability": "math",
            "reward_model": {"ground_truth": gt, "style": "rule"}, "extra_info": {"index": idx, "split": "default"}}


def _write(path: Path, rows: list[dict], drop: str | None = None) -> Path:
    table = pa.Table.from_pylist(rows)
    if drop:
        table = table.drop_columns([drop])
    pq.write_table(table, path)
    return path


def test_loader_deduplicates_repeats_by_index(tmp_path: Path) -> None:
    rows = [_row("aime", 0, "Q0", "1")] * 3 + [_row("aime", 1, "Q1", "2")] * 3 + [_row("math", 0, "M0", "x")]
    f = _write(tmp_path / "valid.all.parquet", rows)
    qs = B.get_benchmark("aime24").load(f)
    assert [(q.id, q.answer, q.n_repeats, q.messages[-1]["content"]) for q in qs] == [
        ("aime24-0", "1", 3, "Q0"), ("aime24-1", "2", 3, "Q1")]
    assert [q.id for q in B.get_benchmark("math500").load(tmp_path)] == ["math500-0"]  # folder form


def test_loader_groups_by_prompt_without_extra_info(tmp_path: Path) -> None:
    rows = [_row("gpqa", 0, "A?", "A"), _row("gpqa", 0, "B?", "B"), _row("gpqa", 0, "A?", "A")]
    f = _write(tmp_path / "valid.gpqa.parquet", rows, drop="extra_info")
    qs = B.get_benchmark("gpqa_diamond").load(f)
    assert [(q.answer, q.n_repeats) for q in qs] == [("A", 2), ("B", 1)]


def test_loader_rejects_conflicting_repeats(tmp_path: Path) -> None:
    f = _write(tmp_path / "valid.all.parquet", [_row("aime", 0, "Q0", "1"), _row("aime", 0, "Q0", "7")])
    with pytest.raises(DataFormatError, match=r"valid\.all\.parquet: row 1: repeats question .* of row 0"):
        B.get_benchmark("aime24").load(f)


def test_loader_names_file_and_missing_column(tmp_path: Path) -> None:
    f = _write(tmp_path / "valid.all.parquet", [_row("aime", 0, "Q0", "1")], drop="reward_model")
    with pytest.raises(DataFormatError, match=r"valid\.all\.parquet: missing column 'reward_model'"):
        B.get_benchmark("aime24").load(f)


def test_loader_names_row_of_bad_ground_truth(tmp_path: Path) -> None:
    f = _write(tmp_path / "valid.all.parquet", [_row("aime", 0, "Q0", "1"), _row("aime", 1, "Q1", " ")])
    with pytest.raises(DataFormatError, match=r"row 1: column 'reward_model.ground_truth' must be a non-empty"):
        B.get_benchmark("aime24").load(f)


def test_mmlu_pro_missing_says_where_to_put_it(tmp_path: Path) -> None:
    with pytest.raises(B.BenchmarkDataMissing) as e:
        B.get_benchmark("mmlu_pro").load(tmp_path)
    msg = str(e.value)
    assert str(tmp_path / "valid.mmlu_pro.parquet") in msg and B.MMLU_PRO_BLOB in msg and "\n" not in msg


def test_mmlu_pro_copy_must_match_the_blob_id(tmp_path: Path) -> None:
    _write(tmp_path / "valid.mmlu_pro.parquet", [_row("mmlu_pro", 0, "Q", "A")])
    with pytest.raises(DataFormatError, match="is not the reference's 48cd2b38"):
        B.get_benchmark("mmlu_pro").load(tmp_path)


def test_git_blob_id_matches_git_hash_object(tmp_path: Path) -> None:
    f = tmp_path / "x"
    f.write_bytes(b"hello\n")
    assert B.git_blob_id(f) == "ce013625030ba8dba906f756967f9e9ca394464a"  # `git hash-object` of "hello\n"


def test_hub_source_without_datasets_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets -> ImportError
    with pytest.raises(B.BenchmarkDataMissing, match=r"TIGER-Lab/MMLU-Pro.*needs the 'datasets' package"):
        B.get_benchmark("mmlu_pro").load(source="hub")
    with pytest.raises(ValueError, match="no public hub copy"):
        B.get_benchmark("aime24").load(source="hub")


def test_hub_mmlu_pro_records_become_lettered_questions(monkeypatch: pytest.MonkeyPatch) -> None:
    class FakeDatasets:
        @staticmethod
        def load_dataset(name: str, split: str) -> list[dict]:
            assert (name, split) == ("TIGER-Lab/MMLU-Pro", "test")
            return [{"question_id": 70, "question": "2+2?", "options": ["3", "4", "5"], "answer": "B"}]

    monkeypatch.setitem(sys.modules, "datasets", FakeDatasets)
    (q,) = B.get_benchmark("mmlu_pro").load(source="hub")
    assert q.id == "mmlu_pro-70" and q.answer == "B"
    assert "A) 3\nB) 4\nC) 5" in q.messages[0]["content"]


def test_download_checks_sha256_and_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "remote"
    src.mkdir()
    (src / "valid.gpqa.parquet").write_bytes(b"not the reference bytes")
    monkeypatch.setenv("LUFFY_EVAL_URL", src.as_uri() + "/{file}")
    with pytest.raises(DataFormatError, match="valid.gpqa.parquet: downloaded from .* has sha256"):
        B.fetch_reference_file("valid.gpqa.parquet", tmp_path / "cache")
    assert not list((tmp_path / "cache").iterdir())  # nothing half-written kept
    monkeypatch.setitem(B.REFERENCE_SHA256, "valid.gpqa.parquet",
                        hashlib.sha256(b"not the reference bytes").hexdigest())
    got = B.fetch_reference_file("valid.gpqa.parquet", tmp_path / "cache")
    assert got == tmp_path / "cache" / "valid.gpqa.parquet" and got.read_bytes() == b"not the reference bytes"
    (src / "valid.gpqa.parquet").unlink()  # cached: no second download
    assert B.fetch_reference_file("valid.gpqa.parquet", tmp_path / "cache") == got


def test_download_failure_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LUFFY_EVAL_URL", (tmp_path / "nowhere").as_uri() + "/{file}")
    with pytest.raises(B.BenchmarkDataMissing, match=r"valid.arc_c.parquet: download from .* failed"):
        B.fetch_reference_file("valid.arc_c.parquet", tmp_path / "cache")


# ------------------------------------------------------------------------------ tiny loader


def test_tiny_split_loader(tmp_path: Path) -> None:
    from luffy.data.synthetic import TaskConfig, write_task

    write_task(tmp_path, TaskConfig(n_train=5, n_train_rl=0, n_test_id=3, n_test_ood=2))
    ids = B.get_benchmark("tiny_id").load(tmp_path)
    assert [q.id for q in ids] == ["test_id-00000", "test_id-00001", "test_id-00002"]
    assert ids[0].messages[0]["content"].startswith("Compute ") and ids[0].source == "test_id"
    assert len(B.get_benchmark("tiny_ood").load(tmp_path)) == 2
    with pytest.raises(FileNotFoundError, match="tiny suite needs --data TASK_DIR"):
        B.get_benchmark("tiny_id").load(None)
    (tmp_path / "test_ood.jsonl").unlink()
    with pytest.raises(B.BenchmarkDataMissing, match="test_ood.jsonl is missing"):
        B.get_benchmark("tiny_ood").load(tmp_path)


# ------------------------------------------------------------------------------ config


def test_config_rejects_unknown_keys_and_names(tmp_path: Path) -> None:
    bad = tmp_path / "c.yaml"
    bad.write_text("suite: tiny\nbenchmarks: {tiny_id: {k: 2}}\nsampling: {temprature: 1.0}\n")
    with pytest.raises(ConfigError, match=r"c.yaml: sampling.temprature: unknown key"):
        load_eval_config(bad)
    bad.write_text("suite: tiny\nbenchmarks: {aime24: {}}\n")
    with pytest.raises(ConfigError, match=r"unknown tiny benchmark 'aime24'; valid: tiny_id, tiny_ood"):
        load_eval_config(bad)
    bad.write_text("suite: tiny\nbenchmarks: {tiny_id: {}}\ntemplate: chatml\n")
    with pytest.raises(ConfigError, match=r"template: .*unknown chat template 'chatml'"):
        load_eval_config(bad)


def test_config_files_validate_and_resolve_data_relative_to_file(tmp_path: Path) -> None:
    tiny = load_eval_config(REPO_ROOT / "config" / "eval" / "tiny.yaml")
    assert tiny.suite == "tiny" and tiny.primary_grader == "math_verify"
    assert [tiny.protocol_for(n).graders for n in tiny.benchmarks] == [("math_verify", "boxed")] * 2
    f = tmp_path / "sub" / "c.yaml"
    f.parent.mkdir()
    f.write_text("suite: tiny\ndata: ../task\nbenchmarks: {tiny_id: {}}\n")
    assert load_eval_config(f).data == str((tmp_path / "task").resolve())


def test_primary_grader_must_be_recorded_for_the_benchmark() -> None:
    cfg = EvalConfig(suite="paper", benchmarks={"arc_c": {}}, primary_grader="math_verify")
    with pytest.raises(ConfigError, match=r"primary_grader 'math_verify' is not recorded for arc_c"):
        cfg.protocol_for("arc_c")
