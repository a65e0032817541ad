"""luffy.report.results: reading metrics / suites / configs, and the seed statistics."""

import json
import math

import pytest

from luffy.report.results import (
    ReportError,
    config_value,
    mean_se,
    metric_series,
    parse_pairs,
    read_metrics,
    read_run_config,
    read_suite,
)


def write_jsonl(path, records):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def test_mean_se_hand_computed():
    # 0.3 and 0.4: mean 0.35, sample sd = sqrt(0.005) = 0.0707107, SE = sd / sqrt(2) = 0.05
    m, se = mean_se([0.3, 0.4])
    assert m == pytest.approx(0.35)
    assert se == pytest.approx(0.05)
    # 1, 2, 3, 6: mean 3, var = (4 + 1 + 0 + 9) / 3 = 14/3, SE = sqrt(14/3 / 4)
    m, se = mean_se([1, 2, 3, 6])
    assert m == 3 and se == pytest.approx(math.sqrt(14 / 12))
    assert mean_se([0.7]) == (0.7, None)
    assert mean_se([]) == (None, None)
    assert mean_se([float("nan"), 2.0]) == (2.0, None)  # non-finite values are not seeds


def test_parse_pairs_groups_seeds_in_first_mention_order(tmp_path):
    out = parse_pairs(["sft=a", "luffy=b", "sft=c"], "--eval")
    assert list(out) == ["sft", "luffy"]
    assert [str(p) for p in out["sft"]] == ["a", "c"]
    with pytest.raises(ReportError, match="--eval 'luffy': expected NAME=PATH"):
        parse_pairs(["luffy"], "--eval")


def test_read_metrics_sorts_and_keeps_last_record_of_a_step(tmp_path):
    write_jsonl(tmp_path / "metrics.jsonl", [{"step": 2, "a": 1.0}, {"step": 1, "a": 5.0}, {"step": 2, "a": 3.0}])
    recs = read_metrics(tmp_path)
    assert [r["step"] for r in recs] == [1, 2]
    assert recs[1]["a"] == 3.0


def test_read_metrics_errors_name_file_and_line(tmp_path):
    with pytest.raises(ReportError, match="metrics.jsonl: file not found"):
        read_metrics(tmp_path)
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\n{"step": 2,\n')
    with pytest.raises(ReportError, match=r"metrics.jsonl: line 2: invalid JSON"):
        read_metrics(tmp_path)
    (tmp_path / "metrics.jsonl").write_text('{"step": "1"}\n')
    with pytest.raises(ReportError, match=r"line 1: expected an object with an integer 'step'"):
        read_metrics(tmp_path)


def test_metric_series_mean_and_se_over_seeds():
    seed0 = [{"step": 1, "x": 1.0}, {"step": 2, "x": 2.0}, {"step": 3, "y": 9.0}]
    seed1 = [{"step": 1, "x": 3.0}, {"step": 2, "x": float("nan")}, {"step": 3, "x": 4.0}]
    s = metric_series([seed0, seed1], "x")
    assert s.steps == [1, 2, 3]
    assert s.mean == [2.0, 2.0, 4.0]  # step 2: the NaN of seed 1 is not a value; step 3 only seed 1
    assert s.se[0] == pytest.approx(1.0)  # 1 and 3: sd sqrt(2), SE sqrt(2)/sqrt(2)
    assert s.se[1] is None and s.se[2] is None
    assert s.n_seeds == 2
    assert metric_series([seed0], "missing") is None


def suite_json(benchmarks, groups, suite="tiny"):
    """A suite.json as luffy evaluate writes it (accuracies in [0, 1]; None = not evaluated)."""
    rows = {b: {"accuracy": a, "stderr": None} for b, a in benchmarks.items() if a is not None}
    averages = {}
    for key, members in groups.items():
        over = [b for b in members if benchmarks.get(b) is not None]
        averages[key] = {"accuracy": sum(benchmarks[b] for b in over) / len(over) if over else None,
                         "over": over, "missing": [b for b in members if b not in over]}
    return {"suite": suite, "benchmarks": rows, "averages": averages, "skipped": {}}


def test_read_suite_groups_and_missing(tmp_path):
    data = suite_json({"a": 0.5, "b": None, "c": 0.25}, {"math_avg": ["a", "b"], "ood_avg": ["c"]}, "paper")
    p = tmp_path / "suite.json"
    p.write_text(json.dumps(data))
    s = read_suite(p)
    assert s.groups == {"math_avg": ["a", "b"], "ood_avg": ["c"]}
    assert s.benchmarks == {"a": 0.5, "c": 0.25, "b": None}
    assert s.averages == {"math_avg": 0.5, "ood_avg": 0.25}
    assert s.missing == {"math_avg": ["b"], "ood_avg": []}


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.pop("averages"), "missing key 'averages'"),
    (lambda d: d["benchmarks"]["a"].update(accuracy=1.5), r"benchmarks.a.accuracy: expected an accuracy in \[0, 1\]"),
    (lambda d: d["averages"]["id"].pop("over"), "averages.id: expected an object with"),
])
def test_read_suite_rejects_bad_files(tmp_path, mutate, message):
    data = suite_json({"a": 0.5}, {"id": ["a"]})
    mutate(data)
    p = tmp_path / "suite.json"
    p.write_text(json.dumps(data))
    with pytest.raises(ReportError, match=message):
        read_suite(p)


def test_read_suite_not_json_and_missing(tmp_path):
    p = tmp_path / "suite.json"
    with pytest.raises(ReportError, match="suite.json: file not found"):
        read_suite(p)
    p.write_text("{")
    with pytest.raises(ReportError, match="suite.json: not valid JSON"):
        read_suite(p)


def test_run_config_and_dotted_keys(tmp_path):
    (tmp_path / "resolved_config.yaml").write_text("loss:\n  shaping: {name: luffy, gamma: 0.2}\n")
    cfg = read_run_config(tmp_path)
    assert config_value(cfg, "loss.shaping.gamma", "x.yaml") == 0.2
    with pytest.raises(ReportError, match="x.yaml: key 'loss.clip' not found"):
        config_value(cfg, "loss.clip", "x.yaml")
    with pytest.raises(ReportError, match="resolved_config.yaml: file not found"):
        read_run_config(tmp_path / "nope")
