"""The embedded tiny task: seeded multi-step integer arithmetic (tiny-task design; method §2, §3).

Problems look like ``Compute 3+4*2-5.`` (``+ - *``, optionally one pair of parentheses), with
every intermediate result an integer in ``0..max_value``. A programmatic teacher, standing in
for DeepSeek-R1, writes an always-correct R1-style trace, one line per step in evaluation order
(parentheses first, then ``*`` left to right, then ``+``/``-`` left to right)::

    <think>\\n4*2=8\\n3+8=11\\n11-5=6\\n</think>\\nThe answer is \\boxed{6}.

Optional fixed-offset layout (``fixed_width``, ``trace_format="restate_fixed"``, left-to-right
problems): two-digit numbers, expressions padded with ``_`` to a fixed width, and a trace whose
every copied token sits a constant distance behind where it is written (:func:`restate_fixed_trace`;
the search that motivated it is in docs/miniature.md).

Splits (disjoint by problem text): ``train`` and ``train_rl`` (the held-out RL prompts of the
SFT+RL baseline, method §2) carry one trace each; ``test_id`` is drawn from the training
distribution; ``test_ood`` needs more steps or larger numbers than training ever shows (the
config validator enforces it). ``warmup`` holds the ``train`` prompts again, for the study's
warm-up of the base model: with ``warmup_trace_every = k`` only every k-th row keeps its teacher
trace and the others answer directly (``<think>\n</think>\nThe answer is \boxed{..}.``), which
gives a base whose step-by-step mode is strong but rare (docs/miniature-step-size.md, "A base
with two modes"); ``k = 1`` makes it a copy of ``train``. ``warmup_direct: guess`` makes the
direct answers guesses (another row's answer), and ``warmup_cue`` adds every train prompt once
more, behind a cue, with its trace: the base then solves step by step when cued and only rarely
unprompted (docs/miniature-step-size.md, "A base that guesses, and a base that reasons when
cued"). Each split has its own RNG stream derived from ``seed``, so the output is identical
across runs and machines for a given Python version.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from luffy.data.loaders import write_rows
from luffy.data.schema import Trace, TrainRow

SPLITS = ("train", "train_rl", "test_id", "test_ood")
WARMUP_SPLIT = "warmup"  # derived from train (see the module docstring), written after SPLITS
TEACHER = "arith-teacher"
DIRECT_TEACHER = "direct"  # the warm-up split's direct answers
_OPS = "+-*"
FILLER = "_"  # pads fixed-width expressions and state lines (``fixed_width > 0``)
NUMBER_DIGITS = 2  # every number of a fixed-width task is written with exactly this many digits
TraceFormat = Literal["steps", "restate_fixed"]


class SplitSpec(BaseModel):
    """How the problems of one distribution are drawn."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_ops: int = Field(ge=1, description="fewest operators (= steps) per problem")
    max_ops: int = Field(ge=1, description="most operators per problem")
    min_operand: int = Field(1, ge=0, description="smallest operand")
    max_operand: int = Field(ge=1, description="largest operand")
    max_value: int = Field(ge=1, description="every intermediate result and the answer lie in 0..max_value")
    paren_prob: float = Field(0.0, ge=0.0, le=1.0, description="chance of one parenthesised sub-expression")
    left_to_right: bool = Field(
        False,
        description="only problems whose standard evaluation order is left to right "
        "(every * before the first + or -, no parentheses); needed by trace_format restate_fixed",
    )

    @model_validator(mode="after")
    def _ranges(self) -> SplitSpec:
        if self.min_ops > self.max_ops:
            raise ValueError(f"min_ops={self.min_ops} > max_ops={self.max_ops}")
        if self.min_operand > self.max_operand:
            raise ValueError(f"min_operand={self.min_operand} > max_operand={self.max_operand}")
        if self.left_to_right and self.paren_prob > 0:
            raise ValueError("left_to_right problems have no parentheses: set paren_prob to 0")
        return self

    def expr_width(self) -> int:
        """Characters of the longest expression with every number written in :data:`NUMBER_DIGITS` digits."""
        return (NUMBER_DIGITS + 1) * self.max_ops + NUMBER_DIGITS + (2 if self.paren_prob > 0 else 0)


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
    warmup_trace_every: int = Field(
        1,
        ge=1,
        description="the warmup split: row i of train keeps its teacher trace when i % k == 0 and "
        "answers directly (no steps) otherwise; 1 = a copy of train",
    )
    warmup_direct: Literal["answer", "guess"] = Field(
        "answer",
        description="the warmup split's direct answers: answer = the row's own answer; guess = the "
        "answer of another train row (a seeded shuffle), so answering directly is a guess from the "
        "answers' distribution",
    )
    warmup_cue: str = Field(
        "",
        description="non-empty: the warmup split also holds every train prompt again, its text prefixed "
        "by this cue, with its teacher trace (a base that solves step by step when cued)",
    )
    trace_format: TraceFormat = Field(
        "steps",
        description="steps: one 'a op b=r' line per step; restate_fixed: the fixed-offset layout of "
        ":func:`restate_fixed_trace` (needs fixed_width and left_to_right splits)",
    )
    fixed_width: int = Field(
        0,
        ge=0,
        description="0: plain numbers; W > 0: every number zero-padded to 2 digits and every expression "
        "right-padded with '_' to W characters, so copies sit at constant offsets",
    )

    @model_validator(mode="after")
    def _fixed_width_fits(self) -> TaskConfig:
        """Fixed-width tasks: 2-digit numbers, expressions within W (restate_fixed: W - 3, see its trace)."""
        if self.trace_format == "restate_fixed" and not self.fixed_width:
            raise ValueError("trace_format restate_fixed needs fixed_width > 0")
        if not self.fixed_width:
            return self
        slack = 3 if self.trace_format == "restate_fixed" else 0
        for name, spec in (("train", self.train), ("ood", self.ood)):
            if max(spec.max_value, spec.max_operand) >= 10**NUMBER_DIGITS:
                raise ValueError(f"fixed_width: {name} numbers must have at most {NUMBER_DIGITS} digits")
            if spec.expr_width() + slack > self.fixed_width:
                raise ValueError(
                    f"fixed_width={self.fixed_width} < {spec.expr_width() + slack} needed by {name} "
                    f"(max_ops={spec.max_ops}, trace_format={self.trace_format})"
                )
            if self.trace_format == "restate_fixed" and not spec.left_to_right:
                raise ValueError(f"trace_format restate_fixed needs {name}.left_to_right: true")
        return self

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


