"""luffy.report.claims and ``luffy report claims``: hand-made suite.json / metrics.jsonl files with known
answers -- claims that hold, that do not, one seed, a missing run."""

import csv
import io
import json

import pytest
import support

from luffy.cli import main
from luffy.report import claims as C
from luffy.report.results import ReportError, parse_seeded, read_metrics, read_suite

T_975_2 = 4.302652729911275  # Student t quantile 0.975, 2 degrees of freedom (three seeds)

# Per seed: ID and OOD accuracy of each experiment (three seeds).
ACC = {
    "luffy": [(0.50, 0.30), (0.60, 0.35), (0.55, 0.40)],
    "on_policy": [(0.40, 0.32), (0.48, 0.30), (0.44, 0.41)],  # ID: +10, +12, +11; OOD: -2, +5, -1
    "sft": [(0.60, 0.10), (0.50, 0.15), (0.70, 0.20)],  # OOD: +20 in every seed
    "mixed_clip": [(0.20, 0.10), (0.30, 0.10), (0.30, 0.10)],  # (ID+OOD)/2: +25, +27.5, +27.5
}
BASE_ACC = (0.10, 0.00)
# Per seed: entropy/on over steps 9 and 10 of 10 (the last 20%); steps 1..8 are set far off to show the window.
ENTROPY = {"luffy": [(1.0, 1.2)] * 3, "on_policy": [(0.5, 0.7)] * 3, "mixed_clip": [(0.8, 1.0)] * 3}


def write_suite(path, id_acc, ood_acc, checkpoint="best_val"):
    return support.write_suite(path, id_acc, ood_acc, checkpoint)


def write_run(run_dir, last_two, early=5.0):
    run_dir.mkdir(parents=True, exist_ok=True)
    recs = [{"step": 0, "val/accuracy": 0.1}]
    recs += [{"step": s, "entropy/on": early, "reward/mean": 0.5} for s in range(1, 9)]
    recs += [{"step": 9 + i, "entropy/on": v} for i, v in enumerate(last_two)]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    return run_dir


def study(tmp_path, seeds=(0, 1, 2), skip=(), entropy=None):
    """The CLI arguments of a study with these seeds, leaving out the experiments in ``skip``."""
    entropy = entropy or ENTROPY
    args = ["--eval", f"base={write_suite(tmp_path / 'eval/base/suite.json', *BASE_ACC, 'base')}"]
    for name, per_seed in ACC.items():
        if name in skip:
            continue
        for s in seeds:
            path = write_suite(tmp_path / f"eval/{name}-s{s}/best_val/suite.json", *per_seed[s])
            args += ["--eval", f"{name}@{s}={path}"]
    for name, per_seed in entropy.items():
        if name in skip:
            continue
        for s in seeds:
            args += ["--run", f"{name}@{s}={write_run(tmp_path / f'runs/{name}-s{s}', per_seed[s])}"]
    return args


def compute(tmp_path, **kw):
    """The claims and the other comparisons of ``study(tmp_path, **kw)``, by claim id."""
    items = study(tmp_path, **kw)
    flags = list(zip(items[::2], items[1::2]))
    evals = {n: {s: read_suite(p) for s, p in d.items()}
             for n, d in parse_seeded([v for f, v in flags if f == "--eval"], "--eval").items()}
    runs = {n: {s: read_metrics(p) for s, p in d.items()}
            for n, d in parse_seeded([v for f, v in flags if f == "--run"], "--run").items()}
    claims = {r.claim: r for r in C.compute_claims(evals, runs)}
    return claims, {r.claim: r for r in C.compute_claims(evals, runs, C.OTHER_COMPARISONS)}


