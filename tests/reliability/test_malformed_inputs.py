"""Broken configs and data files: one clear line each, naming the file and the key or row, exit 2,
before any model is loaded (``luffy.model.load.load_model`` is replaced by a tripwire).

Runs ``luffy.cli.main`` in-process (the same code as ``python -m luffy``) so 40 cases cost seconds.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml
from support import TINY, record

from luffy import cli
from luffy.model import load as model_load

RESULTS: dict[str, str] = {}


def _base(task_dir: Path, model: Path) -> dict:
    cfg = yaml.safe_load((TINY / "luffy.yaml").read_text())
    cfg["model"]["path"] = str(model)
    cfg["data"].update(train=str(task_dir / "train.jsonl"), val=str(task_dir / "test_id.jsonl"), val_limit=4)
    cfg["train"].update(steps=1, prompts_per_step=4, mini_batch_prompts=4)
    return cfg


def _set(path: str, value):
    def f(cfg: dict) -> dict:
        *parents, last = path.split(".")
        node = cfg
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
        return cfg
    return f


def _drop(path: str):
    def f(cfg: dict) -> dict:
        *parents, last = path.split(".")
        node = cfg
        for p in parents:
            node = node[p]
        del node[last]
        return cfg
    return f


# (case id, mutation of the config mapping, text the error line must contain besides the file name)
CONFIG_CASES = [
    ("unknown_top_key", _set("lossx", {}), "lossx"),
    ("unknown_nested_key", _set("loss.gama", 0.1), "loss.gama"),
    ("typo_in_train", _set("train.stpes", 3), "train.stpes"),
    ("steps_not_int", _set("train.steps", "ten"), "train.steps"),
    ("steps_zero", _set("train.steps", 0), "train.steps"),
    ("gamma_zero", _set("loss.shaping.gamma", 0), "loss.shaping: shaping 'luffy': gamma: gamma must be > 0"),
    ("gamma_negative", _set("loss.shaping.gamma", -0.5), "gamma must be > 0"),
    ("gamma_without_luffy", _set("loss.shaping", {"name": "identity", "gamma": 0.5}),
     "shaping 'identity' takes no parameter 'gamma'"),
    ("gamma_outside_shaping", _set("loss.gamma", 0.5), "unknown key 'gamma'"),
    ("unknown_shaping", _set("loss.shaping", "cubic"), "cubic"),
    ("unknown_aggregation", _set("loss.aggregation", "token_median"), "token_median"),
    ("unknown_adv_stats", _set("advantage.stats", "median"), "median"),
    ("unknown_adv_scale", _set("advantage.scale", "mad"), "mad"),
    ("empty_group", lambda c: _set("group.n_off", 0)(_set("group.n_on", 0)(c)), "at least one member"),
    ("mini_gt_prompts", _set("train.mini_batch_prompts", 8), "mini_batch_prompts"),
    ("mini_not_divisor", lambda c: _set("train.mini_batch_prompts", 3)(c), "multiple"),
    ("norm_length_short", _set("loss.norm_length", 10), "norm_length"),
    ("sft_objective_without_traces", lambda c: _set("off_policy_objective", "sft")(_set("group.n_off", 0)(c)),
     "n_off"),
    ("unknown_method", _set("method", "dpo"), "method"),
    ("lr_negative", _set("optim.lr", -1e-4), "optim.lr"),
    ("top_p_above_one", _set("rollout.top_p", 1.5), "rollout.top_p"),
    ("temperature_negative", _set("rollout.temperature", -1), "rollout.temperature"),
    ("unknown_engine", _set("rollout.engine", "sglang"), "rollout.engine"),
    ("dtype_unknown", _set("model.dtype", "float8"), "model.dtype"),
    ("n_on_negative", _set("group.n_on", -1), "group.n_on"),
    ("missing_data_train", _drop("data.train"), "data.train"),
    ("section_not_mapping", _set("train", [1, 2]), "train"),
    ("off_only_full_traces", _set("group.n_on", 0), "nothing is on-policy"),
    ("n_off_more_than_traces", _set("group.n_off", 3), "n_off = 3"),
    ("data_file_missing", _set("data.train", "nowhere/train.jsonl"), "data.train: nowhere/train.jsonl: no such"),
]


def _run(argv: list[str], capsys) -> tuple[int, str]:
    rc = cli.main(argv)
    return rc, capsys.readouterr().err


@pytest.fixture(scope="module", autouse=True)
def record_messages():
    """Every case's message, for RELIABILITY.md (written when $LUFFY_RELIABILITY_OUT is set)."""
    yield
    record("malformed_inputs", {"cases": len(RESULTS), "messages": RESULTS})


@pytest.fixture(autouse=True)
def no_model_loading(monkeypatch):
    def tripwire(*a, **k):
        raise AssertionError("a model was loaded before the bad input was reported")
    monkeypatch.setattr(model_load, "load_model", tripwire)


def _check(case: str, rc: int, err: str, *needles: str) -> None:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    RESULTS[case] = lines[0] if lines else ""
    assert rc == 2, (case, err[-1500:])
    assert len(lines) == 1 and lines[0].startswith("luffy: error: "), (case, err[-1500:])
    for n in needles:
        assert n in lines[0], (case, n, lines[0])


@pytest.mark.parametrize("case, mutate, needle", CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES])
def test_broken_train_config(case, mutate, needle, task_dir, base_model, tmp_path, capsys):
    path = tmp_path / f"{case}.yaml"
    path.write_text(yaml.safe_dump(mutate(copy.deepcopy(_base(task_dir, base_model)))))
    rc, err = _run(["train", "--config", str(path), "--out", str(tmp_path / "run"), "--no-progress"], capsys)
    where = {"n_off_more_than_traces": "train.jsonl", "data_file_missing": ""}.get(case, path.name)
    _check(case, rc, err, where, needle)
    assert not (tmp_path / "run" / "checkpoints").exists()


