"""The one normalized training-row schema every loader produces (method §3.1).

A :class:`TrainRow` is one prompt with its ground-truth answer and 0..k off-policy traces
(the paper's ``target`` / ``target_lst``). Rows validate themselves on construction, so a
malformed row cannot reach the trainer; loaders add the file and row to the message.

Deliberate deviations from the reference data: the answer is always a string (numbers are
converted with ``str``), and each trace may name its teacher (the OpenR1 parquet has no such
field, so loaders leave it ``None``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ROLES = ("system", "user", "assistant")


class DataFormatError(ValueError):
    """Bad training/eval data. The message is one line naming the file, row and key."""


@dataclass(frozen=True)
class Trace:
    """One off-policy demonstration: the full response text (method §1.1 "target")."""

    text: str
    teacher: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.text, str):
            raise DataFormatError(f"trace text must be a string, got {type(self.text).__name__}")
        if not self.text.strip():
            raise DataFormatError("trace text is empty")
        if self.teacher is not None and not isinstance(self.teacher, str):
            raise DataFormatError(
                f"trace teacher must be a string or null, got {type(self.teacher).__name__}"
            )


@dataclass(frozen=True)
class TrainRow:
    """One prompt: chat ``prompt`` messages, ``answer`` (ground truth), ``traces``, ``split``."""

    id: str
    prompt: list[dict[str, str]]
    answer: str
    traces: list[Trace] = field(default_factory=list)
    split: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise DataFormatError(f"'id' must be a non-empty string, got {self.id!r}")
        _check_messages(self.prompt)
        if not isinstance(self.answer, str) or not self.answer.strip():
            raise DataFormatError(f"'answer' must be a non-empty string, got {self.answer!r}")
        if not isinstance(self.traces, list) or not all(isinstance(t, Trace) for t in self.traces):
            raise DataFormatError("'traces' must be a list of Trace")
        if self.split is not None and not isinstance(self.split, str):
            raise DataFormatError(f"'split' must be a string or null, got {type(self.split).__name__}")

    @property
    def question(self) -> str:
        """Content of the last user message (the problem text)."""
        return next(m["content"] for m in reversed(self.prompt) if m["role"] == "user")

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form; the inverse of :meth:`from_dict`."""
        return {
            "id": self.id,
            "prompt": [{"role": m["role"], "content": m["content"]} for m in self.prompt],
            "answer": self.answer,
            "traces": [{"text": t.text, "teacher": t.teacher} for t in self.traces],
            "split": self.split,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainRow:
        """Build from the project's own row dict; numbers as answers become strings."""
        if not isinstance(d, dict):
            raise DataFormatError(f"row must be an object, got {type(d).__name__}")
        missing = [k for k in ("id", "prompt", "answer") if k not in d]
        if missing:
            raise DataFormatError(f"missing key(s) {missing}")
        unknown = sorted(set(d) - {"id", "prompt", "answer", "traces", "split"})
        if unknown:
            raise DataFormatError(f"unknown key(s) {unknown}")
        traces = d.get("traces")
        if traces is None:
            traces = []
        if not isinstance(traces, list):
            raise DataFormatError(f"'traces' must be a list, got {type(traces).__name__}")
        parsed = []
        for j, t in enumerate(traces):
            if not isinstance(t, dict) or "text" not in t:
                raise DataFormatError(f"traces[{j}] must be an object with a 'text' key")
            try:
                parsed.append(Trace(text=t["text"], teacher=t.get("teacher")))
            except DataFormatError as e:
                raise DataFormatError(f"traces[{j}]: {e}") from None
        rid = d["id"]
        if isinstance(rid, int) and not isinstance(rid, bool):  # integer ids are common in JSONL
            rid = str(rid)
        return cls(
            id=rid,
            prompt=_copy_messages(d["prompt"]),
            answer=answer_to_str(d["answer"], key="answer"),
            traces=parsed,
            split=d.get("split"),
        )


def answer_to_str(value: Any, *, key: str) -> str:
    """Ground truth as a string: strings pass, ints/floats are converted, anything else fails."""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise DataFormatError(f"'{key}' must be a string or number, got {type(value).__name__} {value!r}")


def _copy_messages(messages: Any) -> list[dict[str, str]]:
    _check_messages(messages)
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def _check_messages(messages: Any) -> None:
    if not isinstance(messages, list) or not messages:
        raise DataFormatError(f"'prompt' must be a non-empty list of messages, got {type(messages).__name__}")
    for j, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("content"), str):
            raise DataFormatError(f"prompt[{j}] must be an object with string 'role' and 'content'")
        if m.get("role") not in ROLES:
            raise DataFormatError(f"prompt[{j}].role must be one of {list(ROLES)}, got {m.get('role')!r}")
    if not any(m["role"] == "user" for m in messages):
        raise DataFormatError("'prompt' has no user message")
