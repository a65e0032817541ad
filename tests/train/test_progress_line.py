"""A job log gets one plain line per `train.log_every` steps (no progress bar under --no-progress)."""

from __future__ import annotations

import re

from support import TINY, tiny_overrides

from luffy.config import load_run_config
from luffy.train import Trainer
from luffy.train.metrics import progress_line

LINE = re.compile(r"^train: step (\d+)/(\d+) \| reward [\d.]+ \(on [\d.]+\) \| entropy [\d.]+"
                  r"( \| val [\d.]+ \(step \d+\))? \| [\d.]+ s/step, ETA \d+:\d\d:\d\d$")


def test_progress_line_fields():
    met = {"reward/mean": 0.25, "reward/on": 0.125, "entropy/on": 0.5}
    line = progress_line(3, 10, met, (2, 0.4), [2.0, 4.0, 3.0])
    assert line == ("train: step 3/10 | reward 0.250 (on 0.125) | entropy 0.500 | val 0.400 (step 2) | "
                    "3.00 s/step, ETA 0:00:21")
    assert "sft_loss 0.1235" in progress_line(1, 2, {"actor/sft_loss": 0.12345, "entropy/all": 1.0}, None, [])


def test_trainer_logs_one_line_per_log_every_steps(task_dir, base_model, tmp_path):
    cfg = load_run_config(TINY / "luffy.yaml", tiny_overrides(task_dir, base_model, steps=3, **{
        "train.log_every": 2, "train.val_every": 2, "model.dtype": "float32"}))
    said: list[str] = []
    Trainer(cfg, tmp_path / "r", progress=False, log=said.append).run()
    lines = [s for s in said if s.startswith("train: ")]
    assert [LINE.match(s)[1] for s in lines] == ["2", "3"], lines  # every 2nd step and the last one
    assert "val " in lines[0]
