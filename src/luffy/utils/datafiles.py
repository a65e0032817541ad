"""The workflow's data files per scale: which file each logical split names.

One table for the Snakemake rules (``workflow/rules/common.smk`` loads this module by file path, as
the workflow environment does not install the library) and for ``luffy check-config``
(:mod:`luffy.workflow_config`), which checks that every ``train_split`` of a config names a file
of its scale. Standard library only.
"""

from __future__ import annotations

#: scale -> logical split -> file name in the scale's data folder
DATA_FILES: dict[str, dict[str, str]] = {
    "tiny": {
        "train": "train.jsonl",
        "train_rl": "train_rl.jsonl",
        "val": "test_id.jsonl",
        "test_id": "test_id.jsonl",
        "test_ood": "test_ood.jsonl",
        "warmup": "warmup.jsonl",
        "info": "task.json",
    },
    "paper": {
        "train": "openr1.parquet",
        "train_rl": "openr1.complement.parquet",
        "val": "valid.parquet",
        "info": "data.json",
    },
}

#: the splits a run can train on (``train_split`` of an experiment or of the warm-up)
TRAIN_SPLITS = ("train", "train_rl", "warmup")