SYNTAX_CASES = [
    ("not_yaml", "train: {steps: [1, 2\n", "not valid YAML"),
    ("top_level_list", "- a\n- b\n", "expected a mapping"),
    ("empty_file", "", "model: Field required"),
    ("inherit_missing", "inherit: nope.yaml\n", "nope.yaml"),
]


@pytest.mark.parametrize("case, text, needle", SYNTAX_CASES, ids=[c[0] for c in SYNTAX_CASES])
def test_unreadable_config(case, text, needle, tmp_path, capsys):
    path = tmp_path / f"{case}.yaml"
    path.write_text(text)
    rc, err = _run(["train", "--config", str(path), "--out", str(tmp_path / "run")], capsys)
    _check(case, rc, err, needle)


def test_inherit_cycle_and_bad_overrides(task_dir, base_model, tmp_path, capsys):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("inherit: b.yaml\n")
    b.write_text("inherit: a.yaml\n")
    _check("inherit_cycle", *_run(["train", "--config", str(a), "--out", str(tmp_path / "r")], capsys),
           "inherit cycle")
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(_base(task_dir, base_model)))
    _check("override_without_equals",
           *_run(["train", "--config", str(good), "--out", str(tmp_path / "r"), "--set", "train.steps"], capsys),
           "train.steps", "key=value")
    _check("override_into_scalar",
           *_run(["train", "--config", str(good), "--out", str(tmp_path / "r"), "--set", "train.steps.x=1"],
                 capsys), "steps")


def _rows(task_dir: Path) -> list[dict]:
    return [json.loads(x) for x in (task_dir / "train.jsonl").read_text().splitlines()]


def _write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


DATA_CASES = [
    ("missing_answer_column", lambda rows: [{k: v for k, v in r.items() if k != "answer"} for r in rows], "answer"),
    ("empty_trace", lambda rows: rows[:5] + [{**rows[5], "traces": [{"text": "", "teacher": None}]}] + rows[6:],
     "line 6"),
    ("answer_wrong_dtype", lambda rows: rows[:2] + [{**rows[2], "answer": [1, 2]}] + rows[3:], "line 3"),
    ("prompt_wrong_dtype", lambda rows: rows[:1] + [{**rows[1], "prompt": {"x": 1}}] + rows[2:], "line 2"),
    ("not_json_row", lambda rows: rows[:3] + ["{not json"] + rows[4:], "line 4"),
    ("row_not_object", lambda rows: rows[:4] + ["[1, 2, 3]"] + rows[5:], "line 5"),
    ("no_rows", lambda rows: [], "no rows"),
    ("traces_not_list", lambda rows: rows[:7] + [{**rows[7], "traces": "a trace"}] + rows[8:], "line 8"),
    ("answer_nan", lambda rows: rows[:2] + ['{"id": "x", "prompt": "1+1", "answer": NaN, "traces": []}'] + rows[3:],
     "line 3"),
]


@pytest.mark.parametrize("case, mutate, needle", DATA_CASES, ids=[c[0] for c in DATA_CASES])
def test_broken_data_file(case, mutate, needle, task_dir, base_model, tmp_path, capsys):
    data = _write_jsonl(tmp_path / f"{case}.jsonl", mutate(_rows(task_dir)))
    cfg = _base(task_dir, base_model)
    cfg["data"]["train"] = str(data)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    rc, err = _run(["train", "--config", str(path), "--out", str(tmp_path / "run")], capsys)
    _check(case, rc, err, f"data.train: {data}", needle)


def test_non_utf8_and_unknown_suffix(task_dir, base_model, tmp_path, capsys):
    raw = (task_dir / "train.jsonl").read_bytes().splitlines(keepends=True)
    bad = tmp_path / "latin1.jsonl"
    bad.write_bytes(b"".join(raw[:2]) + b'{"id": "q", "prompt": "caf\xe9", "answer": "1"}\n' + b"".join(raw[3:]))
    cfg = _base(task_dir, base_model)
    for case, f, needles in (("non_utf8", bad, ("latin1.jsonl", "UTF-8")),
                             ("unknown_suffix", tmp_path / "rows.csv", ("rows.csv", ".csv"))):
        if f.suffix == ".csv":
            f.write_text("a,b\n")
        cfg["data"]["train"] = str(f)
        path = tmp_path / f"{case}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        _check(case, *_run(["train", "--config", str(path), "--out", str(tmp_path / "r")], capsys), *needles)


def test_task_and_model_sections(tmp_path, capsys):
    cfg = tmp_path / "wf.yaml"
    cfg.write_text("task: {n_trian: 3}\ntiny_model: {num_layers: zero}\n")
    _check("task_typo", *_run(["make-task", "--config", str(cfg), "--section", "task", "--out",
                               str(tmp_path / "t")], capsys), "wf.yaml", "n_trian")
    _check("model_wrong_type", *_run(["build-model", "--task", str(tmp_path / "t"), "--config", str(cfg),
                                      "--section", "tiny_model", "--out", str(tmp_path / "m")], capsys),
           "wf.yaml", "num_layers")


def test_at_least_thirty_cases():
    extra = 3 + 2 + 2  # inherit cycle / overrides, non-UTF-8 / suffix, task / model sections
    assert len(CONFIG_CASES) + len(SYNTAX_CASES) + len(DATA_CASES) + extra >= 30
