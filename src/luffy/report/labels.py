"""Display names, colours and the paper's published numbers (method §6.1 Table 1, §6.4 Table 4).

Experiment names are the workflow's (``config/experiments/<scale>/<name>.yaml``); benchmark and
average keys are the evaluation suite's (``luffy.eval.benchmarks``). The published numbers are
paper v5 (= README), in percent; the paper's averages are its own published "Avg." columns.
Unknown names fall back to the name itself, so a new experiment still gets a readable report.
"""

from __future__ import annotations

TABLE_KINDS = ("table1", "table4", "gamma")
FIGURE_KINDS = ("entropy", "training", "off_policy_prob", "validation", "ablations", "gamma_sweep", "shaping")

# Experiment -> label, in the paper's vocabulary.
EXPERIMENT_LABELS: dict[str, str] = {
    "base": "Base model",
    "on_policy": "On-Policy RL",
    "sft": "SFT",
    "rl_sft_loss": "RL w/ SFT Loss",
    "sft_rl": "SFT→RL",
    "luffy": "LUFFY",
    "mixed_clip": "Mixed-Policy RL",
    "mixed_shaping_clip": "Mixed-Policy + Shaping",
    "on_policy_shaping": "On-Policy + Shaping",
    "on_policy_noclip": "On-Policy + No Clip",
}

# Table 4 spells the ablations out (its rows are only readable with the parts named).
ABLATION_LABELS: dict[str, str] = {
    "mixed_clip": "Mixed-Policy RL (f(p)=p, clip)",
    "mixed_shaping_clip": "Mixed-Policy + Shaping (clip)",
    "luffy": "Mixed-Policy + Shaping + No Clip (LUFFY)",
    "on_policy": "On-Policy RL (clip)",
    "on_policy_shaping": "On-Policy + Shaping (clip)",
    "on_policy_noclip": "On-Policy + No Clip",
}

BENCHMARK_LABELS: dict[str, str] = {
    "aime24": "AIME24",
    "aime25": "AIME25",
    "amc23": "AMC",
    "math500": "MATH-500",
    "minerva": "Minerva",
    "olympiadbench": "Olympiad",
    "arc_c": "ARC-c",
    "gpqa_diamond": "GPQA*",
    "mmlu_pro": "MMLU-Pro",
    "tiny_id": "ID test",
    "tiny_ood": "OOD test",
}

# Checkpoint label (luffy evaluate --checkpoint-label) -> what the rows of a report are.
CHECKPOINT_LABELS: dict[str, str] = {
    "final": "final model of each run",
    "best_val": "best-validation checkpoint of each run",
    "released": "the released checkpoints (evaluated here, not trained)",
}

# Checkpoint label -> the sentence of a table's notes that defines it.
CHECKPOINT_NOTES: dict[str, str] = {
    "final": "Checkpoint: each run's final model (model/, after the last training step).",
    "best_val": ("Checkpoint: each run's best-validation model (best_val/: the validation with the highest "
                 "accuracy after step 0, the earlier step on a tie; the checkpoint the paper reports)."),
    "released": ("Checkpoint: the models the paper's authors released (config key `released`), evaluated "
                 "with this suite; nothing was trained for this table."),
}

# Average key -> column label (the paper's "Avg." after the math and after the OOD columns).
AVERAGE_LABELS: dict[str, str] = {
    "math_avg": "Avg.",
    "ood_avg": "OOD Avg.",
    "id": "ID Avg.",
    "ood": "OOD Avg.",
}

# Average key -> what the group is, for axis labels and legends.
GROUP_LABELS: dict[str, str] = {
    "math_avg": "math (6 benchmarks)",
    "ood_avg": "out-of-distribution",
    "id": "in-distribution test",
    "ood": "out-of-distribution test",
}

_COLUMNS = ("aime24", "aime25", "amc23", "math500", "minerva", "olympiadbench", "math_avg",
            "arc_c", "gpqa_diamond", "mmlu_pro", "ood_avg")


