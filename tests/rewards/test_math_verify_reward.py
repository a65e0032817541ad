"""Training reward (method §4): the test-vector table, batched == single, timeouts, threads, bad input."""

from __future__ import annotations

import threading
import time

import pytest

from luffy.rewards import (
    GradingPool,
    RewardResult,
    batch_math_verify_reward,
    math_verify_reward,
    solution_segment,
)

# Method §4 "Test vectors" table, one row per tuple: (decoded response, ground truth, reward).
SPEC_TABLE = [
    ("Let me add: 200 + 4 = 204.\n</think>\nThe answer is \\boxed{204}.<|im_end|>", "204", 1.0),
    ("Let me add: 200 + 4 = 204.\nThe answer is \\boxed{204}.<|im_end|>", "204", 0.0),
    ("reasoning</think>\n\\boxed{205}", "204", 0.0),
    ("reasoning</think>\nSo m+n = \\boxed{142}.", "142.0", 1.0),
    ("reasoning</think>\n\\boxed{\\frac{1}{2}}", "0.5", 1.0),
    (
        "polar form...</think>\n\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}",
        "\\left( 3, \\frac{\\pi}{2} \\right)",
        1.0,
    ),
    ("a</think> wrong \\boxed{1} </think> right \\boxed{2}", "2", 0.0),
    ("reasoning</think>\nThe answer is C.", "C", 0.0),
    ("reasoning</think>\n\\boxed{C}", "C", 1.0),
]

# Tower of powers that math-verify/sympy grinds on (still running after 5 minutes without a deadline).
PATHOLOGICAL = "think</think>\\boxed{2^{2^{2^{2^{2^{30}}}}}}"


@pytest.mark.parametrize(("response", "gt", "expected"), SPEC_TABLE)
def test_spec_table_row(response: str, gt: str, expected: float) -> None:
    assert math_verify_reward(response, gt) == expected


def test_solution_segment_is_text_between_first_and_second_close_tag() -> None:
    assert solution_segment("a</think> b </think> c") == " b "
    assert solution_segment("no close tag") is None
    # The prompt's "<think>\n" is prepended; a response may close the tag immediately.
    assert solution_segment("</think>\\boxed{7}") == "\\boxed{7}"
    assert math_verify_reward("</think>\\boxed{7}", "7") == 1.0


def test_first_segment_wins_even_if_later_segment_is_right() -> None:
    # Mirror of the spec row with the roles swapped: only the first segment counts.
    assert math_verify_reward("a</think> right \\boxed{2} </think> wrong \\boxed{1}", "2") == 1.0


def test_any_exception_in_grading_scores_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    import math_verify

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("parser crashed")

    monkeypatch.setattr(math_verify, "parse", boom)
    assert math_verify_reward("x</think>\\boxed{1}", "1") == 0.0


def test_inline_deadline_bounds_pathological_answer() -> None:
    start = time.monotonic()
    assert math_verify_reward(PATHOLOGICAL, "1", timeout_s=0.5) == 0.0
    assert time.monotonic() - start < 3.0


def test_non_str_arguments_raise_clear_error() -> None:
    with pytest.raises(ValueError, match="response must be a str"):
        math_verify_reward(None, "1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"ground_truths\[1\] must be a str"):
        batch_math_verify_reward(["a", "b"], ["1", 2])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="same length"):
        batch_math_verify_reward(["a"], ["1", "2"])


@pytest.fixture(scope="module")
def pool() -> GradingPool:
    with GradingPool(2) as p:
        yield p


def test_batch_equals_single_on_mixed_list(pool: GradingPool) -> None:
    responses = [r for r, _, _ in SPEC_TABLE] + [
        "r</think>\nThe answer is **73**.",
        "r</think>\n\\boxed{2, 1}",
        "r</think>\n\\boxed{1}",
        "",
        "r</think>",
    ]
    gts = [g for _, g, _ in SPEC_TABLE] + ["73", "1, 2", "1, 2", "1", "1"]
    singles = [math_verify_reward(r, g) for r, g in zip(responses, gts)]
    result = batch_math_verify_reward(responses, gts, pool=pool)
    assert isinstance(result, RewardResult)
    assert result.scores == singles
    assert singles == [e for _, _, e in SPEC_TABLE] + [1.0, 1.0, 0.0, 0.0, 0.0]
    assert result.statuses == ["ok"] * len(responses)
    assert (result.n_timeouts, result.n_errors) == (0, 0)


def test_pathological_answer_times_out_and_batch_continues(pool: GradingPool) -> None:
    timeout_s = 1.0
    responses = ["a</think>\\boxed{3}", PATHOLOGICAL, "b</think>\\boxed{5}", "c</think>\\boxed{6}"]
    gts = ["3", "1", "5", "7"]
    start = time.monotonic()
    result = batch_math_verify_reward(responses, gts, timeout_s=timeout_s, pool=pool)
    elapsed = time.monotonic() - start
    assert result.scores == [1.0, 0.0, 1.0, 0.0]
    assert result.statuses == ["ok", "timeout", "ok", "ok"]
    assert (result.n_timeouts, result.n_errors) == (1, 0)
    # deadline + the pool's kill grace + slack for a worker restart on a loaded 2-core machine
    assert elapsed < timeout_s + pool.kill_grace_s + 2.0, elapsed


def test_batch_from_a_thread_and_single_from_a_thread() -> None:
    """math-verify's own timeouts raise ValueError off the main thread; ours must not."""
    out: dict[str, object] = {}

    def work() -> None:
        try:
            out["batch"] = batch_math_verify_reward(
                ["x</think>\\boxed{12}", "x</think>\\boxed{13}"], ["12", "12"], num_workers=1
            ).scores
            out["single"] = math_verify_reward("x</think>\\boxed{\\frac{1}{2}}", "0.5")
        except BaseException as exc:  # noqa: BLE001 - surfaced by the assertion below
            out["error"] = exc

    t = threading.Thread(target=work)
    t.start()
    t.join(timeout=60)
    assert not t.is_alive()
    assert "error" not in out, out.get("error")
    assert out == {"batch": [1.0, 0.0], "single": 1.0}


def test_empty_batch_and_conflicting_pool_arguments(pool: GradingPool) -> None:
    assert batch_math_verify_reward([], []) == RewardResult([], [], [])
    with pytest.raises(ValueError, match="either pool or num_workers"):
        batch_math_verify_reward(["a"], ["1"], pool=pool, num_workers=2)
