"""Tables in the paper's layout, as Markdown, CSV and LaTeX (paper Table 1 and Table 4; method §6).

Layout: one row per model, columns grouped as the evaluation suite groups its benchmarks -- at
paper scale the six math benchmarks, their "Avg.", the three OOD benchmarks and their "Avg."
(Table 1); at tiny scale the in-distribution and out-of-distribution test splits. An "Avg."
column is left out when its group has a single benchmark (it would repeat that column).

Cells are accuracies in percent: the mean over seeds, "± h" when there are two or more seeds, h
being the half-width of the 95% confidence interval of the mean (Student t over seeds,
:func:`luffy.utils.stats.estimate`; the CSV gives both ends), and at paper scale the paper's
published number in parentheses. A row with one seed has no ± (and the notes say so). The best
mean of each column is bold. Averages are the suite's own per-seed averages (unweighted means over
the group's benchmarks that have a result), then averaged over seeds.

Checkpoint: the runs' rows are evaluations of one checkpoint of each run (``final`` or
``best_val``, recorded in every ``suite.json``); the title and notes say which, and
``build_table(checkpoint=...)`` refuses an evaluation of another one. The base model has one.

Kinds: ``table1`` (methods, base model first), ``table4`` (ablations) and ``gamma`` (one row per
γ, read from each run's ``resolved_config.yaml`` at ``loss.shaping.gamma``, sorted by γ).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

from luffy.utils.stats import estimate

from .labels import (
    CHECKPOINT_NOTES,
    PAPER_GAMMA_MATH_AVG,
    average_label,
    benchmark_label,
    checkpoint_label,
    experiment_label,
    group_label,
    paper_numbers,
)
from .labels import TABLE_KINDS as KINDS
from .results import BASE, ReportError, Suite, report_checkpoint

TITLES = {
    "table1": "Table 1 -- accuracy (%) of the base model and each method",
    "table4": "Table 4 -- ablations of mixed-policy and on-policy RL: accuracy (%)",
    "gamma": "Shaping parameter γ of f(p) = p/(p+γ): accuracy (%) of LUFFY",
}


@dataclass(frozen=True)
class Column:
    key: str  # benchmark name or average key
    label: str
    is_average: bool
    group: str  # the average key of the column's group


@dataclass(frozen=True)
class Cell:
    mean: float | None  # percent
    se: float | None  # percent
    n: int  # seeds with a value
    paper: float | None = None
    ci_low: float | None = None  # percent; the 95% t interval of the mean (None with one seed)
    ci_high: float | None = None

    @property
    def half_width(self) -> float | None:
        return None if self.ci_low is None or self.ci_high is None else (self.ci_high - self.ci_low) / 2


@dataclass
class Row:
    name: str
    label: str
    cells: list[Cell]


@dataclass
class Table:
    kind: str
    title: str
    columns: list[Column]
    rows: list[Row]
    show_paper: bool
    notes: list[str] = field(default_factory=list)
    checkpoint: str | None = None


# ------------------------------------------------------------------------------------ building


def columns_of(suites: list[Suite]) -> list[Column]:
    """The column layout of the first suite; every other suite must have the same groups."""
    first = suites[0]
    for s in suites[1:]:
        if s.groups != first.groups:
            raise ReportError(f"{s.path}: benchmark groups {s.groups} differ from {first.path} ({first.groups})")
    cols = []
    for key, members in first.groups.items():
        cols += [Column(b, benchmark_label(b), False, key) for b in members]
        if len(members) > 1:
            cols.append(Column(key, average_label(key), True, key))
    return cols


def _cell(suites: list[Suite], col: Column, paper: dict[str, float]) -> Cell:
    values = [(s.averages if col.is_average else s.benchmarks).get(col.key) for s in suites]
    e = estimate(100.0 * v for v in values if v is not None)
    return Cell(e.mean, e.se, e.n, paper.get(col.key), e.ci_low, e.ci_high)


def build_table(kind: str, evals: dict[str, list[Suite]], *, scale: str,
                gammas: dict[str, float] | None = None, checkpoint: str | None = None) -> Table:
    """The table of ``kind`` from ``evals`` (experiment -> one Suite per seed, in row order).

    ``gammas`` (kind ``gamma`` only) maps each experiment to its γ. Paper numbers are shown at
    ``scale == "paper"``. ``checkpoint`` (``final``/``best_val``): the runs' evaluations must be of
    it; None takes the one they record (:func:`luffy.report.results.report_checkpoint`).
    """
    if kind not in KINDS:
        raise ReportError(f"--kind {kind!r}: expected one of {list(KINDS)}")
    if not evals:
        raise ReportError(f"table {kind}: no evaluations given (--eval NAME=suite.json)")
    all_suites = [s for suites in evals.values() for s in suites]
    columns = columns_of(all_suites)
    ckpt = report_checkpoint(evals, checkpoint)
    show_paper = scale == "paper"
    names = list(evals)
    if kind == "gamma":
        if gammas is None or set(gammas) != set(names):
            missing = sorted(set(names) - set(gammas or {}))
            raise ReportError(f"table gamma: no γ for {missing} (pass --run NAME=RUN_DIR for each)")
        names.sort(key=lambda n: gammas[n])
    rows = []
    for name in names:
        if kind == "gamma":
            g = gammas[name]
            paper = {"math_avg": PAPER_GAMMA_MATH_AVG[g]} if g in PAPER_GAMMA_MATH_AVG else {}
            label = f"γ = {g:g}" + (" (LUFFY)" if name == "luffy" else "")
        else:
            paper = paper_numbers(kind, name)
            label = experiment_label(name, kind)
        rows.append(Row(name, label, [_cell(evals[name], c, paper if show_paper else {}) for c in columns]))
    title = TITLES[kind] + (f", {checkpoint_label(ckpt)}" if ckpt else "")
    notes = _notes(columns, evals, show_paper, kind, ckpt)
    return Table(kind, title, columns, rows, show_paper, notes, ckpt)


def _notes(columns: list[Column], evals: dict[str, list[Suite]], show_paper: bool, kind: str,
           checkpoint: str | None) -> list[str]:
    seeds = sorted({len(v) for v in evals.values()})
    seed_text = f"{seeds[0]}" if len(seeds) == 1 else f"{seeds[0]}–{seeds[-1]}"
    if seeds[-1] == 1:
        spread = "one seed, so no confidence interval (it needs two or more seeds)"
    else:
        spread = (f"mean over {seed_text} seeds ± the half-width of the 95% confidence interval of the mean "
                  "(Student t over seeds)")
        if seeds[0] == 1:
            spread += "; a row with one seed has none"
    notes = [f"Accuracy in percent; {spread}; the best mean of each column in bold."]
    if checkpoint:
        base = " The base model has one." if BASE in evals else ""
        notes.append(CHECKPOINT_NOTES.get(checkpoint, f"Checkpoint: {checkpoint_label(checkpoint)}.") + base)
    missing = sorted({b for suites in evals.values() for s in suites for bs in s.missing.values() for b in bs})
    if missing:
        notes.append("No result for " + ", ".join(benchmark_label(b) for b in missing)
                     + " (missing data); each average is over the benchmarks that have a result.")
    if show_paper:
        src = {"table1": "paper Table 1", "table4": "paper Table 4 (math only)",
               "gamma": "paper Fig. 9 (only γ = 0.1 is given as a number)"}[kind]
        notes.append(f"In parentheses: the published number ({src}, Qwen2.5-Math-7B).")
    groups = list(dict.fromkeys(c.group for c in columns))
    notes.append("Column groups: " + "; ".join(
        f"{group_label(g)} = " + ", ".join(c.label for c in columns if c.group == g and not c.is_average)
        for g in groups) + ".")
    return notes


# ------------------------------------------------------------------------------------ rendering


def _best(table: Table) -> list[float | None]:
    best = []
    for j in range(len(table.columns)):
        vals = [r.cells[j].mean for r in table.rows if r.cells[j].mean is not None]
        best.append(max(vals) if len(vals) > 1 and max(vals) > min(vals) else None)  # no bold for a tie of all
    return best


def _fmt(cell: Cell, show_paper: bool, bold: bool) -> str:
    text = "–" if cell.mean is None else f"{cell.mean:.1f}"
    if cell.half_width is not None:
        text += f" ± {cell.half_width:.1f}"
    if bold:
        text = f"**{text}**"
    if show_paper and cell.paper is not None:
        text += f" ({cell.paper:.1f})"
    return text


def to_markdown(table: Table) -> str:
    best = _best(table)
    head = ["Model"] + [c.label for c in table.columns]
    lines = [f"**{table.title}**", "", "| " + " | ".join(head) + " |",
             "|" + "---|" + "---:|" * len(table.columns)]
    for r in table.rows:
        cells = [_fmt(c, table.show_paper, best[j] is not None and c.mean == best[j]) for j, c in enumerate(r.cells)]
        lines.append("| " + " | ".join([r.label] + cells) + " |")
    lines.append("")
    lines += [f"{n}" for n in table.notes]
    return "\n".join(lines) + "\n"


def to_csv(table: Table) -> str:
    """Wide CSV: per column ``<key>`` (mean, percent), ``<key>_ci_low`` / ``<key>_ci_high`` (the 95% t interval
    over seeds; empty with one seed) and, at paper scale, ``<key>_paper``; ``checkpoint`` on every row."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    head = ["name", "label", "checkpoint", "n_seeds"]
    for c in table.columns:
        head += [c.key, f"{c.key}_ci_low", f"{c.key}_ci_high"] + ([f"{c.key}_paper"] if table.show_paper else [])
    w.writerow(head)
    for r in table.rows:
        ckpt = BASE if r.name == BASE else (table.checkpoint or "")
        row: list[object] = [r.name, r.label, ckpt, max((c.n for c in r.cells), default=0)]
        for c in r.cells:
            row += [_num(c.mean), _num(c.ci_low), _num(c.ci_high)] + ([_num(c.paper)] if table.show_paper else [])
        w.writerow(row)
    return buf.getvalue()


