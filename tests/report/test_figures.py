"""luffy.report.figures: smoothing, the analytic shaping curves, and every figure on synthetic results."""

import json
import math

import pytest

from luffy.report import figures as F
from luffy.report.results import ReportError, read_suite


def test_smooth_centred_with_shrinking_ends():
    assert F.smooth([1, 2, 3, 4, 5], 3) == [1.5, 2, 3, 4, 4.5]
    assert F.smooth([1, 2, 3], 1) == [1, 2, 3]


def test_smoothing_window_is_odd_tenth():
    runs = {"a": [[{"step": s, "k": 1.0} for s in range(1, 41)]]}
    assert F.smoothing_window(runs, "k") == 5  # 40 // 10 = 4 -> 5
    assert F.smoothing_window({"a": [[{"step": 1, "k": 1.0}]]}, "k") == 1


def test_shaping_curves_match_the_closed_form():
    # f(p) = p/(p+γ), f'(p) = γ/(p+γ)^2, weight = f'(p) p (1-p); at p = γ: (1-γ)/4 = 0.225 for γ = 0.1
    p, f, w = F.shaping_curves(0.1, n=10001)
    i = min(range(len(p)), key=lambda j: abs(p[j] - 0.1))
    assert f[i] == pytest.approx(p[i] / (p[i] + 0.1), rel=1e-9)
    assert w[i] == pytest.approx(0.1 / (p[i] + 0.1) ** 2 * p[i] * (1 - p[i]), rel=1e-9)
    assert w[i] == pytest.approx(0.225, abs=1e-4)
    p, f, w = F.shaping_curves(None, n=10001)  # identity: weight p(1-p), 0.25 at p = 0.5
    assert max(w) == pytest.approx(0.25, abs=1e-6)
    assert f == pytest.approx(p)


def metrics(seed, steps=30, off=True, rl=True):
    recs = [{"step": 0, "val/accuracy": 0.1}]
    for s in range(1, steps + 1):
        r = {"step": s, "entropy/all": 1.0 / (1 + 0.1 * s) + 0.01 * seed, "optim/lr": 1e-4}
        if rl:
            r.update({"reward/on": min(1.0, 0.1 + 0.02 * s), "length/on": 20 + s})
            if off:
                r.update({"length/off": 40.0, "actor/off_prob": min(1.0, 0.2 + 0.02 * s + 0.01 * seed)})
        if s % 10 == 0:
            r["val/accuracy"] = 0.1 + 0.01 * s + 0.02 * seed
        recs.append(r)
    return recs


RUNS = {"on_policy": [metrics(0, off=False), metrics(1, off=False)], "mixed_clip": [metrics(0)],
        "luffy": [metrics(0), metrics(1)], "sft": [metrics(0, rl=False)]}


@pytest.mark.parametrize("kind, fn, xlabel, ylabel", [
    ("entropy", F.fig_entropy, "training step", "mean token entropy (nats)"),
    ("off_policy_prob", F.fig_off_policy_prob, "training step", "mean policy probability p of trace tokens"),
    ("validation", F.fig_validation, "training step", "accuracy on held-out prompts (%)"),
])
def test_dynamics_figures(tmp_path, kind, fn, xlabel, ylabel):
    fig = fn(RUNS)
    ax = fig.axes[0]
    assert ax.get_xlabel() == xlabel and ax.get_ylabel() == ylabel
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    if kind == "off_policy_prob":  # on-policy runs and SFT have no trace tokens in the policy loss
        assert legend == ["Mixed-Policy RL", "LUFFY"]
        title = ax.get_legend().get_title().get_text()
        assert title == "not shown (no off-policy tokens in the policy loss): On-Policy RL, SFT"
    else:
        assert legend == ["On-Policy RL", "Mixed-Policy RL", "LUFFY", "SFT"]
    paths = F.save_figure(fig, tmp_path / kind)
    assert [p.suffix for p in paths] == [".png", ".pdf"] and all(p.stat().st_size > 1000 for p in paths)


def test_validation_points_are_percent_means_over_seeds():
    fig = F.fig_validation({"luffy": [metrics(0), metrics(1)]})
    line = fig.axes[0].get_lines()[0]
    # step 10: seeds 0.2 and 0.22 -> 21 %
    assert list(line.get_xdata()) == [0, 10, 20, 30]
    assert line.get_ydata()[1] == pytest.approx(21.0)


