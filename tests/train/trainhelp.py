"""Helpers shared by the trainer tests."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "config" / "experiments" / "tiny"


def tiny_overrides(task_dir: Path, model: Path, steps: int = 2, **extra) -> list[str]:
    sets = {
        "model.path": str(model),
        "data.train": str(task_dir / "train.jsonl"),
        "data.val": str(task_dir / "test_id.jsonl"),
        "data.val_limit": 4,
        "data.max_response_tokens": 64,
        "loss.norm_length": "null",
        "train.steps": steps,
        "train.prompts_per_step": 4,
        "train.mini_batch_prompts": 2,
        "train.micro_batch_seqs": 16,
        "train.val_every": 0,
        "train.save_every": 1,
        "group.n_on": 3,
    }
    sets.update(extra)
    return [f"{k}={v}" for k, v in sets.items()]