def test_three_seeds_known_answers(tmp_path):
    rows, others = compute(tmp_path)
    assert list(rows) == ["luffy_gt_on_policy_id", "luffy_gt_on_policy_ood", "luffy_gt_sft_ood",
                          "luffy_gt_mixed_clip_id_ood", "luffy_entropy_gt_on_policy_and_mixed_clip"]
    r = rows["luffy_gt_on_policy_id"]  # differences 10, 12, 11: mean 11, SE 1/sqrt(3)
    half = T_975_2 / 3 ** 0.5
    assert (r.left, r.right, r.n_seeds) == ("luffy", "on_policy", 3)
    assert r.metric == "ID test accuracy (%)"
    assert r.diff == pytest.approx(11.0) and (r.ci_low, r.ci_high) == pytest.approx((11 - half, 11 + half))
    assert r.holds and r.per_seed == pytest.approx({0: 10.0, 1: 12.0, 2: 11.0})
    r = rows["luffy_gt_on_policy_ood"]  # -2, +5, -1: the interval includes 0
    assert r.diff == pytest.approx(2 / 3) and r.ci_low < 0 < r.ci_high and not r.holds
    assert r.note == "the 95% CI includes 0" and r.metric == "OOD test accuracy (%)"
    r = rows["luffy_gt_sft_ood"]  # +20 in every seed: zero spread, the interval is the point
    assert r.diff == pytest.approx(20.0) and r.ci_low == pytest.approx(20.0) and r.holds
    r = rows["luffy_gt_mixed_clip_id_ood"]
    assert r.metric == "(ID test + OOD test)/2 accuracy (%)" and r.right == "mixed_clip"
    assert r.per_seed == pytest.approx({0: 25.0, 1: 27.5, 2: 27.5}) and r.holds
    r = rows["luffy_entropy_gt_on_policy_and_mixed_clip"]
    # last 20% of 10 steps = steps 9, 10: LUFFY 1.1, On-Policy 0.6, Mixed 0.9 -> margin min(0.5, 0.2)
    assert r.right == "on_policy+mixed_clip" and r.metric.startswith("entropy/on")
    assert r.per_seed == pytest.approx({0: 0.2, 1: 0.2, 2: 0.2}) and r.holds
    assert r.note.startswith("> 0 in 3 of 3 seed(s)")
    # not claimed: LUFFY vs SFT in distribution (-10, +10, -15), On-Policy vs the base model (one evaluation)
    assert not others["luffy_vs_sft_id"].holds and others["luffy_vs_sft_id"].diff == pytest.approx(-5.0)
    base = others["on_policy_vs_base_id"]
    assert base.right == "base" and base.n_seeds == 3 and base.per_seed == pytest.approx({0: 30, 1: 38, 2: 34})
    assert base.holds


def test_entropy_claim_fails_when_one_seed_fails_either_comparison(tmp_path):
    entropy = {**ENTROPY, "mixed_clip": [(0.8, 1.0), (0.8, 1.0), (1.2, 1.4)]}  # seed 2: Mixed 1.3 > LUFFY 1.1
    rows, _ = compute(tmp_path, entropy=entropy)
    r = rows["luffy_entropy_gt_on_policy_and_mixed_clip"]
    assert r.per_seed == pytest.approx({0: 0.2, 1: 0.2, 2: -0.2}) and not r.holds
    assert r.note.startswith("> 0 in 2 of 3 seed(s)")


def test_one_seed_has_no_interval_and_does_not_hold(tmp_path):
    rows, _ = compute(tmp_path, seeds=(0,))
    for claim in ("luffy_gt_on_policy_id", "luffy_gt_sft_ood", "luffy_gt_mixed_clip_id_ood"):
        r = rows[claim]
        assert r.n_seeds == 1 and r.ci_low is None and r.ci_high is None and not r.holds
        assert r.note.startswith("one seed: no 95% CI")
    assert rows["luffy_gt_on_policy_id"].diff == pytest.approx(10.0)
    # the entropy claim's rule is per seed: it holds in the only seed
    r = rows["luffy_entropy_gt_on_policy_and_mixed_clip"]
    assert r.n_seeds == 1 and r.holds and r.note.startswith("> 0 in 1 of 1 seed(s)")


