"""The project's one JSONL reader and writer.

A JSONL file here is one JSON object per line. Blank lines are ignored. Every error names the file
and the 1-based line (``JsonlError``, a ``ValueError``; callers re-raise it as their own error type
where the CLI maps that type to a one-line message).

Torn last line: a process killed in the middle of an append leaves a partial final line. Readers say
what they want with ``torn_tail``:

* ``"error"`` -- the file is data somebody wrote on purpose (a data split): any bad line is an error;
* ``"drop"``  -- the file is an append-only log (``metrics.jsonl``, ``samples.jsonl``): a bad *final*
  line (nothing but blank lines after it) is dropped; a bad line anywhere else is damage, an error.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from .files import atomic_write_text

TornTail = Literal["error", "drop"]


class JsonlError(ValueError):
    """A malformed JSONL file; the message is ``<file>: line <n>: <what>``."""


def read_jsonl_lines(path: str | Path, *, torn_tail: TornTail = "error") -> list[tuple[int, dict[str, Any]]]:
    """``[(line number, object), ...]`` of ``path`` in file order (see the module docstring)."""
    path = Path(path)
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        if torn_tail == "drop" and b"\n" not in data[e.start:].rstrip(b"\n"):
            text = data[: data.rfind(b"\n", 0, e.start) + 1].decode("utf-8")  # torn multi-byte tail
        else:
            raise JsonlError(f"{path}: line {line}: not valid UTF-8 "
                             f"(byte 0x{data[e.start]:02x} at offset {e.start})") from None
    lines = text.split("\n")
    last = max((i for i, ln in enumerate(lines) if ln.strip()), default=-1)
    out: list[tuple[int, dict[str, Any]]] = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            if torn_tail == "drop" and i == last:
                break
            raise JsonlError(f"{path}: line {i + 1}: invalid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(rec, dict):
            raise JsonlError(f"{path}: line {i + 1}: expected a JSON object, got {type(rec).__name__}")
        out.append((i + 1, rec))
    return out


def read_jsonl(path: str | Path, *, torn_tail: TornTail = "error") -> list[dict[str, Any]]:
    """The objects of ``path`` in file order (see :func:`read_jsonl_lines`)."""
    return [rec for _, rec in read_jsonl_lines(path, torn_tail=torn_tail)]


def _dumps(rec: dict[str, Any]) -> str:
    return json.dumps(rec, ensure_ascii=False) + "\n"


def append_jsonl(path: str | Path, records: Iterable[dict[str, Any]], *, fsync: bool = True) -> None:
    """Append records, one line each; with ``fsync`` the lines are on disk when this returns."""
    with open(path, "a", encoding="utf-8") as f:
        f.writelines(_dumps(rec) for rec in records)
        f.flush()
        if fsync:
            os.fsync(f.fileno())


def write_jsonl(path: str | Path, records: Iterable[dict[str, Any]]) -> None:
    """Replace ``path`` atomically with the records (temporary file, fsync, rename)."""
    atomic_write_text(Path(path), "".join(_dumps(r) for r in records))
