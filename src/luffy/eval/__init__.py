"""Evaluation (method §5). This package init stays light: it must import without vLLM."""

from luffy.eval.graders import (
    GRADERS,
    answers_match,
    choice_label,
    grade,
    grade_boxed,
    grade_many,
    grade_math_verify,
    grade_multiple_choice,
    last_boxed,
    normalize_answer,
)

# Benchmark registry, protocol and runner are loaded on first access (PEP 562), so grading workers that
# import luffy.eval.graders do not pay for pyarrow / torch / pydantic imports.
_LAZY = {
    "REGISTRY": "benchmarks", "BenchmarkDataMissing": "benchmarks", "EvalQuestion": "benchmarks",
    "get_benchmark": "benchmarks", "suite_benchmarks": "benchmarks",
    "BenchmarkProtocol": "protocol", "EvalConfig": "protocol", "load_eval_config": "protocol",
    "evaluate": "runner",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"luffy.eval.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'luffy.eval' has no attribute {name!r}")


__all__ = [
    "GRADERS",
    "REGISTRY",
    "BenchmarkDataMissing",
    "BenchmarkProtocol",
    "EvalConfig",
    "EvalQuestion",
    "answers_match",
    "choice_label",
    "evaluate",
    "get_benchmark",
    "grade",
    "grade_boxed",
    "grade_many",
    "grade_math_verify",
    "grade_multiple_choice",
    "last_boxed",
    "load_eval_config",
    "normalize_answer",
    "suite_benchmarks",
]
