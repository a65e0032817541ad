"""Evaluation graders (method §5.2): registry, extraction, normalisation and the known math-verify pitfalls."""

from __future__ import annotations

import threading
import time

import pytest
from math_verify import parse, verify

from luffy.eval import GRADERS, choice_label, grade, grade_many, last_boxed, normalize_answer
from luffy.rewards import GradingPool, math_verify_reward

MATH_GRADERS = ("math_verify", "boxed")


@pytest.fixture(scope="module")
def pool() -> GradingPool:
    with GradingPool(2) as p:
        yield p


def test_registry_names_and_unknown_grader_error() -> None:
    assert set(GRADERS) == {"math_verify", "boxed", "multiple_choice"}
    with pytest.raises(
        ValueError, match="unknown grader 'oat'; valid graders: boxed, math_verify, multiple_choice"
    ):
        grade("</think>\\boxed{1}", "1", "oat")
    with pytest.raises(ValueError, match="unknown grader"):
        grade_many(["</think>\\boxed{1}"], ["1"], "oat")


@pytest.mark.parametrize("grader", sorted(GRADERS))
def test_no_close_think_tag_is_wrong_for_every_grader(grader: str) -> None:
    assert grade("</think>\\boxed{B}", "B", grader)
    assert not grade("I think \\boxed{B}", "B", grader)


@pytest.mark.parametrize("grader", MATH_GRADERS)
def test_only_the_first_think_segment_is_graded(grader: str) -> None:
    assert not grade("a</think> wrong \\boxed{1} </think> right \\boxed{2}", "2", grader)


# ----------------------------------------------------------------------------- boxed extraction


@pytest.mark.parametrize(
    ("text", "content"),
    [
        ("so \\boxed{\\frac{1}{2}} done", "\\frac{1}{2}"),
        ("\\boxed{1} then \\boxed{\\{1, 2\\}}", "\\{1, 2\\}"),
        ("\\fbox{42}", "42"),
        ("$\\boxed 5$", "5"),
        ("\\boxed{a^{2}+b^{2}}.", "a^{2}+b^{2}"),
        ("\\boxed{12", None),  # truncated: unbalanced
        ("no box here", None),
        ("\\boxedx{3}", None),
    ],
)
def test_last_boxed(text: str, content: str | None) -> None:
    assert last_boxed(text) == content


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("\\dfrac{1}{2}", "\\frac{1}{2}"),
        ("\\frac12", "\\frac{1}{2}"),
        ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac{\\pi}{2})"),
        ("90^\\circ", "90"),
        ("\\text{Evelyn}", "Evelyn"),
        ("10,\\!080", "10080"),
        ("x = 5", "5"),
        ("5.4 \\text{ cents}", "5.4"),
        ("864 \\mbox{ inches}^2", "864"),
        ("142.0", "142"),
        (".35625", "0.35625"),
        ("\\$18.90", "18.90"),
        ("$\\frac{1}{2 n+2}$", "\\frac{1}{2n+2}"),
        ("3/4", "\\frac{3}{4}"),
        ("11\\sqrt2", "11\\sqrt{2}"),
        ("4.5e33", "4.5\\times10^{33}"),
        ("7.", "7"),
    ],
)
def test_normalize_answer(raw: str, normal: str) -> None:
    assert normalize_answer(raw) == normal


# ----------------------------------------------------------------------------- boxed grader


@pytest.mark.parametrize(
    ("pred", "gt", "correct"),
    [
        ("\\frac12", "0.5", True),
        ("0.5", "\\frac{1}{2}", True),
        ("90", "90^\\circ", True),
        ("(3,\\frac{\\pi}{2})", "\\left( 3, \\frac{\\pi}{2} \\right)", True),
        ("\\frac{\\sqrt{2}}{2}", "\\frac{1}{\\sqrt{2}}", True),
        ("(x-1)(x+1)", "x^2-1", True),
        ("(x+1)^2", "x^2+1", False),
        ("(2,1)", "(1,2)", False),  # tuples are ordered
        ("1000.5", "1000", False),  # integers must match exactly
        ("10080", "10,\\!080", True),
        ("\\text{(C)}", "\\text{(C)}", True),
        ("2.88 \\times 10^{-19}", "2.88e-19", True),
        ("1.325e-27", "2.88e-19", False),  # math-verify alone would round both to 0
        ("3-2i", "3+2i", False),
    ],
)
def test_boxed_grader(pred: str, gt: str, correct: bool) -> None:
    assert grade(f"...</think>\nThe answer is \\boxed{{{pred}}}.", gt, "boxed") is correct


