# Helpers of the luffy workflow: config validation, run names, paths. No rules here.
#
# Everything a rule needs is computed from the validated config. Problems that can be seen before
# any job runs (a typo in a config key, an unknown experiment, a missing base model or experiment
# file) stop the workflow here with one line naming the key, file or name.

import re
import shlex
import sys
from pathlib import Path

import yaml
from snakemake.utils import validate


def config_error(msg):
    """Stop before any job with one readable line (no traceback)."""
    sys.exit(f"luffy workflow: config error: {msg}")


def _validate_config():
    try:
        validate(config, schema="../schemas/config.schema.yaml")
    except Exception as e:
        # snakemake raises a WorkflowError while handling the jsonschema ValidationError
        err = e.__cause__ or e.__context__
        if not hasattr(err, "absolute_path"):
            raise
        where = ".".join(str(p) for p in err.absolute_path) or "<top level>"
        config_error(f"{where}: {err.message}")


_validate_config()

if not Path("config/experiments").is_dir():
    config_error("config/experiments not found: run snakemake from the repository root")

SCALE = config["scale"]
R = config["results"]
SEEDS = config["seeds"]
EXPERIMENTS = {name: (spec or {}) for name, spec in config["experiments"].items()}
GROUPS = config["groups"]
FIGURES = config["figures"]
BASE = config["base_model"]
RES = config["resources"]
CONDA_ENV = {"cpu": "../../envs/luffy.yaml", "gpu": "../../envs/luffy-gpu.yaml"}[
    config["software_env"]
]

# Logical data files per scale (the train rule maps an experiment's train_split onto them).
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

RUN_PATTERN = re.compile(r"^(?P<exp>[A-Za-z0-9_.]+)-s(?P<seed>[0-9]+)$")
# the same shape as a wildcard constraint (no groups): only experiments of the config match
RUN_WILDCARD = f"(?:{'|'.join(re.escape(e) for e in EXPERIMENTS)})-s[0-9]+"


# ----------------------------------------------------------------------------- config checks


def experiment_file(name):
    return f"config/experiments/{SCALE}/{name}.yaml"


def inherit_chain(path):
    """The experiment file and every file it inherits from (their edits rerun the run)."""
    chain, p = [], Path(path)
    while True:
        if p in chain:
            config_error(f"{path}: inherit cycle through {p}")
        if not p.is_file():
            config_error(
                f"{chain[-1] if chain else path}: inherited file {p} not found"
            )
        chain.append(p)
        try:
            parent = (yaml.safe_load(p.read_text(encoding="utf-8")) or {}).get(
                "inherit"
            )
        except yaml.YAMLError as e:
            config_error(f"{p}: not valid YAML ({str(e).splitlines()[0]})")
        if parent is None:
            return [str(c) for c in chain]
        p = Path(p.parent, parent)


def _check_experiments():
    known = sorted(EXPERIMENTS)
    for name, spec in EXPERIMENTS.items():
        f = experiment_file(name)
        if not Path(f).is_file():
            config_error(
                f"experiments.{name}: no experiment file {f} "
                f"(files there: {sorted(p.stem for p in Path(f).parent.glob('*.yaml'))})"
            )
        parent = spec.get("init_from")
        if parent is not None and parent not in EXPERIMENTS:
            config_error(
                f"experiments.{name}.init_from: unknown experiment '{parent}' (known: {known})"
            )
        if parent == name:
            config_error(
                f"experiments.{name}.init_from: an experiment cannot start from itself"
            )
    for section, table in (("groups", GROUPS), ("figures", FIGURES)):
        for key, names in table.items():
            for name in names:
                if name not in EXPERIMENTS:
                    config_error(
                        f"{section}.{key}: unknown experiment '{name}' (known: {known})"
                    )
    for name in EXPERIMENTS:  # init_from chains must end
        seen, cur = [], name
        while cur is not None:
            if cur in seen:
                config_error(
                    f"experiments.{name}.init_from: cycle {' -> '.join(seen + [cur])}"
                )
            seen.append(cur)
            cur = EXPERIMENTS[cur].get("init_from")


def _check_base_model():
    source, path = BASE["source"], BASE.get("path")
    if source == "build":
        if SCALE != "tiny":
            config_error("base_model.source 'build' exists only at scale tiny")
        if "tiny_model" not in config:
            config_error(
                "base_model.source is 'build' but the tiny_model section is missing"
            )
    elif not path:
        config_error(
            f"base_model.path is required when base_model.source is '{source}'"
        )
    elif source == "local" and not Path(path, "config.json").is_file():
        config_error(
            f"base_model.path '{path}': base model not found "
            "(expected a Hugging Face model folder containing config.json)"
        )