def test_a_run_missing_from_the_config_is_a_row_that_does_not_hold(tmp_path):
    rows, _ = compute(tmp_path, skip=("mixed_clip",))
    for claim, what in (("luffy_gt_mixed_clip_id_ood", "evaluations"),
                        ("luffy_entropy_gt_on_policy_and_mixed_clip", "training runs")):
        r = rows[claim]
        assert not r.holds and r.diff is None and r.n_seeds == 0
        assert r.note == f"no {what} of mixed_clip in this study (not in the config), so not tested"
    assert rows["luffy_gt_on_policy_id"].holds  # the others are unaffected


def test_unpaired_seeds_are_left_out():
    suites = {"luffy": {0: 1.0, 1: 2.0}, "on_policy": {1: 0.5}}
    pairs, unpaired = C._paired([suites["luffy"], suites["on_policy"]])
    assert pairs == {1: [2.0, 0.5]} and unpaired == [0]
    pairs, _ = C._paired([{0: 1.0, 1: 2.0}, {None: 0.5}])  # one evaluation for every seed
    assert pairs == {0: [1.0, 0.5], 1: [2.0, 0.5]}


def test_last_steps_window():
    recs = [{"step": s, "entropy/on": float(s)} for s in range(11)]
    assert C.last_steps_mean(recs) == pytest.approx(9.5)  # steps 9, 10 of 10
    assert C.last_steps_mean(recs[:3]) == pytest.approx(2.0)  # 2 steps: the last one
    assert C.last_steps_mean([{"step": 1, "reward/mean": 1.0}]) is None
    recs = [{"step": s, "entropy/on": float(s)} for s in range(1, 501)]
    assert C.last_steps_mean(recs) == pytest.approx(450.5)  # steps 401..500


def test_workflow_names_match_the_library():
    assert C.EVAL_NAMES == ("luffy", "on_policy", "sft", "mixed_clip", "base")
    assert C.RUN_NAMES == ("luffy", "on_policy", "mixed_clip")


def test_cli_writes_five_claims_and_a_readable_table(tmp_path, capsys):
    out = tmp_path / "reports/claims"
    assert main(["report", "claims", "--checkpoint", "best_val", *study(tmp_path), "--out", str(out)]) == 0
    rows = list(csv.DictReader(io.StringIO((tmp_path / "reports/claims.csv").read_text())))
    assert list(rows[0]) == ["claim", "left", "right", "metric", "diff", "ci_low", "ci_high", "n_seeds", "holds",
                             "note"]
    assert [(r["claim"], r["holds"]) for r in rows] == [
        ("luffy_gt_on_policy_id", "true"), ("luffy_gt_on_policy_ood", "false"), ("luffy_gt_sft_ood", "true"),
        ("luffy_gt_mixed_clip_id_ood", "true"), ("luffy_entropy_gt_on_policy_and_mixed_clip", "true")]
    assert rows[0]["diff"] == "11.0000" and rows[0]["n_seeds"] == "3"
    md = (tmp_path / "reports/claims.md").read_text()
    assert md.startswith("**The paper's claims on this study's runs** (best-validation checkpoint of each run; "
                         "3 seeds)")
    assert ("| 1 | LUFFY > On-Policy RL (`luffy_gt_on_policy_id`) | ID test accuracy (%) | +11.0 | [+8.5, +13.5] | 3 | "
            "**yes** |") in md
    assert "LUFFY > On-Policy RL and > Mixed-Policy RL (f(p)=p, clip)" in md
    assert "**Other comparisons**" in md and "`on_policy_vs_base_ood`" in md and "`luffy_vs_sft_id`" in md


def test_cli_refuses_another_checkpoint_and_bad_names(tmp_path, capsys):
    args = study(tmp_path, seeds=(0,))
    assert main(["report", "claims", "--checkpoint", "final", *args, "--out", str(tmp_path / "c")]) == 2
    assert "the evaluation is of checkpoint 'best_val', the report is of 'final'" in capsys.readouterr().err
    assert main(["report", "claims", "--eval", "luffy@x=a.json", "--out", str(tmp_path / "c")]) == 2
    assert "expected NAME@SEED=PATH" in capsys.readouterr().err
    with pytest.raises(ReportError, match="luffy has two results for seed 0"):
        parse_seeded(["luffy@0=a", "luffy@0=b"], "--eval")
