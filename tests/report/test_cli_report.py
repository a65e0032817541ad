"""``python -m luffy report table|figure``: files written, γ from run configs, one-line errors."""

import json

import pytest
from support import write_suite

from luffy.cli import main


def write_run(run_dir, gamma, shaping="luffy"):
    run_dir.mkdir(parents=True, exist_ok=True)
    params = f", gamma: {gamma}" if shaping == "luffy" else ""
    (run_dir / "resolved_config.yaml").write_text(f"loss:\n  shaping: {{name: {shaping}{params}}}\n")
    recs = [{"step": s, "entropy/all": 1.0 - 0.1 * s, "reward/on": 0.1 * s} for s in range(1, 6)]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    return run_dir


def test_table_command_writes_three_formats(tmp_path, capsys):
    a = write_suite(tmp_path / "eval/base/suite.json", 0.1, 0.0)
    b = write_suite(tmp_path / "eval/luffy-s0/suite.json", 0.5, 0.25)
    rc = main(["report", "table", "--kind", "table1", "--eval", f"base={a}", "--eval", f"luffy={b}",
               "--out", str(tmp_path / "rep/table1")])
    assert rc == 0
    md = (tmp_path / "rep/table1.md").read_text()
    assert "| LUFFY | **50.0** | **25.0** |" in md
    assert (tmp_path / "rep/table1.csv").read_text().splitlines()[0] == (
        "name,label,checkpoint,n_seeds,tiny_id,tiny_id_ci_low,tiny_id_ci_high,tiny_ood,tiny_ood_ci_low,tiny_ood_ci_high")
    assert (tmp_path / "rep/table1.tex").is_file()


def test_table_checkpoint_option_names_and_checks_the_checkpoint(tmp_path, capsys):
    a = write_suite(tmp_path / "eval/base/suite.json", 0.1, 0.0, "base")
    b = write_suite(tmp_path / "eval/luffy-s0/best_val/suite.json", 0.5, 0.25, "best_val")
    args = ["report", "table", "--kind", "table1", "--eval", f"base={a}", "--eval", f"luffy={b}"]
    assert main([*args, "--checkpoint", "best_val", "--out", str(tmp_path / "rep/t")]) == 0
    assert "best-validation checkpoint of each run**" in (tmp_path / "rep/t.md").read_text()
    assert main([*args, "--checkpoint", "final", "--out", str(tmp_path / "rep/u")]) == 2
    assert "the evaluation is of checkpoint 'best_val', the report is of 'final'" in capsys.readouterr().err


def test_gamma_table_reads_gamma_from_resolved_config(tmp_path):
    evals, runs = [], []
    for name, g, acc in (("gamma_0.5", 0.5, 0.2), ("luffy", 0.1, 0.4)):
        evals += ["--eval", f"{name}={write_suite(tmp_path / f'eval/{name}/suite.json', acc, acc)}"]
        runs += ["--run", f"{name}={write_run(tmp_path / f'runs/{name}', g)}"]
    assert main(["report", "table", "--kind", "gamma", *evals, *runs, "--out", str(tmp_path / "g")]) == 0
    lines = (tmp_path / "g.md").read_text().splitlines()
    assert lines[4].startswith("| γ = 0.1 (LUFFY) | **40.0**") and lines[5].startswith("| γ = 0.5 | 20.0")


def test_figure_command_writes_png_and_pdf(tmp_path):
    run = write_run(tmp_path / "runs/luffy-s0", 0.1)
    assert main(["report", "figure", "--kind", "entropy", "--run", f"luffy={run}", "--out", str(tmp_path / "f/e")]) == 0
    assert (tmp_path / "f/e.png").stat().st_size > 1000 and (tmp_path / "f/e.pdf").is_file()
    assert main(["report", "figure", "--kind", "shaping", "--out", str(tmp_path / "f/s")]) == 0


@pytest.mark.parametrize("args, message", [
    (["table", "--kind", "table1", "--eval", "luffy"], "luffy: error: --eval 'luffy': expected NAME=PATH"),
    (["table", "--kind", "table1", "--eval", "luffy=nowhere/suite.json"], "luffy: error: nowhere/suite.json: file not found"),
    (["figure", "--kind", "entropy", "--run", "luffy=nowhere"], "luffy: error: nowhere/metrics.jsonl: file not found"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, args, message):
    rc = main(["report", *args, "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith(message) and err.count("\n") == 1


def test_gamma_sweep_refuses_unshaped_runs(tmp_path, capsys):
    s = write_suite(tmp_path / "eval/mixed/suite.json", 0.2, 0.1)
    r = write_run(tmp_path / "runs/mixed", 0.1, shaping="identity")
    rc = main(["report", "figure", "--kind", "gamma_sweep", "--eval", f"mixed={s}", "--run", f"mixed={r}",
               "--out", str(tmp_path / "x")])
    assert rc == 2
    assert "loss.shaping is 'identity'; the γ sweep needs 'luffy' runs" in capsys.readouterr().err
