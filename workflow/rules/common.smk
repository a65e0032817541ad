# Helpers of the luffy workflow: config checks, the runtime, names and paths. No rules here (the
# inputs and arguments of single rules are in job_args.smk).
#
# Bad config stops the workflow before the DAG with one line naming the key or file: first the
# schema (workflow/schemas/config.schema.yaml: keys, types, rules across keys), then the
# pre-flight checks below and `luffy check-config` (luffy.workflow_config: experiment names and
# files, init_from chains, the base model folder, the benchmark data).

import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from snakemake.utils import validate

REPO = Path(workflow.basedir)


def library_module(name):
    """src/luffy/utils/<name>.py, loaded by file path: this environment has PyYAML, not the luffy package."""
    spec = importlib.util.spec_from_file_location(
        f"luffy_{name}", REPO / f"src/luffy/utils/{name}.py"
    )
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded


yamlfile = library_module("yamlfile")  # the library's YAML reader
datafiles = library_module("datafiles")  # the data files per scale
SCHEMA = REPO / "workflow/schemas/config.schema.yaml"


def config_error(msg):
    sys.exit(f"luffy workflow: config error: {msg}")


def preflight_error(msg):
    sys.exit(f"luffy workflow: pre-flight: {msg}")


# `--config seeds=[0,1,2]` arrives as strings: Snakemake reads --config values with YAML's BaseLoader
if isinstance(config.get("seeds"), list):
    config["seeds"] = [
        int(s) if isinstance(s, str) and s.isdigit() else s for s in config["seeds"]
    ]

# `base_model.warmup: null` (an overlay dropping an inherited warm-up) is the same as no warm-up
if (
    isinstance(config.get("base_model"), dict)
    and config["base_model"].get("warmup", 0) is None
):
    del config["base_model"]["warmup"]

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

# The runtime. The jobs run `<python> -m luffy <sub-command>` with the interpreter of the `python` key (an
# absolute path, so neither PATH nor the snakemake in use matter) or, under --sdm conda /
# apptainer, the `python` of the rule's environment. The package itself always comes from this
# checkout (PYTHONPATH), so the environments hold dependencies only.
DEPLOY = {m.name.lower() for m in workflow.deployment_settings.deployment_method}
OWN_ENV = sorted(DEPLOY & {"conda", "apptainer"})
PY = "python3" if OWN_ENV else str((REPO / config["python"]).absolute())
LUFFY = f"{shlex.quote(PY)} -m luffy"
RUNTIME_ENV = {**os.environ, "PYTHONPATH": str(REPO / "src")}
# `logged LOG CMD...`: CMD's output goes to LOG (this attempt; Snakemake empties it before a retry)
# and is appended, after a header line, to LOG's *.attempts.log (every attempt, never emptied).
LOGGED = (
    'logged() { local log="$1"; shift; local all="${log%.log}.attempts.log"; mkdir -p "$(dirname "$log")";'
    ' { echo "=== attempt started $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname)'
    ' (Slurm job ${SLURM_JOB_ID:-none}): $*"; "$@"; } 2>&1 | tee -a "$all" > "$log"; }; '
)
# the shell prefix of all jobs, set in the Snakefile (the linter wants shell settings beside the rules)
SHELL_PREFIX = (
    f"set -euo pipefail; export PYTHONPATH={shlex.quote(str(REPO / 'src'))}; {LOGGED}"
)
CONTAINER = config["container"]


def _argv_option(*names):
    """The value of a command-line option of this snakemake call (`--x v` or `--x=v`), else None."""
    argv = sys.argv[1:]
    for i, a in enumerate(argv):
        for n in names:
            if a == n and i + 1 < len(argv):
                return argv[i + 1]
            if a.startswith(f"{n}="):
                return a.split("=", 1)[1]
    return None


def uses_slurm():
    """True when this call submits to Slurm: `--executor slurm` or a profile that sets it."""
    if _argv_option("--executor", "-e") == "slurm":
        return True
    profile = _argv_option("--profile") or os.environ.get("SNAKEMAKE_PROFILE")
    if not profile:
        return False
    for folder in (Path(profile), Path.home() / ".config/snakemake" / profile):
        f = folder / "config.yaml"
        if f.is_file():
            return bool(re.search(r"^executor:\s*slurm\b", f.read_text(), re.M))
    return False


PLAN_ONLY = (
    "--dry-run",
    "--dryrun",
    "--lint",
    "--dag",
    "--rulegraph",
    "--filegraph",
    "--summary",
    "--detailed-summary",
    "--list",
    "--list-rules",
    "--list-target-rules",
    "--report",
)


def is_dry_run():
    """True when this call only plans or reports (-n, --lint, --dag, ...): nothing would run."""
    args = sys.argv[1:]
    short = [a for a in args if re.fullmatch(r"-[A-Za-z]+", a)]
    return any(a.split("=")[0] in PLAN_ONLY for a in args) or any(
        "n" in a for a in short
    )


