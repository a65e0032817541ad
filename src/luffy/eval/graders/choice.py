"""The ``"multiple_choice"`` grader (ARC-c, GPQA, MMLU-Pro; method §5.2).

A choice label (A-J, or ARC's numeric "1"-"9") is read from the last ``\\boxed{}`` of the solution, else
from an explicit "answer is (X)" / "ANSWER: X", and compared with the ground-truth label
case-insensitively.
"""

from __future__ import annotations

import re

from luffy.eval.graders.text import WRAPPERS, last_boxed, strip_dollars
from luffy.rewards.scoring import solution_segment

_CHOICE = re.compile(r"^\(?([A-Ja-j]|[1-9])\)?(?:[.:)\s]|$)")
_CHOICE_FALLBACK = re.compile(
    r"(?i:answer)\s*(?:(?i:is)\s*:?|:)\s*(?:\$|\*\*|\\text\{|\\textbf\{)*\s*\(?([A-J]|[1-9])\b\)?"
)


def choice_label(text: str) -> str | None:
    """Bare label from an answer like ``(B)``, ``B.``, ``\\text{B}``, ``**B**``, ``$B$``, ``B) 42``; else None."""
    s = strip_dollars(text).replace("**", "").strip()
    for _ in range(3):
        s = WRAPPERS.sub(r"\1", s).strip()
    m = _CHOICE.match(s)
    return m.group(1).upper() if m else None


def grade_multiple_choice(response: str, ground_truth: str) -> bool:
    """Letter/number choice grader (ARC-c, GPQA): the last boxed label, else "answer is (X)"/"ANSWER: X"."""
    gold = choice_label(ground_truth)
    if gold is None:
        raise ValueError(
            f"multiple_choice grader: ground truth {ground_truth!r} is not a choice label (A-J or 1-9)"
        )
    solution = solution_segment(response)
    if solution is None:
        return False
    boxed = last_boxed(solution)
    if boxed is not None:
        label = choice_label(boxed)
    else:
        hits = _CHOICE_FALLBACK.findall(solution)
        label = hits[-1].upper() if hits else None
    return label == gold
