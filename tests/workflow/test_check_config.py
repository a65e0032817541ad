"""``luffy check-config``: the workflow config checks that need code (``luffy.workflow_config``).

A good config passes; every class of bad config ends with one line ``luffy: error: ...`` naming the
key or the file, and exit status 2. Most cases call the CLI in-process; one runs ``python -m luffy``.
"""

import io
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from luffy.cli import main
from luffy.config import ConfigError
from luffy.workflow_config import check_workflow_config, read_workflow_config

ROOT = Path(__file__).resolve().parents[2]
BASE = str(ROOT / "config" / "config.yaml")


def check(capsys, *args: str) -> tuple[int, str, str]:
    rc = main(["check-config", *args])
    out, err = capsys.readouterr()
    return rc, out, err


def overlay(tmp_path, content: dict) -> str:
    path = tmp_path / "overlay.yaml"
    path.write_text(yaml.safe_dump(content))
    return str(path)


@pytest.fixture
def root(tmp_path) -> Path:
    """A repository root of its own: a copy of config/experiments/tiny, free to break."""
    r = tmp_path / "repo"
    shutil.copytree(ROOT / "config" / "experiments" / "tiny", r / "config" / "experiments" / "tiny")
    return r


@pytest.mark.parametrize("extra", [[], ["config/smoke.yaml"], ["config/paper.yaml"]])
def test_the_shipped_configs_pass(capsys, extra):
    # the paper's benchmark parquets are staged by the user (docs/cluster.md): warnings, not errors, here
    data = ["--data", "warn"] if extra == ["config/paper.yaml"] else []
    rc, out, err = check(capsys, "--root", str(ROOT), *data, BASE, *[str(ROOT / f) for f in extra])
    assert rc == 0 and all(line.startswith("luffy: warning: paper_data.eval_dir") for line in err.splitlines()), err
    assert out.startswith("config ok: scale ")


def test_missing_benchmark_data_is_an_error_unless_warnings_are_asked_for(capsys, tmp_path):
    paper = overlay(tmp_path, {"paper_data": {"eval_dir": str(tmp_path / "none")}})
    rc, _, err = check(capsys, "--root", str(ROOT), BASE, str(ROOT / "config/paper.yaml"), paper)
    assert rc == 2 and err == f"luffy: error: paper_data.eval_dir '{tmp_path / 'none'}': folder not found (put the " \
        "benchmark parquets of method §3.4 there: docs/cluster.md, Data)\n"
    (tmp_path / "none").mkdir()
    for name in ("valid.all.parquet", "valid.arc_c.parquet", "valid.gpqa.parquet"):
        (tmp_path / "none" / name).write_bytes(b"")
    rc, _out, err = check(capsys, "--root", str(ROOT), "--data", "warn", BASE, str(ROOT / "config/paper.yaml"), paper)
    assert rc == 0 and err.splitlines() == [(f"luffy: warning: paper_data.eval_dir '{tmp_path / 'none'}': "
                                            "valid.mmlu_pro.parquet missing (benchmark mmlu_pro)")]


def test_files_merge_as_snakemake_merges_configfiles(tmp_path):
    config = read_workflow_config([BASE, overlay(tmp_path, {"seeds": [1, 2], "task": {"n_train": 7}})])
    assert config["seeds"] == [1, 2]  # lists replace
    assert config["task"]["n_train"] == 7 and config["task"]["n_test_id"] == 200  # mappings merge
    stdin = io.StringIO(yaml.safe_dump({"scale": "tiny", "seeds": [3]}))
    assert read_workflow_config([BASE, "-"], stdin=stdin)["seeds"] == [3]


BAD = [  # (overlay on config/config.yaml, the one line that must come back)
    ({"groups": {"table1": ["luffy", "luffyy"]}}, "groups.table1: unknown experiment 'luffyy' (known: ["),
    ({"figures": {"entropy": ["nope"]}}, "figures.entropy: unknown experiment 'nope'"),
    ({"experiments": {"sft_rl": {"init_from": "nope"}}}, "experiments.sft_rl.init_from: unknown experiment 'nope'"),
    ({"experiments": {"luffy": {"init_from": "luffy"}}}, "experiments.luffy.init_from: cycle luffy -> luffy"),
    ({"experiments": {"sft": {"init_from": "sft_rl"}}}, "experiments.sft.init_from: cycle sft -> sft_rl -> sft"),
    ({"experiments": {"luffy_v2": {}}}, "experiments.luffy_v2: no experiment file "),
    ({"experiments": {"luffy": {"set": ["train.stepz=2"]}}}, "experiments.luffy: "),
    ({"train_overrides": ["optim.lr=fast"]}, "experiments.on_policy: "),
    ({"base_model": {"source": "local", "path": "models/nowhere"}},
     "base_model.path 'models/nowhere': incomplete model folder: no such folder"),
    ({"base_model": {"source": "hub", "path": "x/y", "chat_template": "nope"}},
     "base_model.chat_template: unknown template 'nope'"),
    ({"eval": {"config": "nowhere.yaml"}}, "eval.config 'nowhere.yaml': file not found"),
    ({"task": {"n_train": 0}}, "task: n_train: "),
]


