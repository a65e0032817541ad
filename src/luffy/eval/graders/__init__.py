"""Answer graders for final evaluation (method §5.2), selected by name from :data:`GRADERS`.

Every grader takes ``response`` = the decoded text after the generation prompt (the prompt's ``<think>\\n``
is implied, as in the training reward, method §4) and a ground-truth string, and returns a bool. A response
without ``</think>`` is wrong for every grader; otherwise only the text between the first and second
``</think>`` is graded (the reference eval's ``split("</think>")[1]``).

* ``"math_verify"``: the training reward (method §4) as a bool, plus the robustness fixes listed below.
* ``"boxed"``: in the style of the OAT grader behind the paper's v2+ numbers (method §5.2, commit e085e29):
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
  and other ``**`` markers are dropped (see :mod:`~luffy.eval.graders.math_verify_grader`).
* Dollar signs wrapping the ground truth (OlympiadBench writes ``$...$``) or inside a ``\\boxed{}`` are
  dropped before parsing.
* The OAT grader's repetition guard and its 1 s inner timeout are not reproduced; the per-answer deadline
  of :func:`grade`/:func:`grade_many` bounds the work instead.
* OAT's normalisation is not copied; :func:`normalize_answer` is this project's own Hendrycks-style one.

Layout: one module per grader family -- :mod:`~luffy.eval.graders.math_verify_grader`,
:mod:`~luffy.eval.graders.boxed` (with the answer normalisation and equivalence steps),
:mod:`~luffy.eval.graders.choice` -- over the shared text helpers of :mod:`~luffy.eval.graders.text`;
this package holds the registry and the bounded entry points :func:`grade` / :func:`grade_many`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from luffy.eval.graders.boxed import answers_match, grade_boxed, normalize_answer
from luffy.eval.graders.choice import choice_label, grade_multiple_choice
from luffy.eval.graders.math_verify_grader import grade_math_verify
from luffy.eval.graders.text import last_boxed, sci_to_latex, strip_dollars
from luffy.rewards.pool import GradingPool, Status, call_with_deadline, shared_pool
from luffy.rewards.scoring import check_text_pairs

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "GRADERS",
    "Grader",
    "answers_match",
    "choice_label",
    "grade",
    "grade_boxed",
    "grade_many",
    "grade_math_verify",
    "grade_multiple_choice",
    "last_boxed",
    "normalize_answer",
    "sci_to_latex",
    "strip_dollars",
]

Grader = Callable[[str, str], bool]
DEFAULT_TIMEOUT_S = 10.0  # the reference eval's SIGALRM limit (method §5.2 step 2)


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
