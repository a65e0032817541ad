"""The ``"boxed"`` grader, in the style of the OAT grader behind the paper's v2+ numbers (method §5.2).

The LAST ``\\boxed{}``/``\\fbox{}`` of the solution (brace-matched) is compared with the ground truth
by (1) equality after a Hendrycks-MATH-style string normalisation (:func:`normalize_answer`, this
project's own, not OAT's), else (2) element-wise comparison of comma-separated parts (integers must
match exactly, decimals/fractions as exact rationals, other expressions by ``sympy.simplify(a - b) == 0``
via latex2sympy2_extended), else (3) math-verify equivalence of the two boxed contents (OAT's
``fast=False`` path). All-number answers are decided by exact rational comparison alone (see
:func:`answers_match`). The deviations from OAT are listed in :mod:`luffy.eval.graders`.
"""

from __future__ import annotations

import cmath
import re
from fractions import Fraction

from luffy.eval.graders.text import WRAPPERS, last_boxed, sci_to_latex, strip_dollars
from luffy.rewards.scoring import solution_segment

# --------------------------------------------------------------------------- normalisation

_UNITS = (
    "degrees?|cm|centimeters?|meters?|km|inches|inch|feet|foot|ft|units?|dollars?|cents?|mph|"
    "hours?|minutes?|seconds?|days?|years?|miles?|pounds?"
)
_TEXT_UNIT = re.compile(
    rf"\\(?:text|mbox|mathrm)\{{\s*(?:{_UNITS})(?:\s*(?:{_UNITS}))*\s*\}}(\^\{{?\d\}}?|\^\d)?"
)


def normalize_answer(answer: str) -> str:
    """Hendrycks-MATH-style normalisation of a final answer (own implementation; method §5.2 OAT step 3).

    Drops ``$``, ``\\left``/``\\right``, LaTeX spacing, ``^\\circ``, ``\\%``, ``\\$``, unit words, a trailing
    period and a short ``x =`` prefix; maps ``\\dfrac``/``\\tfrac`` to ``\\frac``; adds braces to
    ``\\frac12``/``\\sqrt2``; turns ``a/b`` of integers into ``\\frac{a}{b}``; removes thousands separators
    and a ``.0`` tail; finally removes all whitespace.
    """
    s = sci_to_latex(strip_dollars(answer.strip()))
    inner = last_boxed(s)
    if inner is not None:
        s = inner
    s = s.replace("\n", " ")
    s = re.sub(r"\\[!,;: ]|~", " ", s)
    s = re.sub(r"\\(?:left|right)\b\.?", "", s)
    s = s.replace("\\displaystyle", "")
    s = re.sub(r"\\[dt]frac", r"\\frac", s)
    s = re.sub(r"\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|°", "", s)
    s = s.replace("\\%", "").replace("%", "").replace("\\$", "")
    s = _TEXT_UNIT.sub("", s)
    s = WRAPPERS.sub(r"\1", s)
    s = s.strip()
    s = re.sub(rf"(?<=[\d}}])\s*(?:{_UNITS})(\^\d)?$", "", s).strip()
    s = re.sub(r"(\s*[.,;])+$", "", s).strip()
    eq = re.match(r"^\s*([A-Za-z](?:_\{?\w+\}?)?|\\[a-z]+)\s*=\s*(.+)$", s)
    if eq and "=" not in eq.group(2):
        s = eq.group(2)
    s = re.sub(r"\\frac\s*(\d)\s*(\d)", r"\\frac{\1}{\2}", s)
    s = re.sub(r"\\frac\s*\{([^{}]*)\}\s*(\d)", r"\\frac{\1}{\2}", s)
    s = re.sub(r"\\frac\s*(\d)\s*\{", r"\\frac{\1}{", s)
    s = re.sub(r"\\sqrt\s*(\d+|[a-z])", r"\\sqrt{\1}", s)
    s = re.sub(r"\{,\}", ",", s)
    s = re.sub(r"\s+", "", s)
    if re.fullmatch(r"-?\d{1,3}(,\d{3})+(\.\d+)?", s):
        s = s.replace(",", "")
    s = re.sub(r"^(-?\d+)\.0*$", r"\1", s)
    s = re.sub(r"(^|[^\d])\.(\d)", r"\g<1>0.\2", s)
    m = re.fullmatch(r"(-?\d+)/(\d+)", s)
    if m:
        s = f"\\frac{{{m.group(1)}}}{{{m.group(2)}}}"
    return s


# --------------------------------------------------------------------------- equivalence

_INT = re.compile(r"-?\d+")
_DECIMAL = re.compile(r"-?(\d+\.?\d*|\.\d+)")
_FRAC = re.compile(r"(-?)\\frac\{(-?\d+)\}\{(\d+)\}")
_BRACKETS = {"(": ")", "[": "]", "\\{": "\\}", "{": "}"}


_SCI_NORM = re.compile(r"(-?\d+\.?\d*|-?\.\d+)(?:\\times|\\cdot)10\^\{?(-?\d+)\}?")


def _as_rational(s: str) -> Fraction | None:
    """Exact value of a normalised plain number: ``-3``, ``0.25``, ``\\frac{1}{4}``, ``2.5\\times10^{-3}``."""
    if _DECIMAL.fullmatch(s):
        return Fraction(s)
    m = _FRAC.fullmatch(s)
    if m and int(m.group(3)) != 0:
        value = Fraction(int(m.group(2)), int(m.group(3)))
        return -value if m.group(1) else value
    m = _SCI_NORM.fullmatch(s)
    if m and abs(int(m.group(2))) <= 400:
        return Fraction(m.group(1)) * Fraction(10) ** int(m.group(2))
    return None


