"""The single-machine mixed-policy trainer (``python -m luffy train``)."""

from .trainer import NothingToDo, Trainer, TrainingError, train

__all__ = ["NothingToDo", "Trainer", "TrainingError", "train"]