def _check_scale():
    if SCALE == "tiny" and "task" not in config:
        config_error("scale tiny needs the task section")
    if SCALE == "paper":
        missing = [
            k
            for k in ("train_dataset", "complement_dataset", "eval_dir")
            if k not in config.get("paper_data", {})
        ]
        if missing:
            config_error(f"scale paper needs paper_data.{missing[0]}")
    ev = config["eval"].get("config")
    if ev and not Path(ev).is_file():
        config_error(f"eval.config '{ev}': file not found")


_check_experiments()
_check_base_model()
_check_scale()


# ----------------------------------------------------------------------------- runs


def run_name(exp, seed):
    return f"{exp}-s{seed}"


def parse_run(run):
    m = RUN_PATTERN.match(run)
    if not m or m["exp"] not in EXPERIMENTS:
        raise ValueError(
            f"run '{run}': expected <experiment>-s<seed> with a known experiment"
        )
    return m["exp"], int(m["seed"])


def runs_of(experiments):
    return [run_name(e, s) for e in experiments for s in SEEDS]


def experiments_in_use():
    """Experiments named by a group or figure, in first-mention order."""
    names = []
    for table in (GROUPS, FIGURES):
        for members in table.values():
            names += [n for n in members if n not in names]
    return names


# ----------------------------------------------------------------------------- paths


def data_file(key):
    return f"{R}/data/{DATA_FILES[key]}"


def base_model_dir():
    return BASE["path"] if BASE["source"] == "local" else f"{R}/models/base"


def base_model_marker():
    """The file that says the base model is complete (config.json of a local folder)."""
    if BASE["source"] == "local":
        return f"{BASE['path']}/config.json"
    return f"{R}/models/base/model_card.json"


def run_dir(run):
    return f"{R}/runs/{run}"


def run_done(run):
    """summary.json is the trainer's last write: the done-marker of a run."""
    return f"{R}/runs/{run}/summary.json"


def model_dir(name):
    return base_model_dir() if name == "base" else f"{R}/runs/{name}/model"


def model_marker(name):
    return base_model_marker() if name == "base" else run_done(name)


def suite_file(name):
    return f"{R}/eval/{name}/suite.json"


def table_files(kind):
    return [f"{R}/reports/{kind}.{ext}" for ext in ("md", "csv", "tex")]


def figure_files(kind):
    return [f"{R}/reports/figures/{kind}.{ext}" for ext in ("png", "pdf")]


FIGURE_KINDS = list(FIGURES) + ["ablations", "gamma_sweep", "shaping"]


# ----------------------------------------------------------------------------- rule inputs / params


def train_inputs(wildcards):
    exp, seed = parse_run(wildcards.run)
    spec = EXPERIMENTS[exp]
    chain = inherit_chain(experiment_file(exp))
    parent = spec.get("init_from")
    return {
        "config": chain[0],
        "inherited": chain[1:],
        "model": run_done(run_name(parent, seed)) if parent else base_model_marker(),
        "train": data_file(spec.get("train_split", "train")),
        "val": data_file("val"),
    }


def train_nodes():
    return RES["train"].get("nodes", 1)


def _multi_node_sets():
    """Run-config overrides of a multi-node train job: the Ray backend over the allocation's nodes,
    one worker per GPU of a node (resources.train.gres = gpu:<n>)."""
    if train_nodes() == 1:
        return []
    sets = ["resources.backend=ray", f"resources.nodes={train_nodes()}"]
    m = re.fullmatch(r"gpu(?::[A-Za-z0-9_.-]+)?:([0-9]+)", RES["train"].get("gres", ""))
    if m:
        sets += ["resources.device=cuda", f"resources.workers_per_node={m.group(1)}"]
    return sets


def check_multi_node():
    res = RES["train"]
    if train_nodes() > 1 and res.get("gpu", 0) > 0:
        config_error(
            "resources.train: with nodes > 1 set gpu: 0 and ask for GPUs per node with gres "
            "(e.g. gres: gpu:8): the Slurm plugin's gpu is a per-job total that one node cannot hold"
        )


check_multi_node()


