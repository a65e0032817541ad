"""The method §4 score itself, without time limits: the piece shared by the reward and the grading pool.

``score_or_raise(response, ground_truth)`` is the LUFFY training reward (method §4, version 3) for
``response`` = the decoded text after the generation prompt:

1. ``s = "<think>\\n" + response``; if ``"</think>"`` is not in ``s`` the reward is 0.
2. ``solution = s.split("</think>")[1]`` (the text between the first and second ``</think>``).
3. ``pred = parse(solution)``, ``gold = parse("$" + ground_truth + "$")`` with math-verify's default
   extraction, and ``verify(gold, pred)`` with the gold FIRST.
4. 1.0 if verified else 0.0. No format or length terms.

math-verify is called with its own timeouts disabled and exceptions propagate: the callers bound the
time and turn failures into 0 (:mod:`luffy.rewards.math_verify_reward`, :mod:`luffy.rewards.pool`).
This module imports nothing else of the library, so both of those can import it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

THINK_OPEN = "<think>\n"
THINK_CLOSE = "</think>"
#: Deadline per answer of the training reward (math-verify 0.9's own per-call limit was 5 s).
DEFAULT_TIMEOUT_S = 5.0


class _DropTimeoutDisabledWarning(logging.Filter):
    """math-verify warns once that its own timeouts are off; here the deadline is enforced outside it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Timeout is disabled")


for _name in ("math_verify.parser", "math_verify.grader"):
    logging.getLogger(_name).addFilter(_DropTimeoutDisabledWarning())


def solution_segment(response: str) -> str | None:
    """The text between the first and second ``</think>`` of ``"<think>\\n" + response``; None if no
    ``</think>`` (method §4 steps 2-4)."""
    s = THINK_OPEN + response
    if THINK_CLOSE not in s:
        return None
    return s.split(THINK_CLOSE)[1]


def score_or_raise(response: str, ground_truth: str) -> float:
    """Method §4 reward without any timeout or exception handling (exceptions propagate).

    math-verify is called with its timeouts disabled: the caller bounds the time (see module docstring).
    """
    from math_verify import parse, verify  # imported lazily: ~0.3 s, not needed by importers of the API

    solution = solution_segment(response)
    if solution is None:
        return 0.0
    pred = parse(solution, parsing_timeout=None)
    gold = parse("$" + ground_truth + "$", parsing_timeout=None)
    return 1.0 if verify(gold, pred, timeout_seconds=None) else 0.0


def check_text_pairs(responses: Sequence[str], ground_truths: Sequence[str]) -> None:
    """ValueError unless both are equally long sequences of str (names the offending index)."""
    if len(responses) != len(ground_truths):
        raise ValueError(
            f"responses and ground_truths must have the same length, got {len(responses)} and {len(ground_truths)}"
        )
    for name, seq in (("responses", responses), ("ground_truths", ground_truths)):
        for i, x in enumerate(seq):
            if not isinstance(x, str):
                raise ValueError(f"{name}[{i}] must be a str, got {type(x).__name__}")
