# Helpers of the luffy workflow: config checks, names and paths. No rules here (the inputs and
# arguments of single rules are in job_args.smk).
#
# Bad config stops the workflow before the DAG with one line naming the key or file: first the
# schema (workflow/schemas/config.schema.yaml: keys, types, rules across keys), then
# `python -m luffy check-config` (luffy.workflow_config: experiment names and files, init_from
# chains, the base model), found on PATH as in every rule.

import importlib.util
import re
import shlex
import subprocess
import sys
from pathlib import Path

import yaml
from snakemake.utils import validate

# the library's YAML reader by file path: this environment has PyYAML, not the luffy package
_spec = importlib.util.spec_from_file_location(
    "luffy_yamlfile", Path(workflow.basedir, "src/luffy/utils/yamlfile.py")
)
yamlfile = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(yamlfile)
SCHEMA = Path(workflow.basedir, "workflow/schemas/config.schema.yaml")


def config_error(msg):
    sys.exit(f"luffy workflow: config error: {msg}")


# `--config seeds=[0,1,2]` arrives as strings: Snakemake reads --config values with YAML's BaseLoader
if isinstance(config.get("seeds"), list):
    config["seeds"] = [
        int(s) if isinstance(s, str) and s.isdigit() else s for s in config["seeds"]
    ]

try:
    validate(config, schema=str(SCHEMA))  # also sets the schema's defaults
except Exception as e:
    err = e.__cause__ or e.__context__  # jsonschema's ValidationError
    if not hasattr(err, "absolute_path"):
        raise
    where = ".".join(str(p) for p in err.absolute_path) or "<top level>"
    if err.schema_path[0] == "allOf":  # a check across keys: say it in words
        why = yaml.safe_load(SCHEMA.read_text())["allOf"][err.schema_path[1]]
        config_error(f"{where}: {why['description']} ({err.message})")
    config_error(f"{where}: {err.message}")

if workflow.is_main_process:  # once, not again in every job
    cmd, stdin = "python -m luffy check-config -", yaml.safe_dump(config)
    r = subprocess.run(cmd, shell=True, input=stdin, capture_output=True, text=True)
    if r.returncode == 127 or "No module named luffy" in r.stderr:
        sys.stderr.write("luffy workflow: luffy not on PATH, config checks skipped\n")
    elif r.returncode:
        msg = (r.stderr.strip().splitlines() or ["no output"])[-1]
        if r.returncode == 2:  # a known problem, in one line naming the key or file
            config_error(msg.removeprefix("luffy: error: "))
        config_error(f"`{cmd}` failed: {msg}")

SCALE, R, SEEDS, BASE, RES = (
    config[k] for k in ("scale", "results", "seeds", "base_model", "resources")
)
EXPERIMENTS = {name: (spec or {}) for name, spec in config["experiments"].items()}
GROUPS, FIGURES = config["groups"], config["figures"]
CONDA_ENV = {"cpu": "../../envs/luffy.yaml", "gpu": "../../envs/luffy-gpu.yaml"}[
    config["software_env"]
]
NODES = RES["train"].get("nodes", 1)  # > 1: every train job runs on a Ray cluster
# A run's checkpoints (label -> folder in the run; luffy train writes both), all evaluated; the
# tables, figures and claims show the one of report.checkpoint (the paper's: best_val).
CHECKPOINTS = {"final": "model", "best_val": "best_val"}
REPORT_CHECKPOINT = config["report"]["checkpoint"]
# The experiments the claims compare (luffy.report.claims.EVAL_NAMES and RUN_NAMES; a test keeps
# them equal), those of the config only: a missing one is a row that does not hold, not an error.
CLAIM_EVALS = [
    e for e in ("luffy", "on_policy", "sft", "mixed_clip") if e in EXPERIMENTS
]
CLAIM_RUNS = [e for e in ("luffy", "on_policy", "mixed_clip") if e in EXPERIMENTS]

# Logical data files per scale (an experiment's train_split names one of them).
DATA_FILES = {
    "tiny": {
        "train": "train.jsonl",
        "train_rl": "train_rl.jsonl",
        "val": "test_id.jsonl",
        "test_id": "test_id.jsonl",
        "test_ood": "test_ood.jsonl",
        "info": "task.json",
    },
    "paper": {
        "train": "openr1.parquet",
        "train_rl": "openr1.complement.parquet",
        "val": "valid.parquet",
        "info": "data.json",
    },
}[SCALE]

# A run is <experiment>-s<seed>; only the config's experiments match (names have no '-').
RUN_WILDCARD = f"(?:{'|'.join(re.escape(e) for e in EXPERIMENTS)})-s[0-9]+"
TABLE_GROUPS = {"table1": "table1", "table4": "ablations", "gamma": "gamma_sweep"}
FIGURE_KINDS = list(FIGURES) + ["ablations", "gamma_sweep", "shaping"]
LOCAL_BASE = BASE["source"] == "local"
BASE_DIR = BASE["path"] if LOCAL_BASE else f"{R}/models/base"
# the file that says a model is complete (a run's: summary.json, the trainer's last write)
BASE_MARKER = f"{BASE_DIR}/{'config' if LOCAL_BASE else 'model_card'}.json"


def run_dir(run):
    return f"{R}/runs/{run}"


def model_dir(name, checkpoint="final"):  # "base" or a run
    return BASE_DIR if name == "base" else f"{run_dir(name)}/{CHECKPOINTS[checkpoint]}"


def model_marker(name):
    return BASE_MARKER if name == "base" else f"{run_dir(name)}/summary.json"


def data_file(key):
    return f"{R}/data/{DATA_FILES[key]}"


def seeded(experiments, path):
    """(experiment, path(run)) for every seed of every experiment."""
    return [(e, path(f"{e}-s{s}")) for e in experiments for s in SEEDS]


def suite_file(name, checkpoint=None):
    """The base model's evaluation, or a run's of ``checkpoint`` (default: report.checkpoint)."""
    if name == "base":
        return f"{R}/eval/base/suite.json"
    return f"{R}/eval/{name}/{checkpoint or REPORT_CHECKPOINT}/suite.json"


def table_files(kind):
    return [f"{R}/reports/{kind}.{ext}" for ext in ("md", "csv", "tex")]


def figure_files(kind):
    return [f"{R}/reports/figures/{kind}.{ext}" for ext in ("png", "pdf")]


def claims_files():
    return [f"{R}/reports/claims.{ext}" for ext in ("csv", "md")]


def all_targets():
    """Every table and figure, the claims, and the evaluations of the base model and of both
    checkpoints of every run in use."""
    named = [n for t in (GROUPS, FIGURES) for names in t.values() for n in names]
    runs = [run for _, run in seeded(dict.fromkeys(named + CLAIM_EVALS), str)]
    out = [f"{R}/config/workflow.yaml", suite_file("base")]
    out += [suite_file(run, c) for run in runs for c in CHECKPOINTS]
    out += [f for kind in TABLE_GROUPS for f in table_files(kind)]
    return (
        out + [f for kind in FIGURE_KINDS for f in figure_files(kind)] + claims_files()
    )


def res(kind):
    """Scheduler resources of a rule kind (threads are set with the threads directive)."""
    return {k: v for k, v in RES[kind].items() if k != "threads"}