def train_launcher(wildcards):
    """Multi-node train jobs start a Ray cluster across their allocation first."""
    return "bash scripts/ray-slurm.sh " if train_nodes() > 1 else ""


def train_overrides(wildcards, input):
    exp, seed = parse_run(wildcards.run)
    spec = EXPERIMENTS[exp]
    parent = spec.get("init_from")
    sets = [
        f"train.seed={seed}",
        f"model.path={model_dir(run_name(parent, seed)) if parent else base_model_dir()}",
        f"data.train={input.train}",
        f"data.val={input.val}",
        *_multi_node_sets(),
        *config.get("train_overrides", []),
        *spec.get("set", []),
    ]
    return " ".join(f"--set {shlex.quote(s)}" for s in sets)


def eval_data(wildcards):
    """The test splits the evaluator reads (tiny); the paper's benchmark files are not produced."""
    return [data_file("test_id"), data_file("test_ood")] if SCALE == "tiny" else []


def eval_args(wildcards):
    args = ["--suite", config["eval"]["suite"]]
    if config["eval"].get("config"):
        args += ["--config", config["eval"]["config"]]
    if SCALE == "tiny":
        args += ["--data", f"{R}/data"]
    else:
        args += ["--data", config["paper_data"]["eval_dir"]]
    args += config["eval"].get("args", [])
    return " ".join(shlex.quote(a) for a in args)


def pairs(flag, mapping):
    """`--flag NAME=PATH` for every (name, path); repeated names are seeds of one experiment."""
    return " ".join(f"{flag} {shlex.quote(f'{n}={p}')}" for n, p in mapping)


def eval_pairs(experiments, with_base=False):
    out = [("base", suite_file("base"))] if with_base else []
    return out + [(e, suite_file(run_name(e, s))) for e in experiments for s in SEEDS]


def run_pairs(experiments):
    return [(e, run_dir(run_name(e, s))) for e in experiments for s in SEEDS]


TABLE_GROUPS = {"table1": "table1", "table4": "ablations", "gamma": "gamma_sweep"}


def table_inputs(wildcards):
    members = GROUPS[TABLE_GROUPS[wildcards.table]]
    evals = [p for _, p in eval_pairs(members, with_base=wildcards.table == "table1")]
    runs = [run_done(r) for r in runs_of(members)] if wildcards.table == "gamma" else []
    return evals + runs


def table_args(wildcards):
    members = GROUPS[TABLE_GROUPS[wildcards.table]]
    evals = pairs("--eval", eval_pairs(members, with_base=wildcards.table == "table1"))
    runs = pairs("--run", run_pairs(members)) if wildcards.table == "gamma" else ""
    return f"{evals} {runs}".strip()


def figure_inputs(wildcards):
    kind = wildcards.kind
    if kind in FIGURES:
        return [run_done(r) for r in runs_of(FIGURES[kind])]
    if kind == "ablations":
        return [p for _, p in eval_pairs(GROUPS["ablations"])]
    if kind == "gamma_sweep":
        members = GROUPS["gamma_sweep"]
        return [p for _, p in eval_pairs(members)] + [
            run_done(r) for r in runs_of(members)
        ]
    return []  # shaping: analytic


def figure_args(wildcards):
    kind = wildcards.kind
    if kind in FIGURES:
        return pairs("--run", run_pairs(FIGURES[kind]))
    if kind == "ablations":
        return pairs("--eval", eval_pairs(GROUPS["ablations"]))
    if kind == "gamma_sweep":
        members = GROUPS["gamma_sweep"]
        return f"{pairs('--eval', eval_pairs(members))} {pairs('--run', run_pairs(members))}"
    return ""


def all_targets():
    """Every table and figure, and the evaluation of the base model and of every run in use."""
    out = [f"{R}/config/workflow.yaml", suite_file("base")]
    out += [suite_file(r) for r in runs_of(experiments_in_use())]
    for kind in TABLE_GROUPS:
        out += table_files(kind)
    for kind in FIGURE_KINDS:
        out += figure_files(kind)
    return out


def write_yaml(content, path, log):
    """The section_config rule's body: dump ``content`` to ``path`` and say so in ``log``."""
    Path(path).write_text(yaml.safe_dump(content, sort_keys=False), encoding="utf-8")
    Path(log).write_text(f"wrote {path}\n", encoding="utf-8")


def res(kind):
    """Scheduler resources of a rule kind (threads are set with the threads directive)."""
    return {k: v for k, v in RES[kind].items() if k != "threads"}
