"""Training: the loop and everything it is made of.

* :mod:`~luffy.train.loop` -- :class:`Trainer`, one RL or SFT step written top to bottom;
* :mod:`~luffy.train.update` -- the update (loss, backward, clip, optimizer step), shared by the
  single-process trainer and every distributed worker; :mod:`~luffy.train.tensors` -- collation and
  token log-probs; :mod:`~luffy.train.batching` -- data order, seeds, the micro-batch plan;
* :mod:`~luffy.train.optim` -- AdamW and the LR schedule;
* :mod:`~luffy.train.run_files` -- config, metrics, checkpoints, final model and summary on disk;
* :mod:`~luffy.train.drills` -- fault injection for the reliability suite;
* :mod:`~luffy.train.distributed` -- the same loop driving a Ray group of FSDP2 workers.

Which trainer a run uses is decided by the CLI (``luffy.cli.train``), from ``resources.backend``.
"""

from .errors import NothingToDo, TrainingError
from .loop import Trainer

__all__ = ["NothingToDo", "Trainer", "TrainingError"]