def _split_top_level(s: str) -> tuple[str, list[str]]:
    """Split ``s`` on commas at bracket depth 0 after removing one outer bracket pair.

    Returns (bracket kind, parts), kind "" when unbracketed; "(1,2)" -> ("(", ["1", "2"]).
    """
    kind = ""
    for open_, close in _BRACKETS.items():
        if s.startswith(open_) and s.endswith(close) and _matching_close(s, len(open_) - 1) == len(s) - 1:
            kind, s = open_, s[len(open_) : len(s) - len(close)]
            break
    parts, depth, cur = [], 0, ""
    for ch in s:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return kind, parts


def _matching_close(s: str, open_idx: int) -> int:
    depth = 0
    for j in range(open_idx, len(s)):
        if s[j] in "([{":
            depth += 1
        elif s[j] in ")]}":
            depth -= 1
            if depth == 0:
                return j
    return -1


_PROBE_VALUES = (0.5772156649, 1.3247179572, 2.6854520010)


def _sympy_equal(pred: str, gold: str) -> bool:
    """Symbolic equality of two LaTeX expressions (latex2sympy2_extended + sympy).

    A cheap screen first: the difference is evaluated at fixed probe values of its free symbols, and a
    clearly non-zero value means "not equal" without calling ``simplify`` (which can take seconds).
    Otherwise ``simplify(pred - gold) == 0`` decides. False if either side does not parse to an expression.
    """
    import sympy
    from latex2sympy2_extended import latex2sympy

    try:
        a, b = latex2sympy(pred), latex2sympy(gold)
    except Exception:  # noqa: BLE001 - unparseable LaTeX is simply "not equal"
        return False
    if not (isinstance(a, sympy.Expr) and isinstance(b, sympy.Expr)):
        return False
    diff = a - b
    symbols = sorted(diff.free_symbols, key=str)
    for shift in range(2):
        subs = {sym: sympy.Float(_PROBE_VALUES[(i + shift) % 3] + i) for i, sym in enumerate(symbols)}
        try:
            d = complex(diff.evalf(15, subs=subs))
            scale = max(1.0, abs(complex(b.evalf(15, subs=subs))))
        except Exception:  # noqa: BLE001 - undefined functions, non-numeric objects: leave it to simplify
            break
        if not cmath.isnan(d) and abs(d) > 1e-9 * scale:
            return False
    try:
        return bool(sympy.simplify(diff) == 0)
    except Exception:  # noqa: BLE001
        return False


def _element_equal(pred: str, gold: str) -> bool:
    """Compare two normalised, comma-free answer parts (OAT-style sympy step)."""
    if pred == gold:
        return True
    if _INT.fullmatch(gold):
        return bool(_INT.fullmatch(pred)) and int(pred) == int(gold)
    gr, pr = _as_rational(gold), _as_rational(pred)
    if gr is not None and pr is not None:
        return gr == pr
    if len(pred) > 200 or len(gold) > 200:  # keep sympy away from long (often repetitive) garbage
        return False
    return _sympy_equal(pred, gold)


def _math_verify_equal(pred: str, gold: str) -> bool:
    from math_verify import parse, verify

    p = parse("$" + sci_to_latex(strip_dollars(pred)) + "$", parsing_timeout=None)
    g = parse("$" + sci_to_latex(strip_dollars(gold)) + "$", parsing_timeout=None)
    return bool(verify(g, p, timeout_seconds=None))


def answers_match(pred: str, gold: str) -> bool:
    """Whether a boxed prediction equals the gold answer (``"boxed"`` grader steps 1-3, module doc).

    When every comma-separated part of both sides is a plain number (and no ``%`` is involved, whose
    meaning the string normalisation drops), exact rational comparison decides
    (as a multiset for unbracketed lists and ``\\{...\\}`` sets, in order for tuples/intervals), without
    the math-verify step: math-verify rounds to 6 decimals, so it calls 2.88e-19 equal to 1.3e-27.
    """
    p, g = normalize_answer(pred), normalize_answer(gold)
    if not p:
        return False
    if p == g:
        return True
    p_kind, p_parts = _split_top_level(p)
    g_kind, g_parts = _split_top_level(g)
    p_nums, g_nums = [_as_rational(x) for x in p_parts], [_as_rational(x) for x in g_parts]
    if None not in p_nums and None not in g_nums and "%" not in pred + gold:
        if p_kind != g_kind or len(p_nums) != len(g_nums):
            return False
        if p_kind in ("", "\\{"):
            return sorted(p_nums) == sorted(g_nums)
        return p_nums == g_nums
    same_shape = p_kind == g_kind and len(p_parts) == len(g_parts)
    if same_shape and all(_element_equal(x, y) for x, y in zip(p_parts, g_parts)):
        return True
    return _math_verify_equal(pred, gold)


# --------------------------------------------------------------------------- grader


def grade_boxed(response: str, ground_truth: str) -> bool:
    """OAT-style grader (method §5.2): last ``\\boxed{}`` of the solution vs the ground truth."""
    solution = solution_segment(response)
    if solution is None:
        return False
    pred = last_boxed(solution)
    if pred is None:
        return False
    gold = last_boxed(ground_truth)
    return answers_match(pred, ground_truth if gold is None else gold)
