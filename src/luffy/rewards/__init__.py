"""Rewards for LUFFY training (method §4): math-verify accuracy, graded in a deadline-enforcing process pool."""

from luffy.rewards.math_verify_reward import (
    RewardResult,
    batch_math_verify_reward,
    math_verify_reward,
    score_or_raise,
    solution_segment,
)
from luffy.rewards.pool import GradingPool, TaskOutcome, call_with_deadline, shared_pool

__all__ = [
    "GradingPool",
    "RewardResult",
    "TaskOutcome",
    "batch_math_verify_reward",
    "call_with_deadline",
    "math_verify_reward",
    "score_or_raise",
    "shared_pool",
    "solution_segment",
]