def test_boxed_grader_needs_a_box() -> None:
    assert not grade("r</think>\nThe answer is **73**.", "73", "boxed")
    assert not grade("r</think>\nThe answer is 73.", "73", "boxed")


# ----------------------------------------------------------------------------- known math-verify pitfalls


def test_gold_first_argument_order_matters() -> None:
    """math-verify is asymmetric: an inequality does not answer an interval gold, the reverse does."""
    gold, pred = parse("$(1,\\infty)$"), parse("$x > 1$")
    assert verify(gold, pred) is False and verify(pred, gold) is True  # the pair discriminates order
    response = "r</think>\n\\boxed{x > 1}"
    assert math_verify_reward(response, "(1,\\infty)") == 0.0
    assert not grade(response, "(1,\\infty)", "math_verify")
    assert grade("r</think>\n\\boxed{(1,\\infty)}", "x > 1", "math_verify")


@pytest.mark.parametrize(
    "solution",
    [
        "The answer is **73**.",
        "**73**",
        "**73** is the answer; the other root 5 is rejected.",
        "The final answer is **73**. (We discarded 5.)",
        "### Final Answer\n**73**\n\nNote: 5 was rejected",
        "**Answer:** The value is 73, not 5.",
    ],
)
def test_markdown_bold_answer_without_box(solution: str) -> None:
    assert grade("r</think>\n" + solution, "73", "math_verify")
    assert not grade("r</think>\n" + solution, "5", "math_verify")


def test_plain_math_verify_misreads_bold_followed_by_other_numbers() -> None:
    """Why the grader boxes bold answers: the spec-exact reward scores this correct answer 0."""
    assert math_verify_reward("r</think>\n**73** is the answer; the other root 5 is rejected.", "73") == 0.0


def test_bold_step_headers_are_not_answers() -> None:
    response = "r</think>\n**Step 2** gives 70, and adding 3 the answer is 73."
    assert grade(response, "73", "math_verify")
    assert not grade(response, "2", "math_verify")


@pytest.mark.parametrize("grader", MATH_GRADERS)
def test_find_all_answers(grader: str) -> None:
    assert grade("r</think>\n\\boxed{2, 1}", "1, 2", grader)  # order of a "find all" list is free
    assert not grade("r</think>\n\\boxed{1}", "1, 2", grader)  # a subset is wrong
    assert not grade("r</think>\n\\boxed{1, 2, 3}", "1, 2", grader)  # a superset too


def test_several_boxes() -> None:
    """boxed grader: the last box. math_verify: all boxes are joined into one set (math-verify 0.9)."""
    response = "r</think>\nfirst \\boxed{5}, correcting myself: \\boxed{7}"
    assert grade(response, "7", "boxed")
    assert not grade(response, "5", "boxed")
    assert not grade(response, "7", "math_verify")
    assert grade(response, "5, 7", "math_verify")
    assert math_verify_reward(response, "5, 7") == 1.0


@pytest.mark.parametrize("grader", MATH_GRADERS)
def test_scientific_notation_ground_truth(grader: str) -> None:
    assert grade("r</think>\n\\boxed{4.5 \\times 10^{33}}", "4.5e33", grader)
    assert grade("r</think>\n\\boxed{4.5e33}", "4.5e33", grader)
    assert not grade("r</think>\n\\boxed{4.6 \\times 10^{33}}", "4.5e33", grader)
    assert not grade("r</think>\n\\boxed{1.325e-27}", "2.88e-19", grader)


def test_reward_stays_spec_exact_on_scientific_notation() -> None:
    """The training reward reads "4.5e33" as 4.5*e*33 (math-verify); only the eval graders fix it."""
    assert math_verify_reward("r</think>\n\\boxed{4.5 \\times 10^{33}}", "4.5e33") == 0.0


