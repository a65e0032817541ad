"""The embedded tiny task: seeded multi-step integer arithmetic (tiny-task design; method §2, §3).

Problems look like ``Compute 3+4*2-5.`` (``+ - *``, optionally one pair of parentheses), with
every intermediate result an integer in ``0..max_value``. A programmatic teacher, standing in
for DeepSeek-R1, writes an always-correct R1-style trace, one line per step in evaluation order
(parentheses first, then ``*`` left to right, then ``+``/``-`` left to right)::

    <think>\\n4*2=8\\n3+8=11\\n11-5=6\\n</think>\\nThe answer is \\boxed{6}.

Splits (disjoint by problem text): ``train`` and ``train_rl`` (the held-out RL prompts of the
SFT+RL baseline, method §2) carry one trace each; ``test_id`` is drawn from the training
distribution; ``test_ood`` needs more steps or larger numbers than training ever shows (the
config validator enforces it). Each split has its own RNG stream derived from ``seed``, so the
output is identical across runs and machines for a given Python version.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from luffy.data.loaders import write_rows
from luffy.data.schema import Trace, TrainRow

SPLITS = ("train", "train_rl", "test_id", "test_ood")
TEACHER = "arith-teacher"
_OPS = "+-*"


class SplitSpec(BaseModel):
    """How the problems of one distribution are drawn."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_ops: int = Field(ge=1, description="fewest operators (= steps) per problem")
    max_ops: int = Field(ge=1, description="most operators per problem")
    min_operand: int = Field(1, ge=0, description="smallest operand")
    max_operand: int = Field(ge=1, description="largest operand")
    max_value: int = Field(ge=1, description="every intermediate result and the answer lie in 0..max_value")
    paren_prob: float = Field(0.0, ge=0.0, le=1.0, description="chance of one parenthesised sub-expression")

    @model_validator(mode="after")
    def _ranges(self) -> SplitSpec:
        if self.min_ops > self.max_ops:
            raise ValueError(f"min_ops={self.min_ops} > max_ops={self.max_ops}")
        if self.min_operand > self.max_operand:
            raise ValueError(f"min_operand={self.min_operand} > max_operand={self.max_operand}")
        return self


class TaskConfig(BaseModel):
    """Knobs of the tiny task. Defaults: 2-3 ops for train/ID, 4-5 ops for OOD, operands 1..9.

    Operands are single digits (intermediate results reach 2 digits, up to 99): with operands up
    to 20 the base model's pretraining budget taught only 29% of the step facts, with 1..9 it
    taught 70% (same model and budget), and step-by-step solving needs reliable facts.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = Field(0, description="root seed; each split derives its own stream from it")
    n_train: int = Field(4000, ge=1, description="train prompts (LUFFY/SFT/RL data; base-model pretraining)")
    n_train_rl: int = Field(1000, ge=0, description="held-out prompts for the RL stage of SFT+RL")
    n_test_id: int = Field(500, ge=1, description="in-distribution test prompts")
    n_test_ood: int = Field(500, ge=1, description="out-of-distribution test prompts")
    train: SplitSpec = Field(
        default=SplitSpec(min_ops=2, max_ops=3, max_operand=9, max_value=99),
        description="distribution of train, train_rl and test_id",
    )
    ood: SplitSpec = Field(
        default=SplitSpec(min_ops=4, max_ops=5, max_operand=9, max_value=99),
        description="distribution of test_ood",
    )
    test_traces: bool = Field(False, description="also attach teacher traces to the test splits")

    @model_validator(mode="after")
    def _ood_is_harder(self) -> TaskConfig:
        if self.ood.min_ops <= self.train.max_ops and self.ood.min_operand <= self.train.max_operand:
            raise ValueError(
                "every OOD problem must need more steps or larger numbers than training shows: "
                f"need ood.min_ops > {self.train.max_ops} or ood.min_operand > {self.train.max_operand}"
            )
        return self


@dataclass(frozen=True)
class Problem:
    """One arithmetic problem: its expression, evaluation steps ``(a, op, b, result)`` and answer."""

    expr: str
    steps: tuple[tuple[int, str, int, int], ...]
    answer: int

    @property
    def text(self) -> str:
        return f"Compute {self.expr}."

    @property
    def n_ops(self) -> int:
        return len(self.steps)


def teacher_trace(problem: Problem) -> str:
    """The teacher's R1-style response: one ``a op b = r`` line per step, then the boxed answer."""
    lines = "".join(f"{a}{op}{b}={r}\n" for a, op, b, r in problem.steps)
    return f"<think>\n{lines}</think>\nThe answer is \\boxed{{{problem.answer}}}."


