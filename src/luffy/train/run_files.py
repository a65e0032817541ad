"""What a run leaves on disk, and how it is written so that a crash loses nothing it computed.

``<out>/`` (``luffy train --out``):

* ``resolved_config.yaml`` -- the full run config, written before any work; a resume under a
  different config is refused;
* ``metrics.jsonl`` -- one JSON object per step, appended and fsynced (a torn last line from a kill
  mid-append is dropped on read); ``tb/`` -- the same scalars for TensorBoard;
* ``checkpoints/step_000010/`` -- ``model.pt``, ``optim.pt``, ``sched.pt``, ``rng.pt`` and
  ``state.json`` (the distributed trainer writes ``shards/``, a ``torch.distributed.checkpoint``
  folder, instead of the first two). A checkpoint is written under a temporary name, every file
  fsynced, then renamed, and a ``COMPLETE`` marker is written last: a half-written checkpoint is
  never picked up by :meth:`CheckpointManager.latest`. Older ones beyond ``keep`` are deleted only
  after a new one is complete;
* ``model/`` -- the final HF model (written to a temporary folder, then renamed);
* ``best_val/`` + ``best_val.json`` -- the model of the validation with the highest accuracy after
  step 0 (ties: the earlier step), rewritten whenever a validation beats it, and its step and score
  (the reference keeps the checkpoint with the best validation average, method §5.1); a run without
  validation data gets the final model there (score null);
* ``summary.json`` -- written last: its presence means the run is finished.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..utils.files import atomic_write_text, fsync_dir
from ..utils.jsonl import JsonlError, append_jsonl, read_jsonl, write_jsonl
from .errors import TrainingError

_NAME = re.compile(r"^step_(\d{6,})$")


@dataclass
class RunPaths:
    out: Path

    @property
    def metrics(self) -> Path:
        return self.out / "metrics.jsonl"

    @property
    def checkpoints(self) -> Path:
        return self.out / "checkpoints"

    @property
    def model(self) -> Path:
        return self.out / "model"

    @property
    def summary(self) -> Path:
        return self.out / "summary.json"

    @property
    def config(self) -> Path:
        return self.out / "resolved_config.yaml"

    @property
    def tensorboard(self) -> Path:
        return self.out / "tb"

    @property
    def best_model(self) -> Path:
        return self.out / "best_val"

    @property
    def best_info(self) -> Path:
        return self.out / "best_val.json"


# ------------------------------------------------------------------------------------------ metrics


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The records of ``metrics.jsonl``; a torn last line (a kill mid-append) is dropped.

    A malformed line anywhere else is an error naming the file and line: that is damage, not a crash.
    """
    try:
        return read_jsonl(path, torn_tail="drop")
    except JsonlError as e:
        raise TrainingError(f"{e} (the file is damaged)") from None


class MetricsLog:
    """``metrics.jsonl`` (+ TensorBoard scalars once :meth:`open_tensorboard` is called)."""

    def __init__(self, paths: RunPaths) -> None:
        self.path = paths.metrics
        self.tb_dir = paths.tensorboard
        self._tb = None

    def open_tensorboard(self) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is optional
            return
        self._tb = SummaryWriter(str(self.tb_dir))

    def append(self, rec: dict[str, Any]) -> None:
        append_jsonl(self.path, [rec])
        if self._tb is not None:
            for k, v in rec.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                    self._tb.add_scalar(k, v, rec["step"])

    def read(self) -> list[dict[str, Any]]:
        return read_metrics(self.path)

    def truncate(self, upto: int) -> None:
        """Keep the records of steps ≤ ``upto`` (resume from that step's checkpoint)."""
        if self.path.exists():
            write_jsonl(self.path, [r for r in self.read() if r["step"] <= upto])

    def reset(self) -> None:
        if self.path.exists():
            self.path.unlink()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None


# ------------------------------------------------------------------------------------ final outputs


def save_final_model(model: torch.nn.Module, tok: Any, dest: Path) -> None:
    """``save_pretrained`` into a temporary folder, then rename it to ``dest``."""
    tmp = dest.parent / f".{dest.name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    if dest.exists():
        shutil.rmtree(dest)
    os.replace(tmp, dest)


def save_best_model(model: torch.nn.Module, tok: Any, paths: RunPaths, step: int, score: float | None) -> None:
    """Replace ``best_val/`` by this model, then ``best_val.json`` (its step and validation accuracy)."""
    save_final_model(model, tok, paths.best_model)
    atomic_write_text(paths.best_info, json.dumps({"step": step, "val_accuracy": score}, indent=1))


def write_summary(path: Path, summary: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(summary, indent=1))


# -------------------------------------------------------------------------------------- checkpoints


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
