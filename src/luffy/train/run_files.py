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
* ``summary.json`` -- the run's result; ``FINISHED`` -- written after it, the mark of a finished run;
* ``previous/<time>-<why>/`` -- earlier runs moved aside (never deleted), see below.

A run folder holds the run of one resolved config (:func:`set_aside_previous`): under ``--resume
auto`` an unfinished run of the same config is resumed (a retry, a requeue, a kill); a finished
one (``FINISHED`` present, ``summary.json`` removed, as ``snakemake -R`` does) or one of another
config (an edited experiment file) is moved to ``previous/`` and the run starts from step 0. The
``FINISHED`` mark comes after ``summary.json``, so a crash between the two leaves a run that is
resumed, not retrained.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

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

    @property
    def finished(self) -> Path:
        return self.out / "FINISHED"

    @property
    def previous(self) -> Path:
        return self.out / "previous"


def set_aside_previous(paths: RunPaths, resolved: str) -> str | None:
    """Move an earlier run in ``paths.out`` to ``previous/<UTC time>-<why>/`` when it must not be
    resumed: it finished, or its ``resolved_config.yaml`` differs from ``resolved``. Return the
    reason (``finished`` / ``config-changed``), or None when there is nothing there or it is an
    unfinished run of this config (to resume)."""
    if not paths.config.exists():
        return None
    if paths.finished.exists():
        why = "finished"
    elif yaml.safe_load(paths.config.read_text(encoding="utf-8")) != yaml.safe_load(resolved):
        why = "config-changed"
    else:
        return None
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    dest = paths.previous / f"{stamp}-{why}"
    n = 1
    while dest.exists():
        n += 1
        dest = paths.previous / f"{stamp}-{why}-{n}"
    dest.mkdir(parents=True)
    for item in sorted(paths.out.iterdir()):
        if item.name != paths.previous.name:
            item.rename(dest / item.name)
    fsync_dir(paths.out)
    return why


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
    """``metrics.jsonl`` (+ TensorBoard scalars once :meth:`open_tensorboard` is called, + W&B once
    :meth:`open_wandb` is called with a mode other than ``off``)."""

    def __init__(self, paths: RunPaths) -> None:
        self.path = paths.metrics
        self.tb_dir = paths.tensorboard
        self.out = paths.out
        self._tb = None
        self._wandb = None

    def open_wandb(self, mode: str, project: str, config: dict[str, Any]) -> None:
        """Weights & Biases (``mode`` offline or online): one W&B run per run folder and config, so a
        resume continues the same W&B run (W&B ignores the steps it already has)."""
        if mode == "off":
            return
        try:
            import wandb
        except ImportError:
            raise TrainingError(f"train.wandb: {mode} needs the wandb package (pip install wandb)") from None
        digest = hashlib.sha256(json.dumps([str(self.out.resolve()), config], sort_keys=True, default=str)
                                .encode()).hexdigest()[:16]
        self._wandb = wandb.init(project=project, name=self.out.name, id=digest, resume="allow", mode=mode,
                                 dir=str(self.out), config=config)

    def open_tensorboard(self, start: int = 0) -> None:
        """Scalars of the steps after ``start`` go to ``tb/``. On a resume (``start`` > 0) the
        steps an interrupted attempt logged after ``start`` are purged (TensorBoard's
        ``purge_step``), so every step shows once; a run starting at step 0 starts a new ``tb/``."""
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is optional
            return
        if start == 0 and self.tb_dir.exists():
            shutil.rmtree(self.tb_dir)
        self._tb = SummaryWriter(str(self.tb_dir), purge_step=start + 1 if start else None)

    def append(self, rec: dict[str, Any]) -> None:
        append_jsonl(self.path, [rec])
        scalars = {k: v for k, v in rec.items() if k != "step" and isinstance(v, (int, float))
                   and not isinstance(v, bool) and math.isfinite(v)}
        if self._tb is not None:
            for k, v in scalars.items():
                self._tb.add_scalar(k, v, rec["step"])
        if self._wandb is not None:
            self._wandb.log(scalars, step=rec["step"])

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
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None


# ------------------------------------------------------------------------------------ final outputs


def save_final_model(model: torch.nn.Module | Callable[[Path], None], tok: Any, dest: Path) -> None:
    """``save_pretrained`` into a temporary folder, then rename it to ``dest``. ``model`` may instead
    be a function that writes the weights and model config into the folder it is given."""
    tmp = dest.parent / f".{dest.name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    if isinstance(model, torch.nn.Module):
        model.save_pretrained(tmp)
    else:
        tmp.mkdir(parents=True)
        model(tmp)
    tok.save_pretrained(tmp)
    if dest.exists():
        shutil.rmtree(dest)
    os.replace(tmp, dest)


def save_best_model(model: torch.nn.Module | Callable[[Path], None], tok: Any, paths: RunPaths, step: int,
                    score: float | None) -> None:
    """Replace ``best_val/`` by this model, then ``best_val.json`` (its step and validation accuracy)."""
    save_final_model(model, tok, paths.best_model)
    atomic_write_text(paths.best_info, json.dumps({"step": step, "val_accuracy": score}, indent=1))


def write_summary(paths: RunPaths, summary: dict[str, Any]) -> None:
    """``summary.json``, then the ``FINISHED`` mark (see the module docstring)."""
    atomic_write_text(paths.summary, json.dumps(summary, indent=1))
    atomic_write_text(paths.finished, time.strftime("%Y-%m-%dT%H:%M:%SZ\n", time.gmtime()))


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