def solve(nums: list[int], ops: list[str], paren: tuple[int, int] | None = None) -> Problem:
    """Evaluate ``nums[0] ops[0] nums[1] ...`` step by step, recording each step.

    ``paren = (lo, hi)`` wraps operands ``lo..hi`` (inclusive) in parentheses.
    """
    if len(nums) != len(ops) + 1 or not ops:
        raise ValueError(f"need k+1 numbers for k>=1 operators, got {len(nums)} and {len(ops)}")
    expr = _format(nums, ops, paren)
    nums, ops, steps = list(nums), list(ops), []
    while ops:
        lo, hi = paren if paren else (0, len(nums) - 1)
        window = range(lo, hi)  # operator k sits between nums[k] and nums[k+1]
        k = next((i for i in window if ops[i] == "*"), lo)
        a, op, b = nums[k], ops[k], nums[k + 1]
        r = a + b if op == "+" else a - b if op == "-" else a * b
        steps.append((a, op, b, r))
        nums[k : k + 2] = [r]
        del ops[k]
        if paren:
            paren = (lo, hi - 1) if hi - 1 > lo else None
    return Problem(expr=expr, steps=tuple(steps), answer=nums[0])


def sample_problem(rng: random.Random, spec: SplitSpec) -> Problem | None:
    """One random problem from ``spec``, or None if an intermediate value leaves 0..max_value."""
    n = rng.randint(spec.min_ops, spec.max_ops)
    nums = [rng.randint(spec.min_operand, spec.max_operand) for _ in range(n + 1)]
    ops = [rng.choice(_OPS) for _ in range(n)]
    paren = None
    if n >= 2 and rng.random() < spec.paren_prob:
        lo = rng.randint(0, n - 1)
        hi = rng.randint(lo + 1, n if lo > 0 else n - 1)  # never the whole expression
        paren = (lo, hi)
    p = solve(nums, ops, paren)
    if all(0 <= r <= spec.max_value for *_, r in p.steps):
        return p
    return None


def generate_task(cfg: TaskConfig) -> dict[str, list[TrainRow]]:
    """All four splits as TrainRows, disjoint by problem text."""
    seen: set[str] = set()
    sizes = {
        "train": cfg.n_train,
        "train_rl": cfg.n_train_rl,
        "test_id": cfg.n_test_id,
        "test_ood": cfg.n_test_ood,
    }
    out = {}
    for split in SPLITS:
        spec = cfg.ood if split == "test_ood" else cfg.train
        with_trace = split.startswith("train") or cfg.test_traces
        rng = random.Random(f"luffy-tiny-task:{cfg.seed}:{split}")
        out[split] = [
            _row(p, split, i, with_trace) for i, p in enumerate(_draw(rng, spec, sizes[split], seen, split))
        ]
    return out


def write_task(out_dir: str | Path, cfg: TaskConfig) -> dict[str, Any]:
    """Write ``<split>.jsonl`` for every split plus ``task.json`` (config, counts, sha256s)."""
    out_dir = Path(out_dir)
    splits = generate_task(cfg)
    files = {split: write_rows(rows, out_dir / f"{split}.jsonl") for split, rows in splits.items()}
    info = {
        "config": cfg.model_dump(mode="json"),
        "counts": {split: len(rows) for split, rows in splits.items()},
        "sha256": {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files.values()},
    }
    (out_dir / "task.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return info


def _draw(rng: random.Random, spec: SplitSpec, n: int, seen: set[str], split: str) -> list[Problem]:
    problems: list[Problem] = []
    budget = 200 * n + 10_000
    for _ in range(budget):
        if len(problems) == n:
            return problems
        p = sample_problem(rng, spec)
        if p is not None and p.text not in seen:
            seen.add(p.text)
            problems.append(p)
    if len(problems) == n:
        return problems
    raise ValueError(
        f"could only draw {len(problems)} of {n} distinct '{split}' problems from {spec.model_dump()}; "
        "lower the count or widen the ranges"
    )


def _row(p: Problem, split: str, i: int, with_trace: bool) -> TrainRow:
    return TrainRow(
        id=f"{split}-{i:05d}",
        prompt=[{"role": "user", "content": p.text}],
        answer=str(p.answer),
        traces=[Trace(text=teacher_trace(p), teacher=TEACHER)] if with_trace else [],
        split=split,
    )


def _format(nums: list[int], ops: list[str], paren: tuple[int, int] | None) -> str:
    parts = []
    for i, x in enumerate(nums):
        s = str(x)
        if paren and i == paren[0]:
            s = "(" + s
        if paren and i == paren[1]:
            s = s + ")"
        parts.append(s)
        if i < len(ops):
            parts.append(ops[i])
    return "".join(parts)