@pytest.mark.parametrize("grader", MATH_GRADERS)
def test_dollar_wrapped_ground_truth(grader: str) -> None:
    assert grade("r</think>\n\\boxed{\\frac{1}{2n+2}}", "$\\frac{1}{2 n+2}$", grader)
    assert grade("r</think>\n\\boxed{$(1,8,19), (2,7,13)$}", "$(1,8,19), (2,7,13)$", grader)
    assert not grade("r</think>\n\\boxed{\\frac{1}{2n+1}}", "$\\frac{1}{2 n+2}$", grader)


@pytest.mark.parametrize("grader", MATH_GRADERS)
def test_huge_exponent_does_not_hang(grader: str, pool: GradingPool) -> None:
    response = "r</think>\n\\boxed{2^{2^{2^{2^{2^{30}}}}}}"
    start = time.monotonic()
    assert not grade(response, "1", grader, timeout_s=1.0)
    assert time.monotonic() - start < 3.0
    out = grade_many([response, "r</think>\\boxed{4}"], ["1", "4"], grader, timeout_s=1.0, pool=pool)
    assert out == [(False, "timeout"), (True, "ok")]


# ----------------------------------------------------------------------------- multiple choice


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("(B)", "B"),
        ("B.", "B"),
        ("\\text{B}", "B"),
        ("\\textbf{(B)}", "B"),
        ("**B**", "B"),
        ("$B$", "B"),
        ("b", "B"),
        ("B) 42 apples", "B"),
        ("3", "3"),
        ("Both", None),
        ("10", None),
        ("", None),
    ],
)
def test_choice_label(text: str, label: str | None) -> None:
    assert choice_label(text) == label


@pytest.mark.parametrize(
    ("solution", "gt", "correct"),
    [
        ("\\boxed{(B)}", "B", True),
        ("\\boxed{\\text{B}}", "B", True),
        ("\\boxed{b}", "B", True),
        ("\\boxed{C}", "B", False),
        ("\\boxed{A} no wait \\boxed{D}", "D", True),
        ("The answer is (C).", "C", True),
        ("ANSWER: D", "D", True),
        ("Reasoning about (A) and (B).\nANSWER: $A$", "A", True),
        ("The answer is a tricky one: C", "A", False),
        ("I cannot decide.", "A", False),
        ("\\boxed{2}", "2", True),  # ARC numeric labels
        ("\\boxed{2}", "B", False),
    ],
)
def test_multiple_choice_grader(solution: str, gt: str, correct: bool) -> None:
    assert grade("r</think>\n" + solution, gt, "multiple_choice") is correct


def test_multiple_choice_rejects_non_label_ground_truth() -> None:
    with pytest.raises(ValueError, match=r"ground_truths\[1\] = 'forty' is not a choice label"):
        grade_many(["</think>\\boxed{A}", "</think>\\boxed{A}"], ["A", "forty"], "multiple_choice")


# ----------------------------------------------------------------------------- batching and threads


def test_grade_many_matches_grade(pool: GradingPool) -> None:
    responses = [
        "r</think>\\boxed{3}",
        "r</think>\\boxed{4}",
        "no tag \\boxed{3}",
        "r</think>\\boxed{\\frac{6}{2}}",
    ]
    gts = ["3", "3", "3", "3"]
    for grader in MATH_GRADERS:
        expected = [grade(r, g, grader) for r, g in zip(responses, gts)]
        assert expected == [True, False, False, True]
        assert grade_many(responses, gts, grader, pool=pool) == [(e, "ok") for e in expected]


def test_grade_from_a_thread() -> None:
    out: dict[str, object] = {}

    def work() -> None:
        try:
            out["v"] = grade("r</think>\\boxed{\\frac{1}{2}}", "0.5", "math_verify")
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            out["v"] = exc

    t = threading.Thread(target=work)
    t.start()
    t.join(timeout=60)
    assert out == {"v": True}


def test_grade_many_argument_errors(pool: GradingPool) -> None:
    assert grade_many([], [], "boxed", pool=pool) == []
    with pytest.raises(ValueError, match="same length"):
        grade_many(["a"], [], "boxed")
    with pytest.raises(ValueError, match="either pool or num_workers"):
        grade_many(["a"], ["1"], "boxed", pool=pool, num_workers=1)
    with pytest.raises(ValueError, match="response must be a str"):
        grade(3, "1", "boxed")  # type: ignore[arg-type]
