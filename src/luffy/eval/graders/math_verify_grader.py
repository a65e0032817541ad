"""The ``"math_verify"`` grader: the training reward (method §4) as a bool, made sturdier for evaluation.

Deviations from the training reward (which stays spec-exact, :mod:`luffy.rewards`), also listed in
:mod:`luffy.eval.graders`: scientific notation (``4.5e33``) is read as ``4.5\\times10^{33}``; ``$``
around the ground truth and inside ``\\boxed{}`` is dropped; without any ``\\boxed``, the last
markdown-bold math answer is boxed; and when both sides are plain numbers, a True verdict also needs
a relative difference <= 1e-6.
"""

from __future__ import annotations

import re

from luffy.eval.graders.text import BOX_START, brace_end, sci_to_latex, skip_spaces, strip_dollars
from luffy.rewards.scoring import solution_segment


def grade_math_verify(response: str, ground_truth: str) -> bool:
    """Method §4 reward as a bool, with the module's deviations (sci notation, ``$`` in gt and boxes)."""
    from math_verify import parse, verify

    solution = solution_segment(response)
    if solution is None:
        return False
    solution = sci_to_latex(_bold_answer_to_boxed(_strip_dollars_in_boxes(solution)))
    gold_text = sci_to_latex(strip_dollars(ground_truth.strip()))
    pred = parse(solution, parsing_timeout=None)
    gold = parse("$" + gold_text + "$", parsing_timeout=None)
    if not verify(gold, pred, timeout_seconds=None):
        return False
    return not _tiny_numbers_differ(gold, pred)


def _tiny_numbers_differ(gold: list, pred: list) -> bool:
    """True if gold and prediction are constant expressions whose relative difference exceeds 1e-6.

    math-verify compares numbers after rounding to 6 decimals, so 2.88e-19 "equals" 1.325e-27; this
    re-check only matters for such small magnitudes (above ~1 the rounding is the stricter test).
    """
    import sympy

    if not gold or not pred:
        return False
    g, p = gold[0], pred[0]
    if not (isinstance(g, sympy.Expr) and isinstance(p, sympy.Expr) and g.is_number and p.is_number):
        return False
    try:
        g_val, p_val = complex(g.evalf(20)), complex(p.evalf(20))
    except (TypeError, ValueError, ArithmeticError):
        return False
    return abs(g_val - p_val) > 1e-6 * max(abs(g_val), abs(p_val))


_BOLD = re.compile(r"\*\*([^*\n]{1,60}?)\*\*")
_PLAIN_WORD = re.compile(r"(?<![\\a-zA-Z])[a-zA-Z]{3,}")


def _bold_answer_to_boxed(text: str) -> str:
    """Without any ``\\boxed``, box the last markdown-bold math answer (``**73**``), unbold the rest.

    A bold segment counts as a math answer if it contains a digit and no plain word of 3+ letters
    (``**73**``, ``**x = 5**``, ``**\\frac{1}{2}**``, not ``**Step 2**`` or ``**Answer:**``). Plain
    math-verify already reads ``The answer is **73**`` but takes a later number over ``**73** ... 5``.
    """
    if BOX_START.search(text):
        return text
    answers = [m for m in _BOLD.finditer(text) if _looks_like_math(m.group(1))]
    if answers:
        m = answers[-1]
        text = text[: m.start()] + "\\boxed{" + strip_dollars(m.group(1)).strip() + "}" + text[m.end() :]
    return text.replace("**", "")


def _looks_like_math(s: str) -> bool:
    return any(c.isdigit() for c in s) and ":" not in s and not _PLAIN_WORD.search(s)


def _strip_dollars_in_boxes(text: str) -> str:
    """Drop unescaped ``$`` inside each ``\\boxed{...}`` (a boxed OlympiadBench-style ``$...$`` answer)."""
    out, pos = [], 0
    for m in BOX_START.finditer(text):
        if m.start() < pos:
            continue
        i = skip_spaces(text, m.end())
        end = brace_end(text, i)
        if end < 0:
            continue
        out.append(text[pos : m.start()])
        out.append(strip_dollars(text[m.start() : end + 1]))
        pos = end + 1
    out.append(text[pos:])
    return "".join(out)