def _row(*values: float | None) -> dict[str, float]:
    return {k: v for k, v in zip(_COLUMNS, values) if v is not None}


# Paper Table 1 (Qwen2.5-Math-7B), percent; keys are this project's experiment names.
PAPER_TABLE1: dict[str, dict[str, float]] = {
    "base": _row(11.5, 4.9, 31.3, 43.6, 7.4, 15.6, 19.0, 18.2, 11.1, 16.9, 15.4),
    "on_policy": _row(25.1, 15.3, 62.0, 84.4, 39.3, 46.8, 45.5, 82.3, 40.4, 49.3, 57.3),
    "sft": _row(22.2, 22.3, 52.8, 82.6, 40.8, 43.7, 44.1, 75.2, 24.7, 42.7, 47.5),
    "rl_sft_loss": _row(19.5, 16.4, 49.7, 80.4, 34.9, 39.4, 40.1, 71.2, 23.7, 43.2, 46.0),
    "sft_rl": _row(25.8, 23.1, 62.7, 87.2, 39.7, 50.4, 48.2, 72.4, 24.2, 37.7, 44.8),
    "luffy": _row(29.4, 23.1, 65.6, 87.6, 37.5, 57.2, 50.1, 80.5, 39.9, 53.0, 57.8),
}

# Paper Table 4 (math benchmarks only), percent.
PAPER_TABLE4: dict[str, dict[str, float]] = {
    "mixed_clip": _row(19.4, 17.7, 58.9, 84.6, 35.7, 49.9, 44.4),
    "mixed_shaping_clip": _row(27.4, 21.7, 61.2, 86.6, 37.1, 53.0, 47.8),
    "luffy": _row(29.4, 23.1, 65.6, 87.6, 37.5, 57.2, 50.1),
    "on_policy": _row(25.1, 15.3, 62.0, 84.4, 39.3, 46.8, 45.5),
    "on_policy_shaping": _row(21.3, 13.6, 58.0, 80.6, 36.8, 41.8, 42.0),
    "on_policy_noclip": _row(21.5, 17.4, 61.1, 83.4, 36.8, 49.0, 44.9),
}

# Fig. 9 gives only γ = 0.1 (= LUFFY, 50.1 math avg) as a number; the other γ are plotted only.
PAPER_GAMMA_MATH_AVG: dict[float, float] = {0.1: 50.1}

# Fixed colours per experiment so a method looks the same in every figure.
_PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
            "#7f7f7f", "#bcbd22", "#17becf")
_COLOR_ORDER = ("luffy", "on_policy", "mixed_clip", "sft_rl", "sft", "rl_sft_loss",
                "mixed_shaping_clip", "on_policy_shaping", "on_policy_noclip", "base")


def experiment_label(name: str, table: str | None = None) -> str:
    if table == "table4" and name in ABLATION_LABELS:
        return ABLATION_LABELS[name]
    return EXPERIMENT_LABELS.get(name, name)


def checkpoint_label(name: str) -> str:
    return CHECKPOINT_LABELS.get(name, f"checkpoint '{name}' of each run")


def benchmark_label(name: str) -> str:
    return BENCHMARK_LABELS.get(name, name)


def average_label(key: str) -> str:
    return AVERAGE_LABELS.get(key, f"{key} avg.")


def group_label(key: str) -> str:
    return GROUP_LABELS.get(key, key)


def color(name: str, fallback_index: int = 0) -> str:
    """A stable colour for ``name`` (known experiments), else one from the palette by index."""
    if name in _COLOR_ORDER:
        return _PALETTE[_COLOR_ORDER.index(name)]
    return _PALETTE[fallback_index % len(_PALETTE)]


def paper_numbers(table: str, name: str) -> dict[str, float]:
    """The paper's published row for experiment ``name`` in ``table`` (empty if it has none)."""
    source = {"table1": PAPER_TABLE1, "table4": PAPER_TABLE4}.get(table, {})
    if table == "gamma" and name == "luffy":
        source = PAPER_TABLE1
    return dict(source.get(name, {}))
