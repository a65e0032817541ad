"""luffy.report.tables: layout, seed statistics (mean ± 95% t interval), the checkpoint caption, paper
numbers and the three formats."""

import csv
import io
import json

import pytest

from luffy.report.results import ReportError, read_suite
from luffy.report.tables import build_table, tex_escape, to_csv, to_latex, to_markdown, write_table

TINY_GROUPS = {"id": ["tiny_id"], "ood": ["tiny_ood"]}
PAPER_GROUPS = {"math_avg": ["aime24", "aime25", "amc23", "math500", "minerva", "olympiadbench"],
                "ood_avg": ["arc_c", "gpqa_diamond", "mmlu_pro"]}


T_975_1 = 12.706204736174707  # Student t quantile 0.975 with 1 degree of freedom (two seeds)


def suite(tmp_path, name, accs, groups, kind="tiny", checkpoint=None):
    rows = {b: {"accuracy": a} for b, a in accs.items() if a is not None}
    averages = {}
    for key, members in groups.items():
        over = [b for b in members if accs.get(b) is not None]
        averages[key] = {"accuracy": sum(accs[b] for b in over) / len(over) if over else None,
                         "over": over, "missing": [b for b in members if b not in over]}
    p = tmp_path / name / "suite.json"
    p.parent.mkdir(parents=True)
    extra = {"checkpoint": checkpoint} if checkpoint else {}
    p.write_text(json.dumps({"suite": kind, "benchmarks": rows, "averages": averages, **extra}))
    return read_suite(p)


@pytest.fixture
def tiny_evals(tmp_path):
    return {
        "base": [suite(tmp_path, "base", {"tiny_id": 0.10, "tiny_ood": 0.0}, TINY_GROUPS)],
        "on_policy": [suite(tmp_path, "on-s0", {"tiny_id": 0.20, "tiny_ood": 0.05}, TINY_GROUPS),
                      suite(tmp_path, "on-s1", {"tiny_id": 0.30, "tiny_ood": 0.05}, TINY_GROUPS)],
        "luffy": [suite(tmp_path, "lu-s0", {"tiny_id": 0.30, "tiny_ood": 0.10}, TINY_GROUPS),
                  suite(tmp_path, "lu-s1", {"tiny_id": 0.40, "tiny_ood": 0.20}, TINY_GROUPS)],
    }


def test_tiny_table1_values(tiny_evals):
    t = build_table("table1", tiny_evals, scale="tiny")
    # single-benchmark groups: no Avg. column repeating the benchmark
    assert [c.label for c in t.columns] == ["ID test", "OOD test"]
    assert [r.label for r in t.rows] == ["Base model", "On-Policy RL", "LUFFY"]
    luffy = t.rows[2].cells
    assert luffy[0].mean == pytest.approx(35.0) and luffy[0].se == pytest.approx(5.0)  # 30, 40
    # 95% t interval over two seeds: 35 ± t(0.975, 1) * 5
    assert (luffy[0].ci_low, luffy[0].ci_high) == pytest.approx((35 - 5 * T_975_1, 35 + 5 * T_975_1))
    assert luffy[0].half_width == pytest.approx(5 * T_975_1)
    assert luffy[1].mean == pytest.approx(15.0) and luffy[1].half_width == pytest.approx(5 * T_975_1)  # 10, 20
    assert t.rows[1].cells[1].half_width == pytest.approx(0.0)  # 5, 5
    base = t.rows[0].cells[0]
    assert base.n == 1 and base.ci_low is None and base.ci_high is None and base.half_width is None
    assert not t.show_paper


def test_markdown_bold_best_and_notes(tiny_evals):
    md = to_markdown(build_table("table1", tiny_evals, scale="tiny"))
    assert "| Model | ID test | OOD test |" in md
    assert "| LUFFY | **35.0 ± 63.5** | **15.0 ± 63.5** |" in md  # 5 * 12.706
    assert "| On-Policy RL | 25.0 ± 63.5 | 5.0 ± 0.0 |" in md
    assert "| Base model | 10.0 | 0.0 |" in md  # one evaluation: no ±
    assert ("mean over 1–2 seeds ± the half-width of the 95% confidence interval of the mean (Student t over "
            "seeds); a row with one seed has none") in md
    assert "standard error" not in md
    assert "(" not in md.split("\n")[4]  # no paper numbers at tiny scale


def paper_accs(shift=0.0, mmlu=None):
    vals = {"aime24": 0.3, "aime25": 0.2, "amc23": 0.6, "math500": 0.9, "minerva": 0.4, "olympiadbench": 0.5,
            "arc_c": 0.8, "gpqa_diamond": 0.4, "mmlu_pro": mmlu}
    return {k: (None if v is None else v + shift) for k, v in vals.items()}


