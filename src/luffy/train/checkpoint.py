"""Atomic, resumable training checkpoints.

``<out>/checkpoints/step_000010/`` holds ``model.pt``, ``optim.pt``, ``sched.pt`` and
``state.json``; it is written under a temporary name, every file fsynced, then renamed, and a
``COMPLETE`` marker is written last — a half-written checkpoint is never picked up by
``latest()``. Older checkpoints beyond ``keep`` are deleted only after a new one is complete.
A checkpoint of the distributed trainer (``resources.backend: ray``) holds ``shards/`` (a
``torch.distributed.checkpoint`` folder: model and optimizer, sharded per rank) instead of
``model.pt`` / ``optim.pt``, under the same protocol (:meth:`CheckpointManager.save_with`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

_NAME = re.compile(r"^step_(\d{6,})$")


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def _save(obj: Any, path: Path) -> None:
    with open(path, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())


class CheckpointManager:
    def __init__(self, root: Path, keep: int = 2) -> None:
        self.root = Path(root)
        self.keep = keep

    def complete(self) -> list[tuple[int, Path]]:
        if not self.root.is_dir():
            return []
        out = []
        for d in self.root.iterdir():
            m = _NAME.match(d.name)
            if m and (d / "COMPLETE").is_file():
                out.append((int(m.group(1)), d))
        return sorted(out)

    def latest(self) -> tuple[int, Path] | None:
        c = self.complete()
        return c[-1] if c else None

    def save(self, step: int, model: torch.nn.Module, optim: Any, sched: Any, state: dict,
             midway: Callable[[], None] | None = None) -> Path:
        """Write ``step_<step>/`` atomically; ``midway`` runs after the model file is written (drills)."""

        def write(tmp: Path) -> None:
            _save(model.state_dict(), tmp / "model.pt")
            if midway is not None:
                midway()
            _save(optim.state_dict(), tmp / "optim.pt")
            _save(sched.state_dict(), tmp / "sched.pt")

        return self.save_with(step, write, state)

    def save_with(self, step: int, write: Callable[[Path], None], state: dict) -> Path:
        """The protocol of :meth:`save` with the weight/optimizer/scheduler files written by ``write(tmp)``
        into the temporary folder (the distributed trainer: every rank writes its shards there)."""
        self.root.mkdir(parents=True, exist_ok=True)
        final = self.root / f"step_{step:06d}"
        tmp = self.root / f".step_{step:06d}.tmp-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        write(tmp)
        _save(state.pop("rng"), tmp / "rng.pt")
        atomic_write_text(tmp / "state.json", json.dumps(state, indent=1))
        fsync_dir(tmp)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        atomic_write_text(final / "COMPLETE", f"{step}\n")
        fsync_dir(self.root)
        for _, old in self.complete()[: -self.keep]:
            shutil.rmtree(old, ignore_errors=True)
        for stale in self.root.glob(".step_*.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        return final

    @staticmethod
    def load(path: Path) -> dict[str, Any]:
        return {
            "model": torch.load(path / "model.pt", map_location="cpu", weights_only=True),
            "optim": torch.load(path / "optim.pt", map_location="cpu", weights_only=True),
            "sched": torch.load(path / "sched.pt", map_location="cpu", weights_only=True),
            **CheckpointManager.load_state(path),
        }

    @staticmethod
    def load_state(path: Path) -> dict[str, Any]:
        """The driver's part of a checkpoint: ``rng`` (RNG states) and ``state`` (state.json)."""
        return {
            "rng": torch.load(path / "rng.pt", map_location="cpu", weights_only=False),
            "state": json.loads((path / "state.json").read_text()),
        }