@pytest.mark.parametrize(("content", "message"), BAD, ids=[m.split(":")[0] for _, m in BAD])
def test_each_bad_config_is_one_line_naming_the_key(capsys, root, tmp_path, content, message):
    rc, out, err = check(capsys, "--root", str(root), BASE, overlay(tmp_path, content))
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith(f"luffy: error: {message}"), err


def test_run_config_problems_name_the_file_and_the_key(capsys, root, tmp_path):
    rc, _, err = check(capsys, "--root", str(root), BASE,
                       overlay(tmp_path, {"experiments": {"luffy": {"set": ["train.stepz=2"]}}}))
    assert rc == 2
    assert "config/experiments/tiny/luffy.yaml: train.stepz: unknown key" in err
    assert "(with train_overrides and the experiment's set applied)" in err


@pytest.mark.parametrize(("text", "message"), [
    ("inherit: luffy.yaml\ntrain: {stepz: 3}\n", "broken.yaml: train.stepz: unknown key"),
    ("inherit: nowhere.yaml\n", "nowhere.yaml: config file not found"),
    ("train: [unclosed\n", "broken.yaml: not valid YAML"),
    ("inherit: broken.yaml\n", "inherit cycle"),
])
def test_a_broken_experiment_file_is_named(capsys, root, tmp_path, text, message):
    (root / "config" / "experiments" / "tiny" / "broken.yaml").write_text(text)
    rc, _, err = check(capsys, "--root", str(root), BASE, overlay(tmp_path, {"experiments": {"broken": {}}}))
    assert rc == 2 and err.count("\n") == 1
    assert err.startswith("luffy: error: experiments.broken: ") and message in err, err


def test_a_root_without_experiment_files_says_where_to_run(capsys, tmp_path):
    rc, _, err = check(capsys, "--root", str(tmp_path), BASE)
    assert rc == 2
    assert "config/experiments/tiny: folder not found (run the workflow from the repository root)" in err


def test_unreadable_config_input_is_named(capsys, tmp_path, monkeypatch):
    rc, _, err = check(capsys, str(tmp_path / "missing.yaml"))
    assert rc == 2 and "missing.yaml: config file not found" in err
    monkeypatch.setattr(sys, "stdin", io.StringIO("scale: [unclosed\n"))
    rc, _, err = check(capsys, "-")
    assert rc == 2 and err.startswith("luffy: error: <stdin>: not valid YAML")


def test_the_library_raises_config_error():
    config = read_workflow_config([BASE])
    config["groups"]["ablations"] = ["nope"]
    with pytest.raises(ConfigError, match=r"^groups.ablations: unknown experiment 'nope'"):
        check_workflow_config(config, ROOT)


def test_the_command_reads_the_workflow_config_from_stdin_and_exits_2():
    """What the workflow runs before building its DAG: ``python -m luffy check-config -``."""
    config = read_workflow_config([BASE])
    ok = subprocess.run([sys.executable, "-m", "luffy", "check-config", "-"], cwd=ROOT, input=yaml.safe_dump(config),
                        capture_output=True, text=True, timeout=120, check=False)
    assert ok.returncode == 0, ok.stderr
    config["figures"]["training"] = ["luffyy"]
    bad = subprocess.run([sys.executable, "-m", "luffy", "check-config", "-"], cwd=ROOT, input=yaml.safe_dump(config),
                         capture_output=True, text=True, timeout=120, check=False)
    assert bad.returncode == 2
    assert bad.stderr.startswith("luffy: error: figures.training: unknown experiment 'luffyy'")
    assert bad.stderr.count("\n") == 1


def test_the_warmup_split_exists_at_tiny_scale_only(capsys, tmp_path):
    warm = {"base_model": {"warmup": {"experiment": "sft", "train_split": "warmup"}}}
    rc, out, err = check(capsys, "--root", str(ROOT), BASE, overlay(tmp_path, warm))
    assert rc == 0 and out.startswith("config ok: scale tiny"), err
    paper = [BASE, str(ROOT / "config/paper.yaml"), overlay(tmp_path, warm)]
    rc, out, err = check(capsys, "--root", str(ROOT), "--data", "warn", *paper)
    assert rc == 2 and out == ""
    assert err.splitlines()[-1] == ("luffy: error: base_model.warmup.train_split: 'warmup' is not a data split "
                                    "of scale 'paper' (its training splits: train, train_rl)")