def test_paper_table1_layout_paper_numbers_and_missing_benchmark(tmp_path):
    evals = {"luffy": [suite(tmp_path, "lu", paper_accs(), PAPER_GROUPS, "paper")],
             "sft": [suite(tmp_path, "sft", paper_accs(-0.1), PAPER_GROUPS, "paper")]}
    t = build_table("table1", evals, scale="paper")
    assert [c.label for c in t.columns] == ["AIME24", "AIME25", "AMC", "MATH-500", "Minerva", "Olympiad", "Avg.",
                                            "ARC-c", "GPQA*", "MMLU-Pro", "OOD Avg."]
    cells = t.rows[0].cells
    # math avg = mean(0.3, 0.2, 0.6, 0.9, 0.4, 0.5) = 0.4833; OOD avg over the two present = 0.6
    assert cells[6].mean == pytest.approx(48.3333, abs=1e-3) and cells[6].paper == 50.1
    assert cells[10].mean == pytest.approx(60.0) and cells[10].paper == 57.8
    assert cells[9].mean is None and cells[9].paper == 53.0  # MMLU-Pro: no result, paper has one
    assert cells[0].paper == 29.4 and t.rows[1].cells[0].paper == 22.2  # LUFFY / SFT AIME24
    md = to_markdown(t)
    assert "| LUFFY | **30.0** (29.4) |" in md
    assert "No result for MMLU-Pro (missing data)" in md
    assert "In parentheses: the published number (paper Table 1" in md
    rows = list(csv.DictReader(io.StringIO(to_csv(t))))
    assert rows[0]["name"] == "luffy" and rows[0]["aime24"] == "30.0000" and rows[0]["aime24_paper"] == "29.4000"
    assert rows[0]["mmlu_pro"] == "" and rows[0]["n_seeds"] == "1"
    assert rows[1]["math_avg"] == "38.3333"


def test_table4_uses_ablation_labels_and_table4_numbers(tmp_path):
    evals = {"mixed_clip": [suite(tmp_path, "m", paper_accs(), PAPER_GROUPS, "paper")],
             "on_policy_shaping": [suite(tmp_path, "o", paper_accs(), PAPER_GROUPS, "paper")]}
    t = build_table("table4", evals, scale="paper")
    assert [r.label for r in t.rows] == ["Mixed-Policy RL (f(p)=p, clip)", "On-Policy + Shaping (clip)"]
    assert t.rows[0].cells[6].paper == 44.4 and t.rows[1].cells[6].paper == 42.0
    assert t.rows[0].cells[7].paper is None  # Table 4 has no OOD columns


def test_gamma_table_sorted_by_gamma(tiny_evals, tmp_path):
    evals = {"gamma_0.5": tiny_evals["on_policy"], "luffy": tiny_evals["luffy"]}
    t = build_table("gamma", evals, scale="tiny", gammas={"gamma_0.5": 0.5, "luffy": 0.1})
    assert [r.label for r in t.rows] == ["γ = 0.1 (LUFFY)", "γ = 0.5"]
    with pytest.raises(ReportError, match=r"no γ for \['gamma_0.5'\]"):
        build_table("gamma", evals, scale="tiny", gammas={"luffy": 0.1})


def test_inconsistent_groups_and_bad_kind(tmp_path, tiny_evals):
    other = suite(tmp_path, "other", paper_accs(), PAPER_GROUPS, "paper")
    with pytest.raises(ReportError, match="benchmark groups .* differ from"):
        build_table("table1", {**tiny_evals, "sft": [other]}, scale="tiny")
    with pytest.raises(ReportError, match="--kind 'table9'"):
        build_table("table9", tiny_evals, scale="tiny")
    with pytest.raises(ReportError, match="no evaluations given"):
        build_table("table1", {}, scale="tiny")


def test_latex_is_booktabs_with_group_header(tmp_path):
    evals = {"sft_rl": [suite(tmp_path, "a", paper_accs(), PAPER_GROUPS, "paper")]}
    tex = to_latex(build_table("table1", evals, scale="paper"))
    assert r"\begin{tabular}{lrrrrrrrrrrr}" in tex
    assert r"\multicolumn{7}{c}{math (6 benchmarks)} & \multicolumn{4}{c}{out-of-distribution}" in tex
    assert r"\cmidrule(lr){2-8} \cmidrule(lr){9-12}" in tex
    assert r"SFT$\rightarrow$RL & 30.0 {\scriptsize(25.8)}" in tex
    assert tex.count(r"\\") >= 3 and tex.strip().endswith(r"\end{table}")
    assert tex_escape("a_b & 5% #1") == r"a\_b \& 5\% \#1"