def number(x: int, fixed: bool = False) -> str:
    """``x`` as text: plain, or zero-padded to :data:`NUMBER_DIGITS` digits when ``fixed``."""
    return f"{x:0{NUMBER_DIGITS}d}" if fixed else str(x)


def fact_line(a: int, op: str, b: int, r: int, fixed: bool = False) -> str:
    """One step fact ``a op b=r`` and its newline (numbers as :func:`number` writes them)."""
    return f"{number(a, fixed)}{op}{number(b, fixed)}={number(r, fixed)}\n"


def answer_text(answer: int, fixed: bool = False) -> str:
    """The closing part of every response: ``</think>`` and the boxed answer."""
    return f"</think>\nThe answer is \\boxed{{{number(answer, fixed)}}}."


def teacher_trace(problem: Problem, trace_format: TraceFormat = "steps", width: int = 0) -> str:
    """The teacher's R1-style response in ``trace_format`` (``width``: the task's fixed_width).

    ``steps``: one ``a op b=r`` line per step, then the boxed answer. ``restate_fixed``: see
    :func:`restate_fixed_trace`.
    """
    if trace_format == "restate_fixed":
        return restate_fixed_trace(problem, width)
    lines = "".join(fact_line(*step, fixed=width > 0) for step in problem.steps)
    return f"<think>\n{lines}{answer_text(problem.answer, width > 0)}"


