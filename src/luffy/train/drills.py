"""Preemption drills: a real ``kill -9`` of the training process at a chosen phase of a chosen step.

``$LUFFY_DRILL`` = ``<phase>:<step>[:<marker file>]``. The phases are the places where a preemption
hurts most: mid-rollout (``gen``), after grading (``reward``), mid-update (``update``), between the
metrics line and the checkpoint (``metrics``), inside a checkpoint write (``checkpoint``), between
the final model and ``summary.json`` (``finish``). With a marker file the kill happens once: the
file is created just before, and a later run that finds it goes on. Used by tests/reliability and
``make reliability``; unset, every :func:`drill` call is a no-op.
"""

from __future__ import annotations

import functools
import os
import signal
from pathlib import Path

from ..utils.files import atomic_write_text
from .errors import TrainingError

DRILL_ENV = "LUFFY_DRILL"
DRILL_PHASES = ("gen", "reward", "update", "metrics", "checkpoint", "finish")


@functools.lru_cache(maxsize=8)
def parse_drill(spec: str | None) -> tuple[str, int, Path | None] | None:
    """``(phase, step, marker)`` of a drill spec; None when unset or empty; TrainingError when malformed."""
    if not spec:
        return None
    parts = spec.split(":", 2)
    if len(parts) < 2 or parts[0] not in DRILL_PHASES or not parts[1].isdigit():
        raise TrainingError(f"${DRILL_ENV}={spec!r}: expected <phase>:<step>[:<marker file>] with phase one of "
                            f"{', '.join(DRILL_PHASES)}")
    return parts[0], int(parts[1]), Path(parts[2]) if len(parts) == 3 else None


def check_drill_env() -> None:
    """Fail before any work if ``$LUFFY_DRILL`` is malformed."""
    parse_drill(os.environ.get(DRILL_ENV))


def drill(phase: str, step: int) -> None:
    """SIGKILL this process if ``$LUFFY_DRILL`` names ``phase`` and ``step``."""
    d = parse_drill(os.environ.get(DRILL_ENV))
    if d is None or d[0] != phase or d[1] != step:
        return
    if d[2] is not None:
        if d[2].exists():
            return
        atomic_write_text(d[2], f"{phase}:{step} pid {os.getpid()}\n")
    os.kill(os.getpid(), signal.SIGKILL)