def preflight():
    """One line and a non-zero exit for what would otherwise fail inside a job, much later."""
    if not OWN_ENV and not Path(PY).is_file():
        preflight_error(
            f"python: {config['python']} not found: run `make setup` (it builds .venv) or pass"
            " --config python=/path/to/python of an environment with luffy's dependencies"
        )
    if uses_slurm() and not is_dry_run():
        for cmd in ("sbatch", "squeue", "scancel"):
            if not shutil.which(cmd):
                preflight_error(
                    f"the Slurm profile submits with {cmd}, which is not on PATH: run on a"
                    " Slurm login node, or drop --profile slurm to run locally"
                )
    if (
        OWN_ENV
    ):  # the rules' environment does not exist yet: the jobs check their own configs
        sys.stderr.write(
            f"luffy workflow: --sdm {'/'.join(OWN_ENV)}: config checks run inside the jobs\n"
        )
        return
    # missing data is an error before a real run and a warning line in a dry run
    cmd = [
        PY,
        "-m",
        "luffy",
        "check-config",
        "-",
        "--data",
        "warn" if is_dry_run() else "error",
    ]
    r = subprocess.run(
        cmd,
        input=yaml.safe_dump(config),
        capture_output=True,
        text=True,
        env=RUNTIME_ENV,
        cwd=REPO,
    )
    for line in r.stderr.splitlines():
        if line.startswith("luffy: warning: "):
            sys.stderr.write(f"luffy workflow: {line.removeprefix('luffy: ')}\n")
    if r.returncode:
        msg = (r.stderr.strip().splitlines() or ["no output"])[-1]
        if r.returncode == 2:  # a known problem, in one line naming the key or file
            config_error(msg.removeprefix("luffy: error: "))
        preflight_error(f"`{shlex.join(cmd)}` failed: {msg}")


if workflow.is_main_process:  # once, not again in every job
    preflight()

SCALE, R, SEEDS, BASE, RES = (
    config[k] for k in ("scale", "results", "seeds", "base_model", "resources")
)
EXPERIMENTS = {name: (spec or {}) for name, spec in config["experiments"].items()}
GROUPS, FIGURES = config["groups"], config["figures"]
CONDA_ENV = {"cpu": "../../envs/luffy.yaml", "gpu": "../../envs/luffy-gpu.yaml"}[
    config["software_env"]
]
NODES = RES["train"].get("nodes", 1)  # > 1: every train job runs on a Ray cluster
# The command of every training job (runs and the base model's warm-up); multi-node jobs start a
# Ray cluster across their allocation first.
TRAIN_LAUNCHER = "bash scripts/ray-slurm.sh " if NODES > 1 else ""
TRAIN_SHELL = (
    "logged {log} env OMP_NUM_THREADS={threads} {params.launcher}{params.luffy} train"
    " --config {input.config} --out {params.out} {params.sets} --no-progress"
)
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
DATA_FILES = datafiles.DATA_FILES[SCALE]

# A run is <experiment>-s<seed>; only the config's experiments match (names have no '-').
RUN_WILDCARD = f"(?:{'|'.join(re.escape(e) for e in EXPERIMENTS)})-s[0-9]+"
TABLE_GROUPS = {"table1": "table1", "table4": "ablations", "gamma": "gamma_sweep"}
FIGURE_KINDS = list(FIGURES) + ["ablations", "gamma_sweep", "shaping"]
LOCAL_BASE = BASE["source"] == "local"
# The pretrained model (built, downloaded or local) and, with base_model.warmup, the warmed model
# every method starts from: the pretrained one after a short run of the warm-up experiment.
WARMUP = BASE.get("warmup")
PRETRAINED_DIR = BASE["path"] if LOCAL_BASE else f"{R}/models/base"
# the file that says a model is complete (a run's: summary.json, the trainer's last write)
PRETRAINED_MARKER = f"{PRETRAINED_DIR}/{'config' if LOCAL_BASE else 'model_card'}.json"
WARM_DIR = f"{R}/models/warm"
BASE_DIR = f"{WARM_DIR}/model" if WARMUP else PRETRAINED_DIR
BASE_MARKER = f"{WARM_DIR}/summary.json" if WARMUP else PRETRAINED_MARKER


# Released checkpoints (`snakemake released`): Table 1 row name -> hub id or local folder.
RELEASED = config["released"]
RELEASED_WILDCARD = "|".join(re.escape(n) for n in RELEASED) or "(?!)"


def released_suite(name):
    return f"{R}/eval/released/{name}/suite.json"


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
    return [(e, path(f"{e}-s{s}")) for e in experiments for s in seeds_of(e)]


def seeds_of(experiment):
    """The experiment's own seeds (experiments.<name>.seeds), else the top-level seeds."""
    return EXPERIMENTS[experiment].get("seeds", SEEDS)


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


def prestage_targets():
    """Every download of the config (paper data, a hub base model, released checkpoints)."""
    out = (
        [data_file(k) for k in ("train", "train_rl", "val", "info")]
        if SCALE == "paper"
        else []
    )
    if BASE["source"] == "hub":
        out.append(PRETRAINED_MARKER)
    return out + [f"{R}/models/released/{n}/model_card.json" for n in RELEASED]


def res(kind):
    """Scheduler resources of a rule kind (threads are set with the threads directive)."""
    return {k: v for k, v in RES[kind].items() if k != "threads"}
