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
    split = EXPERIMENTS[exp].get("train_split", "train")
    return run_inputs(exp, model_marker(start), split)


def warmup_inputs(wildcards):
    """The warm-up run's inputs: its experiment files, the pretrained model, its data."""
    split = WARMUP.get("train_split", "train")
    return run_inputs(WARMUP["experiment"], PRETRAINED_MARKER, split)


def run_inputs(experiment, model, split):
    chain = yamlfile.inherit_chain(f"config/experiments/{SCALE}/{experiment}.yaml")
    return {
        "config": str(chain[0]),
        "inherited": [str(p) for p in chain[1:]],
        "model": model,
        "train": data_file(split),
        "val": data_file("val"),
    }


def gpu_sets():
    """A train job given GPUs trains on them: the Ray backend with one FSDP2 worker per GPU, each
    with its share of the job's CPUs and its own vLLM engine (the hybrid engine,
    rollout.placement=workers). One node: `gpu: <n>`; more nodes: Ray over the nodes and
    `gres: gpu:<n>` per node (the Slurm plugin's gpu is a per-job total)."""
    train = RES["train"]
    per_worker = (
        [f"resources.cpus_per_worker={train['cpus_per_gpu']}"]
        if "cpus_per_gpu" in train
        else []
    )
    if NODES == 1:
        if not train.get("gpu"):
            return []
        return [
            "resources.backend=ray",
            "resources.device=cuda",
            f"resources.workers_per_node={train['gpu']}",
            "rollout.placement=workers",
            *per_worker,
        ]
    sets = ["resources.backend=ray", f"resources.nodes={NODES}"]
    m = re.fullmatch(r"gpu(?::[A-Za-z0-9_.-]+)?:([0-9]+)", train.get("gres", ""))
    if m:
        sets += [
            "resources.device=cuda",
            f"resources.workers_per_node={m.group(1)}",
            "rollout.placement=workers",
            *per_worker,
        ]
    return sets


def train_sets(wildcards, input):
    """The run's `luffy train --set` overrides."""
    exp, seed, start = start_model(wildcards.run)
    return run_sets(seed, model_dir(start), input, EXPERIMENTS[exp].get("set", []))


def warmup_sets(wildcards, input):
    """The warm-up run's overrides: its seed, the pretrained model, base_model.warmup.set."""
    return run_sets(WARMUP.get("seed", 0), PRETRAINED_DIR, input, WARMUP.get("set", []))


def base_model_dir(wildcards, input):
    """The base model's folder from its marker file: the warm-up run's model/, else the marker's folder."""
    folder = Path(input.model).parent
    return folder / "model" if WARMUP else folder


def run_sets(seed, model, input, extra):
    sets = [
        f"train.seed={seed}",
        f"model.path={model}",
        f"data.train={input.train}",
        f"data.val={input.val}",
        *gpu_sets(),
        *config.get("train_overrides", []),
        *extra,
    ]
    return " ".join(f"--set {shlex.quote(s)}" for s in sets)


def eval_inputs(wildcards):
    """A run's summary.json (its models are complete), the test splits (tiny; the paper's benchmark
    files are read in place) and, for best_val, the final model's evaluation to reuse.
    """
    out = {
        "model": model_marker(wildcards.run),
        "data": (
            [data_file("test_id"), data_file("test_ood")] if SCALE == "tiny" else []
        ),
    }
    if wildcards.checkpoint == "best_val":
        out["final"] = suite_file(wildcards.run, "final")
    return out


def suite_args(label, reuse=None):
    """``luffy evaluate`` arguments: the suite, its data, the checkpoint label and a folder of
    samples to reuse where the weights are the same."""
    ev = config["eval"]
    args = ["--suite", ev["suite"], "--checkpoint-label", label]
    if reuse:
        args += ["--reuse-samples", reuse]
    if ev.get("config"):
        args += ["--config", ev["config"]]
    tiny = SCALE == "tiny"
    args += ["--data", f"{R}/data" if tiny else config["paper_data"]["eval_dir"]]
    gpus = int(RES["eval"].get("gpu", 0) or 0)
    # one vLLM engine per GPU of the job (data-parallel; the samples do not change)
    if gpus > 1:
        args += ["--set", f"replicas={gpus}"]
        if "cpus_per_gpu" in RES["eval"]:
            args += ["--set", f"cpus_per_replica={RES['eval']['cpus_per_gpu']}"]
    return shlex.join(args + ev.get("args", []))


def eval_args(wildcards):
    """The base model's or a run's checkpoint's: a best_val evaluation reuses the final one's samples
    where the weights are the same (best_val.json's step = the last step: luffy evaluate compares
    the model's sha256 and the protocol)."""
    label = getattr(wildcards, "checkpoint", "base")
    reuse = None
    if label == "best_val":
        reuse = str(Path(suite_file(wildcards.run, "final")).parent)
    return suite_args(label, reuse)


def released_eval_args(wildcards):
    return suite_args("released")


def claims_pairs():
    """The claims' (NAME@SEED, path) pairs: evaluations (report.checkpoint; the base model once) and
    run folders, of the experiments in luffy.report.claims that the config has."""
    evals = [("base", suite_file("base"))]
    evals += [
        (f"{e}@{s}", suite_file(f"{e}-s{s}")) for e in CLAIM_EVALS for s in seeds_of(e)
    ]
    return evals, [
        (f"{e}@{s}", run_dir(f"{e}-s{s}")) for e in CLAIM_RUNS for s in seeds_of(e)
    ]


def claims_inputs():
    evals, runs = claims_pairs()
    return [p for _, p in evals] + [f"{p}/summary.json" for _, p in runs]


def claims_args():
    evals, runs = claims_pairs()
    opts = [f"--eval {shlex.quote(f'{n}={p}')}" for n, p in evals]
    opts += [f"--run {shlex.quote(f'{n}={p}')}" for n, p in runs]
    return " ".join([f"--checkpoint {REPORT_CHECKPOINT}", *opts])


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
    opts = [f"--checkpoint {REPORT_CHECKPOINT}"] if evals else []
    opts += [f"--eval {shlex.quote(f'{n}={p}')}" for n, p in evals]
    return " ".join(opts + [f"--run {shlex.quote(f'{n}={p}')}" for n, p in runs])


def write_yaml(content, path, log):
    """The section_config rule's body: dump ``content`` to ``path`` and say so in ``log``."""
    Path(path).write_text(yaml.safe_dump(content, sort_keys=False), encoding="utf-8")
    Path(log).write_text(f"wrote {path}\n", encoding="utf-8")


def released_table_args():
    evals = [("base", suite_file("base"))] + [(n, released_suite(n)) for n in RELEASED]
    return " ".join(f"--eval {shlex.quote(f'{n}={p}')}" for n, p in evals)
