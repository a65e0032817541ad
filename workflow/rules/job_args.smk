# The inputs and command-line arguments of single rules (train, evaluate, table, figure,
# section_config), computed from the checked config and the names and paths of common.smk.
# Functions only: Snakemake's linter wants them apart from the rules.


def start_model(run):
    """(experiment, seed, the model the run starts from: "base" or its init_from's run)."""
    exp, seed = run.rsplit("-s", 1)
    seed = int(seed)
    parent = EXPERIMENTS[exp].get("init_from")
    return exp, seed, f"{parent}-s{seed}" if parent else "base"


def train_inputs(wildcards):
    """The experiment file and every file it inherits from (their edits rerun the run)."""
    exp, _, start = start_model(wildcards.run)
    chain = yamlfile.inherit_chain(f"config/experiments/{SCALE}/{exp}.yaml")
    return {
        "config": str(chain[0]),
        "inherited": [str(p) for p in chain[1:]],
        "model": model_marker(start),
        "train": data_file(EXPERIMENTS[exp].get("train_split", "train")),
        "val": data_file("val"),
    }


def multi_node_sets():
    """On > 1 node: the Ray backend over the nodes, one worker per GPU of a node (gres: gpu:<n>)."""
    if NODES == 1:
        return []
    sets = ["resources.backend=ray", f"resources.nodes={NODES}"]
    m = re.fullmatch(r"gpu(?::[A-Za-z0-9_.-]+)?:([0-9]+)", RES["train"].get("gres", ""))
    if m:
        sets += ["resources.device=cuda", f"resources.workers_per_node={m.group(1)}"]
    return sets


def train_sets(wildcards, input):
    """The run's `luffy train --set` overrides."""
    exp, seed, start = start_model(wildcards.run)
    sets = [
        f"train.seed={seed}",
        f"model.path={model_dir(start)}",
        f"data.train={input.train}",
        f"data.val={input.val}",
        *multi_node_sets(),
        *config.get("train_overrides", []),
        *EXPERIMENTS[exp].get("set", []),
    ]
    return " ".join(f"--set {shlex.quote(s)}" for s in sets)


def eval_args(wildcards):
    ev = config["eval"]
    args = ["--suite", ev["suite"]]
    if ev.get("config"):
        args += ["--config", ev["config"]]
    tiny = SCALE == "tiny"
    args += ["--data", f"{R}/data" if tiny else config["paper_data"]["eval_dir"]]
    return shlex.join(args + ev.get("args", []))


def report_pairs(kind):
    """The (experiment, path) pairs a table or figure reads: suite.json files (--eval) and run
    folders (--run), every seed of an experiment under its name; shaping is analytic."""
    if kind in FIGURES:  # training dynamics
        return [], seeded(FIGURES[kind], run_dir)
    # the tables, and the ablations and gamma_sweep figures
    evals = GROUPS.get(TABLE_GROUPS.get(kind, kind), [])
    runs = evals if kind in ("gamma", "gamma_sweep") else []
    base = [("base", suite_file("base"))] if kind == "table1" else []
    return base + seeded(evals, suite_file), seeded(runs, run_dir)


def report_inputs(kind):
    evals, runs = report_pairs(kind)
    return [p for _, p in evals] + [f"{p}/summary.json" for _, p in runs]


def report_args(kind):
    evals, runs = report_pairs(kind)
    opts = [f"--eval {shlex.quote(f'{n}={p}')}" for n, p in evals]
    return " ".join(opts + [f"--run {shlex.quote(f'{n}={p}')}" for n, p in runs])


def write_yaml(content, path, log):
    """The section_config rule's body: dump ``content`` to ``path`` and say so in ``log``."""
    Path(path).write_text(yaml.safe_dump(content, sort_keys=False), encoding="utf-8")
    Path(log).write_text(f"wrote {path}\n", encoding="utf-8")
