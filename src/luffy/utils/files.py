"""Crash-safe file writes: a reader sees the old file or the new one, never a half-written one."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def fsync_dir(path: Path) -> None:
    """Flush a directory entry (a rename inside it) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, fsync it, rename it over ``path``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def atomic_write_json(path: Path, obj: Any, *, indent: int | None = 2, ensure_ascii: bool = False) -> None:
    """:func:`atomic_write_text` of ``json.dumps(obj, indent=indent, ensure_ascii=ensure_ascii)`` plus a newline."""
    atomic_write_text(path, json.dumps(obj, indent=indent, ensure_ascii=ensure_ascii) + "\n")