def test_training_figure_has_two_panels_and_notes_sft():
    fig = F.fig_training(RUNS)
    a1, a2 = fig.axes
    assert a1.get_ylabel() == "mean reward (fraction correct)" and a2.get_ylabel() == "tokens per response"
    assert [t.get_text() for t in a2.get_legend().get_texts()] == ["on-policy samples", "off-policy traces"]
    assert a1.get_legend().get_title().get_text() == "not shown (no on-policy rollouts): SFT"
    assert "2 seeds" in a1.get_title() and "moving average over 3 steps" in a1.get_title()


def suite(tmp_path, name, accs, groups, checkpoint=None):
    rows = {b: {"accuracy": a} for b, a in accs.items()}
    averages = {k: {"accuracy": sum(accs[b] for b in m) / len(m), "over": m, "missing": []}
                for k, m in groups.items()}
    p = tmp_path / name / "suite.json"
    p.parent.mkdir(parents=True)
    p.write_text(json.dumps({"suite": "tiny", "benchmarks": rows, "averages": averages, "checkpoint": checkpoint}))
    return read_suite(p)


def tiny_suite(tmp_path, name, id_acc, ood_acc, checkpoint=None):
    return suite(tmp_path, name, {"tiny_id": id_acc, "tiny_ood": ood_acc}, {"id": ["tiny_id"], "ood": ["tiny_ood"]},
                 checkpoint)


def test_accuracy_figures_name_the_checkpoint(tmp_path):
    evals = {"luffy": [tiny_suite(tmp_path, "l", 0.5, 0.3, "best_val")],
             "gamma_0.05": [tiny_suite(tmp_path, "g", 0.4, 0.2, "best_val")]}
    title = F.fig_ablations(evals, "tiny", "best_val").axes[0].get_title()
    assert title == "Ablations (paper Table 4)\naccuracy of the best-validation checkpoint of each run -- 1 seed"
    title = F.fig_gamma(evals, {"luffy": 0.1, "gamma_0.05": 0.05}, "tiny").axes[0].get_title()
    assert "accuracy of the best-validation checkpoint of each run" in title
    with pytest.raises(ReportError, match="the evaluation is of checkpoint 'best_val', the report is of 'final'"):
        F.fig_ablations(evals, "tiny", "final")


def test_ablation_bars_heights_and_error_bars(tmp_path):
    evals = {"mixed_clip": [tiny_suite(tmp_path, "m0", 0.2, 0.1), tiny_suite(tmp_path, "m1", 0.4, 0.1)],
             "luffy": [tiny_suite(tmp_path, "l0", 0.5, 0.3)]}
    fig = F.fig_ablations(evals, "tiny")
    ax = fig.axes[0]
    heights = [round(p.get_height(), 6) for p in ax.patches]
    assert heights == [30.0, 50.0, 10.0, 30.0]  # ID bars (means over seeds), then OOD bars
    assert ax.get_ylabel() == "accuracy (%)"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["in-distribution test", "out-of-distribution test"]
    assert "Mixed-Policy RL" in ax.get_xticklabels()[0].get_text()


def test_gamma_figure_orders_by_gamma_and_needs_every_gamma(tmp_path):
    evals = {"luffy": [tiny_suite(tmp_path, "l", 0.5, 0.3)], "gamma_0.05": [tiny_suite(tmp_path, "g", 0.4, 0.2)]}
    fig = F.fig_gamma(evals, {"luffy": 0.1, "gamma_0.05": 0.05}, "tiny")
    ax = fig.axes[0]
    id_line = ax.get_lines()[0]
    assert list(id_line.get_xdata()) == pytest.approx([0.05 * 0.985, 0.1 * 0.985])  # ID nudged left of OOD
    assert list(id_line.get_ydata()) == pytest.approx([40.0, 50.0])
    assert ax.get_xscale() == "log"
    with pytest.raises(ReportError, match=r"no γ for \['gamma_0.05'\]"):
        F.fig_gamma(evals, {"luffy": 0.1}, "tiny")


def test_shaping_figure_saves(tmp_path):
    fig = F.fig_shaping()
    assert len(fig.axes) == 2 and fig.axes[1].get_ylabel() == "gradient weight"
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "f(p) = p/(p+0.1)  (LUFFY)" in labels and "f(p) = p  (no shaping)" in labels
    assert all(p.exists() for p in F.save_figure(fig, tmp_path / "shaping"))
    assert not math.isnan(fig.axes[1].get_ylim()[1])


def test_empty_inputs_are_errors():
    with pytest.raises(ReportError, match="figure entropy: no inputs given"):
        F.fig_entropy({})