def restate_fixed_trace(problem: Problem, width: int) -> str:
    """The fixed-offset trace of a left-to-right problem: state line, fact line, state line, ...

    Every number has 2 digits and every state line (the expression still to compute) is padded
    with ``_`` to ``width`` characters; the first step always takes the first operator::

        07*03+05-02_________     state 0: the prompt's expression, copied
        07*03=21                 fact: the first 5 characters of the state above, and its result
        21+05-02____________     state 1: the result, then state 0 from its 6th character on
        21+05=26
        26-02_______________
        26-02=24
        </think>\nThe answer is \boxed{24}.

    So every token the model copies sits a constant distance behind the place it is written:
    the state line 0 copies the prompt (``width + 15`` back), a fact line the state above
    (``width + 1``), a state line its first number from the fact above (3) and the rest from the
    state two lines up, shifted by 3 (``width + 7``); its filler and newline are where the state
    two lines up has them (``width + 10``), which holds because every expression is at most
    ``width - 3`` characters long (the config validator checks it).
    """
    tail = [(op, b) for _, op, b, _ in problem.steps]
    if any(nxt[0] != prev[3] for prev, nxt in zip(problem.steps, problem.steps[1:])):
        raise ValueError(f"restate_fixed needs a left-to-right problem, got {problem.expr!r}")
    lines = []
    for k, (a, op, b, r) in enumerate(problem.steps):
        state = number(a, True) + "".join(o + number(x, True) for o, x in tail[k:])
        lines.append(state.ljust(width, FILLER) + "\n")
        lines.append(fact_line(a, op, b, r, fixed=True))
    return "<think>\n" + "".join(lines) + answer_text(problem.answer, fixed=True)


def solve(nums: list[int], ops: list[str], paren: tuple[int, int] | None = None, width: int = 0) -> Problem:
    """Evaluate ``nums[0] ops[0] nums[1] ...`` step by step, recording each step.

    ``paren = (lo, hi)`` wraps operands ``lo..hi`` (inclusive) in parentheses. ``width > 0``
    writes the expression fixed-width (2-digit numbers, ``_`` up to ``width`` characters).
    """
    if len(nums) != len(ops) + 1 or not ops:
        raise ValueError(f"need k+1 numbers for k>=1 operators, got {len(nums)} and {len(ops)}")
    expr = _format(nums, ops, paren, fixed=width > 0).ljust(width, FILLER)
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


def sample_problem(rng: random.Random, spec: SplitSpec, width: int = 0) -> Problem | None:
    """One random problem from ``spec``, or None if an intermediate value leaves 0..max_value
    (or, for ``spec.left_to_right``, if a ``*`` follows a ``+``/``-``)."""
    n = rng.randint(spec.min_ops, spec.max_ops)
    nums = [rng.randint(spec.min_operand, spec.max_operand) for _ in range(n + 1)]
    ops = [rng.choice(_OPS) for _ in range(n)]
    if spec.left_to_right and not _is_left_to_right(ops):
        return None
    paren = None
    if n >= 2 and rng.random() < spec.paren_prob:
        lo = rng.randint(0, n - 1)
        hi = rng.randint(lo + 1, n if lo > 0 else n - 1)  # never the whole expression
        paren = (lo, hi)
    p = solve(nums, ops, paren, width)
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
        problems = _draw(rng, spec, sizes[split], seen, split, cfg.fixed_width)
        out[split] = [_row(p, split, i, with_trace, cfg) for i, p in enumerate(problems)]
    return out


