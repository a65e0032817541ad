"""Figures (PNG + PDF), pure functions of the runs' metrics and the evaluations (method §6.6).

* ``entropy``          generation entropy vs step (paper Fig. 2 left, Fig. 5 right): ``entropy/all``,
                       the mean token entropy over all response tokens, trace tokens included.
* ``training``         training reward of the on-policy samples (``reward/on``) and response length
                       (``length/on``; dashed: the off-policy traces, ``length/off``) vs step (Fig. 5).
* ``off_policy_prob``  mean probability of the trace tokens under the policy (``actor/off_prob``).
* ``validation``       validation accuracy vs step (``val/accuracy``; Fig. 6).
* ``ablations``        accuracy of the Table 4 variants per benchmark group, with seed error bars.
* ``gamma_sweep``      accuracy vs γ of f(p) = p/(p+γ) (Fig. 9); γ from each run's config.
                       These two name the checkpoint of the runs in their title (``checkpoint``:
                       :func:`luffy.report.results.report_checkpoint`).
* ``shaping``          f(p) and the gradient weight on the target token's logit,
                       |∂ℓ/∂z_y| / |Â| = f′(p)·p·(1−p) (Fig. 2 middle/right, method §1.4), computed with
                       autograd through :data:`luffy.algos.SHAPINGS`, against the unshaped f(p) = p.

Training curves are the mean over seeds (band: ± standard error when there are two or more seeds),
drawn as a centred moving average with the per-step values faint behind it; the window is given
in the title. Validation curves are not smoothed.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from luffy.utils.stats import mean_se

from .labels import (
    PAPER_GAMMA_MATH_AVG,
    checkpoint_label,
    color,
    experiment_label,
    group_label,
    paper_numbers,
)
from .results import ReportError, Series, Suite, metric_series, report_checkpoint

Runs = dict[str, list[list[dict[str, Any]]]]  # experiment -> one metrics list per seed

plt.rcParams.update({"axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False,
                     "axes.spines.right": False, "legend.frameon": False, "font.size": 10})


# ------------------------------------------------------------------------------------ helpers


def smooth(values: list[float], window: int) -> list[float]:
    """Centred moving average; the window shrinks at the ends (window 1 = no smoothing)."""
    h = max(0, window // 2)
    out = []
    for i in range(len(values)):
        part = values[max(0, i - h): i + h + 1]
        out.append(sum(part) / len(part))
    return out


def smoothing_window(runs: Runs, key: str) -> int:
    """An odd window of about a tenth of the longest series (1 for fewer than 10 steps)."""
    n = max((len(s.steps) for r in runs.values() if (s := metric_series(r, key))), default=0)
    w = max(1, n // 10)
    return w if w % 2 else w + 1


def _plot_series(ax: Any, s: Series, c: str, label: str | None, window: int, scale: float = 1.0,
                 linestyle: str = "-") -> None:
    mean = [scale * v for v in s.mean]
    if window > 1:
        ax.plot(s.steps, mean, color=c, alpha=0.25, linewidth=0.8, linestyle=linestyle)
    ax.plot(s.steps, smooth(mean, window), color=c, label=label, linewidth=2.0, linestyle=linestyle)
    if s.n_seeds > 1 and any(se is not None for se in s.se):
        se = [scale * (e or 0.0) for e in s.se]
        lo = smooth([m - e for m, e in zip(mean, se)], window)
        hi = smooth([m + e for m, e in zip(mean, se)], window)
        ax.fill_between(s.steps, lo, hi, color=c, alpha=0.15, linewidth=0)


def _curves(ax: Any, runs: Runs, key: str, *, scale: float = 1.0, window: int | None = None,
            linestyle: str = "-", labels: bool = True, markers: bool = False) -> list[str]:
    """Plot ``key`` for every experiment; return the labels of experiments without that metric."""
    window = smoothing_window(runs, key) if window is None else window
    absent = []
    for i, (name, recs) in enumerate(runs.items()):
        s = metric_series(recs, key)
        if s is None:
            absent.append(experiment_label(name))
            continue
        label = experiment_label(name) if labels else None
        if markers:
            c = color(name, i)
            y = [scale * v for v in s.mean]
            ax.plot(s.steps, y, color=c, label=label, linewidth=2.0, marker="o", markersize=4)
            if s.n_seeds > 1:
                err = [scale * (e or 0.0) for e in s.se]
                ax.errorbar(s.steps, y, yerr=err, color=c, linestyle="none", capsize=2)
        else:
            _plot_series(ax, s, color(name, i), label, window, scale, linestyle)
    return absent


def _seed_text(runs: Runs) -> str:
    n = sorted({len(r) for r in runs.values()})
    if n[-1] <= 1:
        return "1 seed"
    return f"mean ± SE over {n[0]}" + (f"–{n[-1]}" if len(n) > 1 else "") + " seeds"


def _title(ax: Any, text: str, runs: Runs, window: int | None) -> None:
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are whole numbers
    extra = [_seed_text(runs)]
    if window and window > 1:
        extra.append(f"moving average over {window} steps")
    ax.set_title(f"{text}\n({'; '.join(extra)})", fontsize=10)


def _legend_below(ax: Any, absent: list[str] = (), what: str = "", handles: list | None = None) -> None:
    """The legend under the axes (it never hides a curve); runs without the metric are named in it."""
    kw = {"handles": handles} if handles is not None else {}
    n = len(handles) if handles is not None else len(ax.get_legend_handles_labels()[1])
    title = f"not shown ({what}): {', '.join(absent)}" if absent else None
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncols=max(1, min(n, 4)), fontsize=9,
              title=title, title_fontsize=8, **kw)


def _require(runs: Runs | dict[str, list[Suite]], kind: str) -> None:
    if not runs:
        raise ReportError(f"figure {kind}: no inputs given")


# ------------------------------------------------------------------------------------ training dynamics


def fig_entropy(runs: Runs) -> Figure:
    _require(runs, "entropy")
    fig, ax = plt.subplots(figsize=(6.4, 4.8), layout="constrained")
    window = smoothing_window(runs, "entropy/all")
    absent = _curves(ax, runs, "entropy/all", window=window)
    _title(ax, "Generation entropy during training", runs, window)
    ax.set_xlabel("training step")
    ax.set_ylabel("mean token entropy (nats)")
    ax.set_ylim(bottom=0)
    _legend_below(ax, absent, "no entropy logged")
    return fig


def fig_training(runs: Runs) -> Figure:
    _require(runs, "training")
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11.5, 4.8), layout="constrained")
    w1 = smoothing_window(runs, "reward/on")
    absent = _curves(a1, runs, "reward/on", window=w1)
    _title(a1, "Training reward of the on-policy samples", runs, w1)
    a1.set_xlabel("training step")
    a1.set_ylabel("mean reward (fraction correct)")
    a1.set_ylim(-0.02, 1.02)
    _legend_below(a1, absent, "no on-policy rollouts")
    w2 = smoothing_window(runs, "length/on")
    _curves(a2, runs, "length/on", window=w2)
    _curves(a2, runs, "length/off", window=w2, linestyle="--", labels=False)
    _title(a2, "Response length", runs, w2)
    a2.set_xlabel("training step")
    a2.set_ylabel("tokens per response")
    a2.set_ylim(bottom=0)
    handles = [Line2D([], [], color="0.3", linestyle="-", linewidth=2, label="on-policy samples"),
               Line2D([], [], color="0.3", linestyle="--", linewidth=2, label="off-policy traces")]
    _legend_below(a2, handles=handles)
    return fig


def fig_off_policy_prob(runs: Runs) -> Figure:
    _require(runs, "off_policy_prob")
    fig, ax = plt.subplots(figsize=(6.4, 4.8), layout="constrained")
    window = smoothing_window(runs, "actor/off_prob")
    absent = _curves(ax, runs, "actor/off_prob", window=window)
    _title(ax, "Probability of the off-policy trace tokens", runs, window)
    ax.set_xlabel("training step")
    ax.set_ylabel("mean policy probability p of trace tokens")
    ax.set_ylim(-0.02, 1.02)
    _legend_below(ax, absent, "no off-policy tokens in the policy loss")
    return fig


def fig_validation(runs: Runs) -> Figure:
    _require(runs, "validation")
    fig, ax = plt.subplots(figsize=(6.4, 4.8), layout="constrained")
    absent = _curves(ax, runs, "val/accuracy", scale=100.0, window=1, markers=True)
    _title(ax, "Validation accuracy during training", runs, None)
    ax.set_xlabel("training step")
    ax.set_ylabel("accuracy on held-out prompts (%)")
    ax.set_ylim(0, max(5.0, ax.get_ylim()[1]))  # an all-zero curve still reads as "0 of 100 %"
    _legend_below(ax, absent, "no validation")
    return fig


# ------------------------------------------------------------------------------------ final accuracy


def _group_means(suites: list[Suite], key: str) -> tuple[float | None, float | None, int]:
    vals = [100.0 * s.averages[key] for s in suites if s.averages.get(key) is not None]
    m, se = mean_se(vals)
    return m, se, len(vals)


def _avg_keys(evals: dict[str, list[Suite]]) -> list[str]:
    first = next(iter(evals.values()))[0]
    return list(first.groups)


def _of_checkpoint(evals: dict[str, list[Suite]], checkpoint: str | None) -> str:
    """Which checkpoint of the runs the accuracies are (checked against the evaluations), for a title."""
    ckpt = report_checkpoint(evals, checkpoint)
    return f"accuracy of the {checkpoint_label(ckpt)}" if ckpt else "accuracy"


def fig_ablations(evals: dict[str, list[Suite]], scale: str, checkpoint: str | None = None) -> Figure:
    _require(evals, "ablations")
    what = _of_checkpoint(evals, checkpoint)
    keys = _avg_keys(evals)
    names = list(evals)
    fig, ax = plt.subplots(figsize=(max(6.4, 1.5 * len(names) + 1.5), 4.6), layout="constrained")
    width = 0.8 / len(keys)
    shades = ["#4c72b0", "#dd8452", "#55a868", "#c44e52"]
    for k, key in enumerate(keys):
        xs, ms, ses = [], [], []
        for i, name in enumerate(names):
            m, se, _ = _group_means(evals[name], key)
            xs.append(i + (k - (len(keys) - 1) / 2) * width)
            ms.append(m if m is not None else 0.0)
            ses.append(se or 0.0)
        ax.bar(xs, ms, width * 0.95, yerr=ses, capsize=3, color=shades[k % len(shades)], label=group_label(key),
               error_kw={"ecolor": "0.25", "elinewidth": 1})
        for x, m, se in zip(xs, ms, ses):
            ax.annotate(f"{m:.1f}", (x, m + se), textcoords="offset points", xytext=(0, 3), ha="center", fontsize=8)
        if scale == "paper":
            pts = [(x, paper_numbers("table4", n).get(key)) for x, n in zip(xs, names)]
            pts = [(x, v) for x, v in pts if v is not None]
            if pts:
                ax.scatter([x for x, _ in pts], [v for _, v in pts], marker="D", color="black", zorder=3,
                           s=18, label=f"paper ({group_label(key)})")
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels([textwrap.fill(experiment_label(n, "table4"), 16) for n in names], fontsize=8)
    ax.set_ylabel("accuracy (%)")
    seeds = {len(v) for v in evals.values()}
    ax.set_title(f"Ablations (paper Table 4)\n{what}"
                 + (" -- mean ± SE over seeds" if max(seeds) > 1 else " -- 1 seed"), fontsize=10)
    ax.set_ylim(0, max(5.0, ax.get_ylim()[1] * 1.08))
    ax.legend(loc="upper left", fontsize=8, ncols=2)
    return fig


def fig_gamma(evals: dict[str, list[Suite]], gammas: dict[str, float], scale: str,
              checkpoint: str | None = None) -> Figure:
    _require(evals, "gamma_sweep")
    what = _of_checkpoint(evals, checkpoint)
    missing = sorted(set(evals) - set(gammas))
    if missing:
        raise ReportError(f"figure gamma_sweep: no γ for {missing} (pass --run NAME=RUN_DIR for each)")
    names = sorted(evals, key=lambda n: gammas[n])
    xs = [gammas[n] for n in names]
    fig, ax = plt.subplots(figsize=(6.4, 4.8), layout="constrained")
    shades = ["#4c72b0", "#dd8452", "#55a868", "#c44e52"]
    keys = _avg_keys(evals)
    for k, key in enumerate(keys):
        stats = [_group_means(evals[n], key) for n in names]
        nudge = 1.0 + 0.03 * (k - (len(keys) - 1) / 2)  # side by side, so error bars do not overlap
        pts = [(x * nudge, m, se or 0.0) for x, (m, se, _) in zip(xs, stats) if m is not None]
        ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=[p[2] for p in pts], marker="o",
                    capsize=3, linewidth=2, color=shades[k % len(shades)], label=group_label(key))
    if scale == "paper":
        g, v = next(iter(PAPER_GAMMA_MATH_AVG.items()))
        ax.scatter([g], [v], marker="D", color="black", zorder=3, label="paper (math, γ = 0.1)")
    ax.axvline(0.1, color="0.5", linestyle=":", linewidth=1)
    ax.annotate("paper's γ = 0.1", (0.1, 0.02), xycoords=("data", "axes fraction"), xytext=(3, 0),
                textcoords="offset points", fontsize=8, color="0.35")
    ax.set_xscale("log")
    ax.set_xticks(xs)
    ax.set_xticklabels([f"{x:g}" for x in xs])
    ax.minorticks_off()
    ax.set_xlabel("γ in f(p) = p/(p+γ)  (log scale)")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, max(5.0, ax.get_ylim()[1] * 1.05))
    seeds = {len(v) for v in evals.values()}
    ax.set_title(f"LUFFY's shaping parameter γ\n{what}"
                 + (" (mean ± SE over seeds)" if max(seeds) > 1 else " (1 seed)"), fontsize=10)
    ax.legend(fontsize=8)
    return fig


# ------------------------------------------------------------------------------------ shaping (analytic)


def shaping_curves(gamma: float | None, n: int = 400) -> tuple[list[float], list[float], list[float]]:
    """p, f(p) and the logit-gradient weight f′(p)·p·(1−p) for the luffy shaping (identity if γ is None).

    f′ comes from autograd through the registered shaping, i.e. from the code the loss uses.
    """
    import torch

    from luffy.algos.shaping import SHAPINGS

    p = torch.linspace(1e-4, 1.0, n, dtype=torch.float64, requires_grad=True)
    f = SHAPINGS.get("identity")(p) if gamma is None else SHAPINGS.get("luffy")(p, gamma=gamma)
    (df,) = torch.autograd.grad(f.sum(), p)
    weight = df * p * (1 - p)
    return p.detach().tolist(), f.detach().tolist(), weight.detach().tolist()


def fig_shaping(gammas: tuple[float, ...] = (0.05, 0.1, 0.2, 0.3, 0.5), main: float = 0.1) -> Figure:
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11.5, 4.8), layout="constrained")
    cmap = plt.get_cmap("viridis")
    for i, g in enumerate(gammas):
        p, f, w = shaping_curves(g)
        emph = g == main
        style = {"color": "#d62728" if emph else cmap(i / max(1, len(gammas) - 1)),
                 "linewidth": 2.6 if emph else 1.2, "alpha": 1.0 if emph else 0.8,
                 "label": f"f(p) = p/(p+{g:g})" + ("  (LUFFY)" if emph else "")}
        a1.plot(p, f, **style)
        a2.plot(p, w, **style)
    p, f, w = shaping_curves(None)
    a1.plot(p, f, color="black", linestyle="--", linewidth=1.8, label="f(p) = p  (no shaping)")
    a2.plot(p, w, color="black", linestyle="--", linewidth=1.8, label="f(p) = p  (no shaping)")
    a1.set_title("Shaping function of the off-policy weight", fontsize=10)
    a1.set_xlabel("policy probability p of the trace token")
    a1.set_ylabel("f(p)")
    a1.legend(fontsize=8)
    a2.set_title("Gradient weight on the trace token's logit (colours as on the left)\n"
                 "|∂ loss/∂ z| / |advantage| = f′(p)·p·(1−p)", fontsize=10)
    a2.set_xlabel("policy probability p of the trace token")
    a2.set_ylabel("gradient weight")
    a2.set_ylim(0, 0.3)
    a2.annotate(f"γ = {main:g}: largest push for p ≈ {main:g}", xy=(main, 0.228), xytext=(0.14, 0.275),
                arrowprops={"arrowstyle": "->", "color": "0.3"}, fontsize=8, color="0.3")
    a2.annotate("unshaped: largest push for p = 0.5", xy=(0.5, 0.25), xytext=(0.56, 0.275),
                arrowprops={"arrowstyle": "->", "color": "0.3"}, fontsize=8, color="0.3")
    return fig


# ------------------------------------------------------------------------------------ output


def save_figure(fig: Figure, prefix: str | Path, dpi: int = 150) -> list[Path]:
    """Write ``<prefix>.png`` and ``<prefix>.pdf``; close the figure; return the paths."""
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    paths = [prefix.with_name(f"{prefix.name}.{ext}") for ext in ("png", "pdf")]
    for p in paths:
        fig.savefig(p, dpi=dpi)
    plt.close(fig)
    return paths
