"""Print the figures written by `make reliability` (one JSON per test) as the Markdown tables of
RELIABILITY.md.  Usage: python scripts/reliability_table.py results/reliability"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(folder: str) -> int:
    root = Path(folder)
    if not root.is_dir():
        print(f"reliability_table: {root}: no such folder (run `make reliability` first)", file=sys.stderr)
        return 2
    load = {p.stem: json.loads(p.read_text()) for p in sorted(root.glob("*.json"))}
    trials = [v for k, v in load.items() if k.startswith("kill_trial_")]
    if trials:
        print("| trial | kill | at | checkpoint at kill | resumed from | weights bitwise equal | metrics equal "
              "| no process left |")
        print("|---|---|---|---|---|---|---|---|")
        for t in trials:
            at = (f"step {t['step']}" if "step" in t
                  else f"{t['delay_s']} s after step {t.get('after_step', 0)}")
            print(f"| {t['trial']} | {t['kind']} | {at} | {t['checkpoint_at_kill']} | {t['resumed_from']} "
                  f"| {t['weights_equal']} | {t['metrics_equal']} | {t['orphans_gone']} |")
        ok = sum(t["weights_equal"] and t["metrics_equal"] for t in trials)
        print(f"\n{ok}/{len(trials)} trials resumed to the uninterrupted result.\n")
    attacks = [v for k, v in load.items() if k.startswith("grader_attack_")]
    if attacks:
        print("| grader | answers | ok | timeout | error | slowest answer (s) | wall (s) | workers replaced |")
        print("|---|---|---|---|---|---|---|---|")
        for a in attacks:
            s = a["status"]
            print(f"| {a['grader']} | {a['answers']} | {s.get('ok', 0)} | {s.get('timeout', 0)} | "
                  f"{s.get('error', 0)} | {a['max_answer_s']} | {a['wall_s']} | {a['workers_replaced']} |")
        print()
    for key in ("malformed_inputs", "determinism", "snakemake_resume"):
        if key in load:
            v = load[key]
            if key == "malformed_inputs":
                print(f"malformed inputs: {v['cases']} cases, each one line, exit 2")
            else:
                print(f"{key}: {json.dumps(v)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "results/reliability"))