def write_task(out_dir: str | Path, cfg: TaskConfig) -> dict[str, Any]:
    """Write ``<split>.jsonl`` for every split and ``warmup.jsonl``, plus ``task.json`` (config,
    counts, sha256s)."""
    out_dir = Path(out_dir)
    splits = generate_task(cfg)
    splits[WARMUP_SPLIT] = warmup_split(splits["train"], cfg)
    files = {split: write_rows(rows, out_dir / f"{split}.jsonl") for split, rows in splits.items()}
    info = {
        "config": cfg.model_dump(mode="json"),
        "counts": {split: len(rows) for split, rows in splits.items()},
        "sha256": {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files.values()},
    }
    (out_dir / "task.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return info


def _draw(
    rng: random.Random, spec: SplitSpec, n: int, seen: set[str], split: str, width: int = 0
) -> list[Problem]:
    problems: list[Problem] = []
    budget = 200 * n + 10_000
    for _ in range(budget):
        if len(problems) == n:
            return problems
        p = sample_problem(rng, spec, width)
        if p is not None and p.text not in seen:
            seen.add(p.text)
            problems.append(p)
    if len(problems) == n:
        return problems
    raise ValueError(
        f"could only draw {len(problems)} of {n} distinct '{split}' problems from {spec.model_dump()}; "
        "lower the count or widen the ranges"
    )


def _row(p: Problem, split: str, i: int, with_trace: bool, cfg: TaskConfig) -> TrainRow:
    trace = teacher_trace(p, cfg.trace_format, cfg.fixed_width)
    return TrainRow(
        id=f"{split}-{i:05d}",
        prompt=[{"role": "user", "content": p.text}],
        answer=str(p.answer),
        traces=[Trace(text=trace, teacher=TEACHER)] if with_trace else [],
        split=split,
    )


def direct_response(answer: str, fixed: bool = False) -> str:
    """The warm-up split's direct answer: an empty think block, then the boxed answer."""
    return "<think>\n" + answer_text(int(answer), fixed)


def warmup_split(train: list[TrainRow], cfg: TaskConfig) -> list[TrainRow]:
    """The warmup split: row i of ``train`` keeps its trace when ``i % cfg.warmup_trace_every == 0``,
    else its trace is replaced by :func:`direct_response` of its answer (``warmup_direct: answer``)
    or of the answer of row ``donor[i]`` of a seeded shuffle (``guess``). With ``warmup_cue``, each
    row is preceded by its cued copy: id ``<id>-cued``, prompt ``cue + text``, the teacher trace."""
    fixed = cfg.fixed_width > 0
    donor = list(range(len(train)))  # whose answer row i's direct answer gives
    if cfg.warmup_direct == "guess":
        random.Random(f"luffy-tiny-task:{cfg.seed}:{WARMUP_SPLIT}-guess").shuffle(donor)
    out = []
    for i, row in enumerate(train):
        if cfg.warmup_cue:
            prompt = [{**m, "content": cfg.warmup_cue + m["content"]} if m["role"] == "user" else dict(m)
                      for m in row.prompt]
            out.append(dataclasses.replace(row, id=f"{row.id}-cued", prompt=prompt, split=WARMUP_SPLIT))
        traces = row.traces
        if i % cfg.warmup_trace_every:
            traces = [Trace(text=direct_response(train[donor[i]].answer, fixed), teacher=DIRECT_TEACHER)]
        out.append(dataclasses.replace(row, split=WARMUP_SPLIT, traces=traces))
    return out


def _is_left_to_right(ops: list[str]) -> bool:
    """True if no ``*`` follows a ``+``/``-``: then precedence order is left-to-right order."""
    first_additive = next((i for i, o in enumerate(ops) if o != "*"), len(ops))
    return "*" not in ops[first_additive:]


def _format(nums: list[int], ops: list[str], paren: tuple[int, int] | None, fixed: bool = False) -> str:
    parts = []
    for i, x in enumerate(nums):
        s = number(x, fixed)
        if paren and i == paren[0]:
            s = "(" + s
        if paren and i == paren[1]:
            s = s + ")"
        parts.append(s)
        if i < len(ops):
            parts.append(ops[i])
    return "".join(parts)
