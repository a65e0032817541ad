"""Answer graders for final evaluation (spec §5.2), selected by name from :data:`GRADERS`.

Every grader takes ``response`` = the decoded text after the generation prompt (the prompt's ``<think>\\n``
is implied, as in the training reward, spec §4) and a ground-truth string, and returns a bool. A response
without ``</think>`` is wrong for every grader; otherwise only the text between the first and second
``</think>`` is graded (the reference eval's ``split("</think>")[1]``).

* ``"math_verify"``: the training reward (spec §4) as a bool, plus the robustness fixes listed below.
* ``"boxed"``: in the style of the OAT grader behind the paper's v2+ numbers (spec §5.2, commit e085e29):
  the LAST ``\\boxed{}``/``\\fbox{}`` (brace-matched) against the ground truth, by (1) equality after a
  Hendrycks-MATH-style string normalisation, else (2) element-wise comparison of comma-separated parts
  (integers must match exactly, decimals/fractions as exact rationals, other expressions by
  ``sympy.simplify(a - b) == 0`` via latex2sympy2_extended), else (3) math-verify equivalence of the two
  boxed contents (OAT's ``fast=False`` path).
* ``"multiple_choice"``: a choice label (A-J, or ARC's numeric "1"-"9") from the last ``\\boxed{}`` or an
  explicit "answer is (X)" / "ANSWER: X", compared with the ground-truth label case-insensitively.

Grader functions may raise on pathological input and have no time limit of their own: call them through
:func:`grade` (one answer, bounded) or :func:`grade_many` (a batch in the deadline-enforcing
:class:`~luffy.rewards.pool.GradingPool`), which turn timeouts and errors into ``False``.

Deliberate deviations (eval graders only; the training reward stays spec-exact):

* Scientific notation such as ``4.5e33`` (Minerva ground truths) means ``4.5 \\times 10^{33}`` here; plain
  math-verify reads it as ``4.5 * e * 33``. Applied to the ground truth and the graded text.
* ``"math_verify"``: when gold and prediction are both plain numbers, a True verdict also needs a relative
  difference <= 1e-6 (math-verify's 6-decimal rounding calls 2.88e-19 equal to 1.325e-27). The
  ``"boxed"`` grader decides all-number answers by exact rational comparison for the same reason.
* ``"math_verify"``: without any ``\\boxed``, the last markdown-bold math answer (``**73**``) is boxed
  and other ``**`` markers are dropped (see :func:`_bold_answer_to_boxed`).
* Dollar signs wrapping the ground truth (OlympiadBench writes ``$...$``) or inside a ``\\boxed{}`` are
  dropped before parsing.
* The OAT grader's repetition guard and its 1 s inner timeout are not reproduced; the per-answer deadline
  of :func:`grade`/:func:`grade_many` bounds the work instead.
* OAT's normalisation is not copied; :func:`normalize_answer` is this project's own Hendrycks-style one.
"""

from __future__ import annotations

import cmath
import re
import threading
from collections.abc import Callable, Sequence
from fractions import Fraction

from luffy.rewards.math_verify_reward import check_text_pairs, solution_segment
from luffy.rewards.pool import GradingPool, Status, call_with_deadline, shared_pool

Grader = Callable[[str, str], bool]
DEFAULT_TIMEOUT_S = 10.0  # the reference eval's SIGALRM limit (spec §5.2 step 2)

# --------------------------------------------------------------------------- text helpers

_SCI = re.compile(r"(?<![\w.\\])(\d+(?:\.\d*)?|\.\d+)[eE]([+-]?\d+)(?![\w.])")
_BOX_START = re.compile(r"\\(?:boxed|fbox)\b")


def sci_to_latex(text: str) -> str:
    """Rewrite ``4.5e33`` / ``1e-5`` as ``4.5\\times10^{33}`` / ``1\\times10^{-5}`` (deviation, see module doc)."""
    return _SCI.sub(lambda m: f"{m.group(1)}\\times10^{{{m.group(2)}}}", text)


def strip_dollars(text: str) -> str:
    """Remove every ``$`` that is not an escaped ``\\$`` (dollar amounts keep their ``\\$``)."""
    return re.sub(r"(?<!\\)\$", "", text)


def _skip_spaces(text: str, i: int) -> int:
    while i < len(text) and text[i] == " ":
        i += 1
    return i