def test_one_seed_says_so_and_shows_no_interval(tmp_path):
    evals = {"luffy": [suite(tmp_path, "lu", {"tiny_id": 0.3, "tiny_ood": 0.1}, TINY_GROUPS)],
             "sft": [suite(tmp_path, "sft", {"tiny_id": 0.2, "tiny_ood": 0.1}, TINY_GROUPS)]}
    t = build_table("table1", evals, scale="tiny")
    md, tex = to_markdown(t), to_latex(t)
    assert "| LUFFY | **30.0** | 10.0 |" in md and "±" not in md.split("\n\n")[1]
    assert "one seed, so no confidence interval (it needs two or more seeds)" in md
    assert r"$\pm$" not in tex.split(r"\midrule")[1]
    rows = list(csv.DictReader(io.StringIO(to_csv(t))))
    assert rows[0]["tiny_id"] == "30.0000" and rows[0]["tiny_id_ci_low"] == rows[0]["tiny_id_ci_high"] == ""


def test_csv_and_latex_carry_the_interval(tiny_evals):
    t = build_table("table1", tiny_evals, scale="tiny")
    rows = list(csv.DictReader(io.StringIO(to_csv(t))))
    assert list(rows[0])[:7] == ["name", "label", "checkpoint", "n_seeds", "tiny_id", "tiny_id_ci_low",
                                 "tiny_id_ci_high"]
    luffy = rows[2]
    assert float(luffy["tiny_id_ci_low"]) == pytest.approx(35 - 5 * T_975_1, abs=1e-4)
    assert float(luffy["tiny_id_ci_high"]) == pytest.approx(35 + 5 * T_975_1, abs=1e-4)
    assert r"\textbf{35.0}{\scriptsize$\pm$63.5}" in to_latex(t)


@pytest.fixture
def best_val_evals(tmp_path):
    return {
        "base": [suite(tmp_path, "base", {"tiny_id": 0.1, "tiny_ood": 0.0}, TINY_GROUPS, checkpoint="base")],
        "luffy": [suite(tmp_path, "lu-s0", {"tiny_id": 0.3, "tiny_ood": 0.1}, TINY_GROUPS, checkpoint="best_val"),
                  suite(tmp_path, "lu-s1", {"tiny_id": 0.4, "tiny_ood": 0.2}, TINY_GROUPS, checkpoint="best_val")],
    }


def test_caption_says_which_checkpoint_the_rows_are(best_val_evals):
    t = build_table("table1", best_val_evals, scale="tiny", checkpoint="best_val")
    assert t.checkpoint == "best_val"
    assert t.title.endswith(", best-validation checkpoint of each run")
    md, tex = to_markdown(t), to_latex(t)
    assert md.startswith("**Table 1 -- accuracy (%) of the base model and each method, best-validation "
                         "checkpoint of each run**")
    assert "Checkpoint: each run's best-validation model (best_val/" in md and "The base model has one." in md
    assert r"\caption{Table 1 -- accuracy (\%) of the base model and each method, best-validation checkpoint" in tex
    rows = list(csv.DictReader(io.StringIO(to_csv(t))))
    assert [(r["name"], r["checkpoint"]) for r in rows] == [("base", "base"), ("luffy", "best_val")]
    # without --checkpoint the recorded one is used
    assert build_table("table1", best_val_evals, scale="tiny").checkpoint == "best_val"


def test_evaluations_of_another_checkpoint_are_refused(tmp_path, best_val_evals):
    with pytest.raises(ReportError, match=r"lu-s0/suite.json: the evaluation is of checkpoint 'best_val', "
                                          r"the report is of 'final'"):
        build_table("table1", best_val_evals, scale="tiny", checkpoint="final")
    mixed = {**best_val_evals, "sft": [suite(tmp_path, "sft", {"tiny_id": 0.2, "tiny_ood": 0.1}, TINY_GROUPS,
                                             checkpoint="final")]}
    with pytest.raises(ReportError, match=r"the evaluations mix checkpoints \(best_val, final\)"):
        build_table("table1", mixed, scale="tiny")
    unlabelled = {"luffy": [suite(tmp_path, "old", {"tiny_id": 0.2, "tiny_ood": 0.1}, TINY_GROUPS)]}
    with pytest.raises(ReportError, match="old/suite.json: the evaluation records no checkpoint"):
        build_table("table1", unlabelled, scale="tiny", checkpoint="best_val")
    t = build_table("table1", unlabelled, scale="tiny")  # no label anywhere: no checkpoint caption
    assert t.checkpoint is None and "Checkpoint" not in to_markdown(t)


def test_final_checkpoint_caption(tmp_path):
    evals = {"luffy": [suite(tmp_path, "lu", {"tiny_id": 0.3, "tiny_ood": 0.1}, TINY_GROUPS, checkpoint="final")]}
    md = to_markdown(build_table("table4", evals, scale="tiny", checkpoint="final"))
    assert ", final model of each run**" in md
    assert "Checkpoint: each run's final model (model/, after the last training step)." in md


def test_write_table_writes_three_files(tmp_path, tiny_evals):
    paths = write_table(build_table("table1", tiny_evals, scale="tiny"), tmp_path / "out" / "table1")
    assert sorted(p.name for p in paths) == ["table1.csv", "table1.md", "table1.tex"]
    assert all(p.stat().st_size > 0 for p in paths)
