"""The trainer's exceptions (the CLI turns :class:`TrainingError` into one line and exit status 2)."""


class TrainingError(RuntimeError):
    """The run cannot continue (the message says why); checkpoints written so far are kept."""


class NothingToDo(RuntimeError):
    """``--resume`` found a run that is already finished."""