def _brace_end(text: str, i: int) -> int:
    """Index of the ``}`` matching the ``{`` at ``text[i]`` (escaped braces ignored); -1 if none."""
    if i >= len(text) or text[i] != "{":
        return -1
    depth = 0
    for j in range(i, len(text)):
        if text[j] in "{}" and text[j - 1] != "\\":
            depth += 1 if text[j] == "{" else -1
            if depth == 0:
                return j
    return -1


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` or ``\\fbox{...}`` (brace-matched), also ``\\boxed 5``.

    Returns None if there is none or the last one is unbalanced (e.g. a truncated response).
    """
    starts = list(_BOX_START.finditer(text))
    if not starts:
        return None
    i = _skip_spaces(text, starts[-1].end())
    if i < len(text) and text[i] == "{":
        end = _brace_end(text, i)
        return text[i + 1 : end] if end >= 0 else None
    if i == starts[-1].end():  # "\\boxedX" is not a box
        return None
    m = re.match(r"[^\s$]+", text[i:])  # "\\boxed 5" form
    return m.group(0) if m else None


# --------------------------------------------------------------------------- normalisation

_UNITS = (
    "degrees?|cm|centimeters?|meters?|km|inches|inch|feet|foot|ft|units?|dollars?|cents?|mph|"
    "hours?|minutes?|seconds?|days?|years?|miles?|pounds?"
)
_TEXT_UNIT = re.compile(
    rf"\\(?:text|mbox|mathrm)\{{\s*(?:{_UNITS})(?:\s*(?:{_UNITS}))*\s*\}}(\^\{{?\d\}}?|\^\d)?"
)
_WRAPPERS = re.compile(r"\\(?:text|textbf|textit|mathrm|mathbf|mbox|operatorname)\{([^{}]*)\}")


def normalize_answer(answer: str) -> str:
    """Hendrycks-MATH-style normalisation of a final answer (own implementation; spec §5.2 OAT step 3).

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
    s = _WRAPPERS.sub(r"\1", s)
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


# --------------------------------------------------------------------------- graders


def grade_math_verify(response: str, ground_truth: str) -> bool:
    """Spec §4 reward as a bool, with the module's deviations (sci notation, ``$`` in gt and boxes)."""
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
    if _BOX_START.search(text):
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
    for m in _BOX_START.finditer(text):
        if m.start() < pos:
            continue
        i = _skip_spaces(text, m.end())
        end = _brace_end(text, i)
        if end < 0:
            continue
        out.append(text[pos : m.start()])
        out.append(strip_dollars(text[m.start() : end + 1]))
        pos = end + 1
    out.append(text[pos:])
    return "".join(out)


def grade_boxed(response: str, ground_truth: str) -> bool:
    """OAT-style grader (spec §5.2): last ``\\boxed{}`` of the solution vs the ground truth."""
    solution = solution_segment(response)
    if solution is None:
        return False
    pred = last_boxed(solution)
    if pred is None:
        return False
    gold = last_boxed(ground_truth)
    return answers_match(pred, ground_truth if gold is None else gold)


_CHOICE = re.compile(r"^\(?([A-Ja-j]|[1-9])\)?(?:[.:)\s]|$)")
_CHOICE_FALLBACK = re.compile(
    r"(?i:answer)\s*(?:(?i:is)\s*:?|:)\s*(?:\$|\*\*|\\text\{|\\textbf\{)*\s*\(?([A-J]|[1-9])\b\)?"
)


def choice_label(text: str) -> str | None:
    """Bare label from an answer like ``(B)``, ``B.``, ``\\text{B}``, ``**B**``, ``$B$``, ``B) 42``; else None."""
    s = strip_dollars(text).replace("**", "").strip()
    for _ in range(3):
        s = _WRAPPERS.sub(r"\1", s).strip()
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


GRADERS: dict[str, Grader] = {
    "math_verify": grade_math_verify,
    "boxed": grade_boxed,
    "multiple_choice": grade_multiple_choice,
}


def _check_grader_args(ground_truths: Sequence[str], grader: str) -> None:
    """Unknown grader name, or a multiple-choice ground truth that is not a label -> ValueError."""
    if grader not in GRADERS:
        raise ValueError(f"unknown grader {grader!r}; valid graders: {', '.join(sorted(GRADERS))}")
    if grader == "multiple_choice":
        for i, gt in enumerate(ground_truths):
            if choice_label(gt) is None:
                raise ValueError(
                    f"multiple_choice grader: ground_truths[{i}] = {gt!r} is not a choice label (A-J or 1-9)"
                )


def _run_grader(response: str, ground_truth: str, grader: str) -> bool:
    """Pool task: look the grader up by name inside the worker (functions are not shipped)."""
    return bool(GRADERS[grader](response, ground_truth))


def grade(response: str, ground_truth: str, grader: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> bool:
    """Grade one response with the named grader; a timeout or error counts as wrong.

    Raises ValueError for an unknown grader name or (``multiple_choice``) a ground truth that is no label.

    Main thread: inline under a SIGALRM deadline. Other threads: through the shared grading pool.
    """
    for name, value in (("response", response), ("ground_truth", ground_truth)):
        if not isinstance(value, str):
            raise ValueError(f"grade: {name} must be a str, got {type(value).__name__}")
    _check_grader_args([ground_truth], grader)
    if threading.current_thread() is threading.main_thread():
        out = call_with_deadline(_run_grader, (response, ground_truth, grader), timeout_s)
    else:
        out = shared_pool().map(_run_grader, [(response, ground_truth, grader)], timeout_s=timeout_s)[0]
    return out.status == "ok" and bool(out.value)


def grade_many(
    responses: Sequence[str],
    ground_truths: Sequence[str],
    grader: str,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    pool: GradingPool | None = None,
    num_workers: int | None = None,
) -> list[tuple[bool, Status]]:
    """Grade a batch in a :class:`GradingPool` (``pool``, else the shared one with ``num_workers``).

    Returns ``(correct, status)`` per response, status ``"ok"``, ``"timeout"`` or ``"error"``; only
    ``"ok"`` items can be correct. Argument errors (see :func:`grade`) raise ValueError before any work.
    """
    check_text_pairs(responses, ground_truths)
    _check_grader_args(ground_truths, grader)
    if pool is not None and num_workers is not None:
        raise ValueError("grade_many: pass either pool or num_workers, not both")
    if not responses:
        return []
    tasks = [(r, g, grader) for r, g in zip(responses, ground_truths)]
    outcomes = (pool or shared_pool(num_workers)).map(_run_grader, tasks, timeout_s=timeout_s)
    return [(o.status == "ok" and bool(o.value), o.status) for o in outcomes]