def _num(v: float | None) -> str:
    return "" if v is None else f"{v:.4f}"


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
        "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
        "→": r"$\rightarrow$", "γ": r"$\gamma$", "±": r"$\pm$", "–": "--"}


def tex_escape(text: str) -> str:
    return "".join(_TEX.get(ch, ch) for ch in text)


def to_latex(table: Table) -> str:
    """A booktabs ``table`` with a group header row over the benchmark groups."""
    best = _best(table)
    groups = list(dict.fromkeys(c.group for c in table.columns))
    spans = [(g, sum(1 for c in table.columns if c.group == g)) for g in groups]
    spec = "l" + "".join("r" * n for _, n in spans)
    out = [r"\begin{table}[t]", r"\centering", r"\small",
           rf"\caption{{{tex_escape(table.title)}. {tex_escape(' '.join(table.notes))}}}",
           rf"\begin{{tabular}}{{{spec}}}", r"\toprule"]
    out.append(" & ".join([""] + [rf"\multicolumn{{{n}}}{{c}}{{{tex_escape(group_label(g))}}}" for g, n in spans])
               + r" \\")
    start, rules = 2, []
    for _, n in spans:
        rules.append(rf"\cmidrule(lr){{{start}-{start + n - 1}}}")
        start += n
    out.append(" ".join(rules))
    out.append(" & ".join(["Model"] + [tex_escape(c.label) for c in table.columns]) + r" \\")
    out.append(r"\midrule")
    for r in table.rows:
        cells = []
        for j, c in enumerate(r.cells):
            text = "--" if c.mean is None else f"{c.mean:.1f}"
            if best[j] is not None and c.mean == best[j]:
                text = rf"\textbf{{{text}}}"
            if c.half_width is not None:
                text += rf"{{\scriptsize$\pm${c.half_width:.1f}}}"
            if table.show_paper and c.paper is not None:
                text += rf" {{\scriptsize({c.paper:.1f})}}"
            cells.append(text)
        out.append(" & ".join([tex_escape(r.label)] + cells) + r" \\")
    out += [r"\bottomrule", r"\end{tabular}", rf"\label{{tab:{table.kind}}}", r"\end{table}"]
    return "\n".join(out) + "\n"


def write_table(table: Table, prefix: str | Path) -> list[Path]:
    """Write ``<prefix>.md``, ``<prefix>.csv`` and ``<prefix>.tex``; return the paths."""
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext, render in (("md", to_markdown), ("csv", to_csv), ("tex", to_latex)):
        p = prefix.with_name(f"{prefix.name}.{ext}")
        p.write_text(render(table), encoding="utf-8")
        paths.append(p)
    return paths
