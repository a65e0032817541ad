"""The Snakemake workflow: dry runs of every config, lint, format, and bad input stopping before any job.

These call the workflow driver ``.venv-wf/bin/snakemake`` (created by scripts/setup.sh) in a
subprocess from the repository root; each call takes a few seconds.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WF_BIN = ROOT / ".venv-wf" / "bin"


def tool(name: str) -> Path:
    path = WF_BIN / name
    if not path.is_file():
        pytest.fail(f"{path} is missing: create the workflow environment with `bash scripts/setup.sh`")
    return path


def snakemake(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([str(tool("snakemake")), *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, check=False)


def dry(tmp_path, *args: str) -> tuple[subprocess.CompletedProcess, str]:
    """A dry run writing nowhere near results/ (so existing results cannot change the job list)."""
    out = str(tmp_path / "results")
    return snakemake(*args, "-n", "--config", f"results={out}"), out


def job_counts(output: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run: rule -> number of jobs."""
    table = output.split("Job stats:")[1].split("Reasons:")[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.MULTILINE)}


def test_tiny_default_dry_run_lists_the_whole_grid(tmp_path):
    r, _ = dry(tmp_path, "all")
    assert r.returncode == 0, r.stderr + r.stdout
    counts = job_counts(r.stdout)
    # 9 experiments of Tables 1 and 4 x 3 seeds and the 4 other gammas x 1 seed; both checkpoints of
    # every run and the warmed base model evaluated; 3 tables; 7 figures; the claims
    assert counts["train"] == 9 * 3 + 4 and counts["evaluate"] == 62 and counts["evaluate_base"] == 1
    assert counts["table"] == 3 and counts["figure"] == 7 and counts["claims"] == 1
    assert counts["make_task"] == 1 and counts["build_base_model"] == 1 and counts["warm_up_base_model"] == 1


def test_smoke_dry_run_has_every_rule_type(tmp_path):
    r, out = dry(tmp_path, "all", "--configfile=config/smoke.yaml")
    assert r.returncode == 0, r.stderr + r.stdout
    counts = job_counts(r.stdout)
    for rule in ("section_config", "make_task", "build_base_model", "warm_up_base_model", "train", "evaluate",
                 "evaluate_base", "table", "figure", "claims", "all"):
        assert counts.get(rule, 0) >= 1, f"smoke DAG lacks rule {rule}"
    assert f"{out}/runs/sft_rl-s0/summary.json" in r.stdout


def test_sft_rl_starts_from_the_sft_model_of_the_same_seed(tmp_path):
    out = str(tmp_path / "results")
    r, out = dry(tmp_path, f"{out}/runs/sft_rl-s0/summary.json", "-p")
    assert r.returncode == 0, r.stderr + r.stdout
    cmd = next(line for line in r.stdout.splitlines() if f"--out {out}/runs/sft_rl-s0" in line)
    assert f"--set model.path={out}/runs/sft-s0/model" in cmd
    assert f"--set data.train={out}/data/train_rl.jsonl" in cmd
    assert "--set train.seed=0" in cmd
    assert f"{out}/runs/sft-s0/summary.json" in r.stdout  # the SFT run is in the DAG


def test_paper_dry_run_with_slurm_profile_requests_gpus(tmp_path):
    r, _ = dry(tmp_path, "all", "--configfile=config/paper.yaml", "--profile", "slurm")
    assert r.returncode == 0, r.stderr + r.stdout
    counts = job_counts(r.stdout)
    assert counts["train"] == 13 and counts["evaluate"] == 26 and counts["evaluate_base"] == 1
    assert counts["fetch_paper_data"] == 1 and counts["resolve_base_model"] == 1
    train_jobs = [block for block in r.stdout.split("\nrule ")[1:] if block.startswith("train:")]
    assert len(train_jobs) == 13
    for block in train_jobs:
        assert "gpu=8" in block and "cpus_per_gpu=8" in block and "runtime=2880" in block
    eval_jobs = [block for block in r.stdout.split("\nrule ")[1:] if block.startswith("evaluate")]
    assert len(eval_jobs) == 27 and all("gpu=4" in block for block in eval_jobs)
    assert "Using profile slurm" in r.stderr


def test_every_paper_train_job_trains_on_its_gpus_with_one_worker_each(tmp_path):
    """A job that reserves GPUs must not train on the CPU: Ray + FSDP2 on CUDA, one worker per GPU,
    each with its own vLLM engine (the hybrid engine)."""
    r, _ = dry(tmp_path, "all", "-p", "--configfile=config/paper.yaml", "--profile", "slurm")
    assert r.returncode == 0, r.stderr + r.stdout
    blocks = [b for b in r.stdout.split("\nrule ")[1:] if b.startswith("train:")]
    assert len(blocks) == 13
    for block in blocks:
        gpus = int(re.search(r"\bgpu=(\d+)", block)[1])
        (cmd,) = shell_commands(block)
        sets = dict(re.findall(r"--set '?resources\.(\w+)=([^' ]+)", cmd))
        assert gpus > 0 and sets.get("backend") == "ray" and sets.get("device") == "cuda", (gpus, sets)
        assert int(sets["workers_per_node"]) * int(sets.get("nodes", 1)) == gpus, (gpus, sets)
        assert sets["cpus_per_worker"] == "8"
        assert "--set rollout.placement=workers" in cmd, cmd
    evals = [c for c in shell_commands(r.stdout) if "luffy evaluate" in c]
    assert evals and all("--set replicas=4 --set cpus_per_replica=8" in c for c in evals), evals[:1]


def shell_commands(output: str) -> list[str]:
    """The shell commands of a dry run with -p."""
    return [line.removeprefix("Shell command: ") for line in output.splitlines() if line.startswith("Shell command: ")]


def test_both_checkpoints_are_evaluated_and_best_val_reuses_final(tmp_path):
    out = str(tmp_path / "results")
    r, out = dry(tmp_path, f"{out}/eval/luffy-s0/best_val/suite.json", "-p")
    assert r.returncode == 0, r.stderr + r.stdout
    cmds = [c for c in shell_commands(r.stdout) if "luffy evaluate" in c]
    final, best = cmds  # the final evaluation first: best_val waits for it
    assert f"--model {out}/runs/luffy-s0/model --out {out}/eval/luffy-s0/final" in final
    assert "--checkpoint-label final" in final and "--reuse-samples" not in final
    assert f"--model {out}/runs/luffy-s0/best_val --out {out}/eval/luffy-s0/best_val" in best
    assert f"--checkpoint-label best_val --reuse-samples {out}/eval/luffy-s0/final" in best
    r, _ = dry(tmp_path, f"{out}/eval/base/suite.json", "-p")
    (base,) = [c for c in shell_commands(r.stdout) if "luffy evaluate" in c]
    assert f"--out {out}/eval/base " in base and "--checkpoint-label base" in base


def test_the_default_warmup_trains_on_the_tasks_warmup_split(tmp_path):
    r, out = dry(tmp_path, "all", "-p")
    assert r.returncode == 0, r.stderr + r.stdout
    (warmup,) = [c for c in shell_commands(r.stdout) if f"--out {out}/models/warm " in c]
    assert f"--set data.train={out}/data/warmup.jsonl " in warmup
    (make_task,) = [c for c in shell_commands(r.stdout) if "luffy make-task" in c]
    assert f"--out {out}/data" in make_task


def test_warmup_makes_the_warmed_model_every_methods_start_and_the_base_row(tmp_path):
    warm = tmp_path / "warm.yaml"
    warm.write_text(yaml.safe_dump({"base_model": {"source": "build", "warmup": {
        "experiment": "sft", "seed": 3, "set": ["train.epochs=2", "optim.lr=6e-4"]}}}))
    r, out = dry(tmp_path, "all", "-p", f"--configfile={warm}")
    assert r.returncode == 0, r.stderr + r.stdout
    counts = job_counts(r.stdout)
    assert counts["warm_up_base_model"] == 1 and counts["build_base_model"] == 1 and counts["train"] == 31
    cmds = shell_commands(r.stdout)
    (warmup,) = [c for c in cmds if f"--out {out}/models/warm " in c]
    assert "luffy train --config config/experiments/tiny/sft.yaml" in warmup
    for s in ("train.seed=3", f"model.path={out}/models/base", "train.epochs=2", "optim.lr=6e-4"):
        assert f"--set {s} " in warmup
    trains = [c for c in cmds if "luffy train" in c and c is not warmup]
    starts = [c for c in trains if "/runs/sft_rl-s" not in c]  # sft_rl starts from the sft run
    assert len(starts) == 28 and all(f"--set model.path={out}/models/warm/model " in c for c in starts)
    (base,) = [c for c in cmds if "luffy evaluate" in c and "--checkpoint-label base" in c]
    assert f"--model {out}/models/warm/model --out {out}/eval/base " in base


def test_an_experiments_own_seeds_replace_the_top_level_seeds(tmp_path):
    cfg = tmp_path / "seeds.yaml"
    cfg.write_text(yaml.safe_dump({"seeds": [0, 1, 2], "experiments": {"gamma_0.2": {"seeds": [5]}}}))
    r, out = dry(tmp_path, "all", "-p", f"--configfile={cfg}")
    assert r.returncode == 0, r.stderr + r.stdout
    counts = job_counts(r.stdout)
    # the other gammas keep the default study's one seed
    assert counts["train"] == 9 * 3 + 3 + 1 and counts["evaluate"] == 2 * counts["train"]
    trains = [c for c in shell_commands(r.stdout) if "luffy train" in c]
    assert [c for c in trains if "/runs/gamma_0.2-s" in c] == [c for c in trains if "/runs/gamma_0.2-s5 " in c]
    assert len([c for c in trains if "/runs/gamma_0.2-s5 " in c]) == 1
    r = snakemake("-n", f"--configfile={cfg}", "--config", f"results={out}", "experiments={gamma_0.2: {seeds: []}}")
    assert r.returncode != 0 and "experiments.gamma_0.2.seeds: [] should be non-empty" in r.stdout + r.stderr


def test_a_bad_warmup_stops_before_any_job(tmp_path):
    out = stopped_before_any_job(bad(tmp_path, {"base_model": {"source": "build", "warmup": {"experiment": "sftt"}}}))
    assert "base_model.warmup.experiment: no experiment file" in out and "sftt.yaml" in out
    bad_set = {"base_model": {"source": "build", "warmup": {"experiment": "sft", "set": ["train.epochz=2"]}}}
    assert "base_model.warmup: " in stopped_before_any_job(bad(tmp_path, bad_set))


def test_report_checkpoint_key_chooses_the_evaluations_of_the_reports(tmp_path):
    out = str(tmp_path / "results")
    r, out = dry(tmp_path, "table1", "-p")
    assert r.returncode == 0, r.stderr + r.stdout
    (table,) = [c for c in shell_commands(r.stdout) if "luffy report table" in c]
    assert "--checkpoint best_val" in table and f"luffy={out}/eval/luffy-s0/best_val/suite.json" in table
    assert f"base={out}/eval/base/suite.json" in table
    final = tmp_path / "final.yaml"
    final.write_text(yaml.safe_dump({"report": {"checkpoint": "final"}}))
    r, _ = dry(tmp_path, "table1", "claims", "-p", f"--configfile={final}")
    assert r.returncode == 0, r.stderr + r.stdout
    cmds = shell_commands(r.stdout)
    (table,) = [c for c in cmds if "luffy report table" in c]
    (claims,) = [c for c in cmds if "luffy report claims" in c]
    for cmd in (table, claims):
        assert "--checkpoint final" in cmd and "best_val/suite.json" not in cmd
    assert f"{out}/eval/luffy-s0/final/suite.json" in table
    final.write_text(yaml.safe_dump({"report": {"checkpoint": "last"}}))
    out = stopped_before_any_job(snakemake("-n", f"--configfile={final}", "--", "all"))
    assert "report.checkpoint: 'last' is not one of ['best_val', 'final']" in out


def test_seeds_on_the_command_line_and_claims_inputs(tmp_path):
    """--config seeds=[...] (strings to Snakemake) works; the claims get every seed of the experiments
    luffy.report.claims compares, paired by seed, and the runs' folders for the entropy claim."""
    from luffy.report.claims import EVAL_NAMES, RUN_NAMES

    out = str(tmp_path / "results")
    r = snakemake("-n", "-p", "--config", f"results={out}", "seeds=[0,1,2]", "--", "claims")
    assert r.returncode == 0, r.stderr + r.stdout
    counts = job_counts(r.stdout)
    assert counts["train"] == 4 * 3 and counts["evaluate"] == 4 * 3 * 2 and counts["claims"] == 1
    (claims,) = [c for c in shell_commands(r.stdout) if "luffy report claims" in c]
    evals = re.findall(r"--eval (\w+)(?:@(\d+))?=(\S+)", claims)
    runs = re.findall(r"--run (\w+)@(\d+)=(\S+)", claims)
    assert {n for n, _, _ in evals} == set(EVAL_NAMES) and {n for n, _, _ in runs} == set(RUN_NAMES)
    assert sorted(s for n, s, _ in evals if n == "luffy") == ["0", "1", "2"]
    assert ("luffy", "2", f"{out}/eval/luffy-s2/best_val/suite.json") in evals
    assert ("base", "", f"{out}/eval/base/suite.json") in evals
    assert ("mixed_clip", "1", f"{out}/runs/mixed_clip-s1") in runs
    assert claims.startswith(f"logged {out}/logs/report/claims.log {ROOT}/.venv/bin/python -m luffy report claims "
                             "--checkpoint best_val ")
    assert claims.endswith(f"--out {out}/reports/claims")


def test_multi_node_train_jobs_start_a_ray_cluster_over_their_allocation(tmp_path):
    """resources.train.nodes > 1: the job runs under scripts/ray-slurm.sh with the Ray backend, one
    worker per GPU of a node (gres); asking for a per-job gpu total instead stops before any job."""
    two = tmp_path / "two_nodes.yaml"
    two.write_text(yaml.safe_dump({"resources": {"train": {
        "threads": 64, "gpu": 0, "gres": "gpu:8", "nodes": 2, "mem_mb": 512000, "runtime": 2880}}}))
    r, _ = dry(tmp_path, "all", "--profile", "slurm", "-p", "--configfile", "config/paper.yaml", str(two))
    assert r.returncode == 0, r.stderr + r.stdout
    train_jobs = [block for block in r.stdout.split("\nrule ")[1:] if block.startswith("train:")]
    assert len(train_jobs) == 13
    for block in train_jobs:
        assert "nodes=2" in block and "gres=gpu:8" in block
        assert f"bash scripts/ray-slurm.sh {ROOT}/.venv/bin/python -m luffy train" in block
        assert ("--set resources.backend=ray --set resources.nodes=2 --set resources.device=cuda "
                "--set resources.workers_per_node=8") in block
    two.write_text(yaml.safe_dump({"resources": {"train": {
        "threads": 64, "gpu": 16, "nodes": 2, "mem_mb": 512000, "runtime": 2880}}}))
    r = snakemake("-n", "--configfile", "config/paper.yaml", str(two), "--", "all")
    out = stopped_before_any_job(r)
    assert ("resources.train.gpu: with resources.train.nodes > 1 set gpu: 0 and ask for GPUs per node "
            "with gres") in out
    one = [block for block in dry(tmp_path, "all", "-p")[0].stdout.split("\nrule ")[1:]
           if block.startswith("train:")]
    assert one and not any("ray-slurm" in block or "resources.backend" in block for block in one)


def test_named_targets_resolve(tmp_path):
    for target, rule in (("table1", "table"), ("ablations", "figure"), ("gamma_sweep", "figure"),
                         ("figures", "figure"), ("claims", "claims")):
        r, _ = dry(tmp_path, target)
        assert r.returncode == 0, r.stderr + r.stdout
        assert rule in job_counts(r.stdout)


def test_lint_is_clean():
    r = snakemake("--lint")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Congratulations, your workflow is in a good condition!" in r.stdout + r.stderr
    r = snakemake("--lint", "--configfile=config/paper.yaml")
    assert "Congratulations, your workflow is in a good condition!" in r.stdout + r.stderr, r.stdout + r.stderr


def test_snakefmt_is_clean():
    files = ["Snakefile", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "workflow").rglob("*.smk"))]
    r = subprocess.run([str(tool("snakefmt")), "--check", *files], cwd=ROOT, capture_output=True, text=True,
                       timeout=60, check=False)
    assert r.returncode == 0, r.stderr


def bad(tmp_path, overrides: dict, *, dry_run: bool = True) -> subprocess.CompletedProcess:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml.safe_dump({"results": str(tmp_path / "results"), **overrides}))
    return snakemake("all", *(["-n"] if dry_run else ["--cores", "1"]), f"--configfile={cfg}")


def stopped_before_any_job(r: subprocess.CompletedProcess) -> str:
    assert r.returncode != 0
    assert "Job stats" not in r.stdout and "Building DAG" not in r.stdout + r.stderr
    return r.stdout + r.stderr


def test_typo_in_a_config_key_stops_with_its_name(tmp_path):
    out = stopped_before_any_job(bad(tmp_path, {"seedz": [0, 1]}))
    assert "luffy workflow: config error: <top level>: Additional properties are not allowed ('seedz' was unexpected)" in out
    out = stopped_before_any_job(bad(tmp_path, {"experiments": {"sft_rl": {"init_frm": "sft"}}}))
    assert "experiments.sft_rl: Additional properties are not allowed ('init_frm' was unexpected)" in out


def test_unknown_experiment_stops_with_its_name(tmp_path):
    out = stopped_before_any_job(bad(tmp_path, {"groups": {"table1": ["luffy", "luffyy"]}}))
    assert "groups.table1: unknown experiment 'luffyy'" in out
    out = stopped_before_any_job(bad(tmp_path, {"experiments": {"luffy_v2": {}}}))
    assert "experiments.luffy_v2: no experiment file config/experiments/tiny/luffy_v2.yaml" in out


def test_missing_base_model_stops_with_its_path(tmp_path):
    local = {"base_model": {"source": "local", "path": "models/nowhere"}}
    out = stopped_before_any_job(bad(tmp_path, local))
    assert "luffy workflow: config error: base_model.path 'models/nowhere': incomplete model folder: no such folder" in out
    out = stopped_before_any_job(bad(tmp_path, {"base_model": {"source": "hub"}}))
    assert "base_model.path: a path is required when base_model.source is local or hub" in out


def test_incomplete_base_model_folder_names_what_is_missing(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    local = {"base_model": {"source": "local", "path": str(folder)}}
    assert "incomplete model folder: no tokenizer" in stopped_before_any_job(bad(tmp_path, local, dry_run=False))
    (folder / "tokenizer.json").write_text("{}")
    (folder / "model.safetensors.index.json").write_text('{"weight_map": {"a": "model-00001-of-00002.safetensors"}}')
    out = stopped_before_any_job(bad(tmp_path, local, dry_run=False))
    assert "1 of 1 weight shards listed in model.safetensors.index.json are missing (model-00001-of-00002" in out


def test_missing_benchmark_data_stops_a_paper_run_before_any_job(tmp_path):
    paper = {"paper_data": {"train_dataset": "a/b", "complement_dataset": "a/c", "eval_dir": str(tmp_path / "none")}}
    files = ["--configfile", "config/paper.yaml", str(_yaml(tmp_path, paper)), "--"]
    out = stopped_before_any_job(snakemake("--cores", "1", *files, "all"))
    assert f"paper_data.eval_dir '{tmp_path / 'none'}': folder not found" in out
    (tmp_path / "none").mkdir()
    out = stopped_before_any_job(snakemake("--cores", "1", *files, "all"))
    assert "valid.all.parquet missing (benchmark aime24)" in out
    r = snakemake("-n", *files, "all")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "luffy workflow: warning: paper_data.eval_dir" in r.stderr


def _yaml(tmp_path, content: dict) -> Path:
    path = tmp_path / "extra.yaml"
    path.write_text(yaml.safe_dump({"results": str(tmp_path / "results"), **content}))
    return path


@pytest.mark.parametrize(("overrides", "message"), [
    ({"scale": "paper"}, "scale: base_model.source 'build' (the tiny model) needs scale tiny"),
    ({"scale": "paper", "base_model": {"source": "hub", "path": "Qwen/Qwen2.5-Math-7B"}},
     "<top level>: scale paper needs paper_data with train_dataset, complement_dataset and eval_dir"),
])
def test_schema_rules_across_keys_stop_with_the_rule_in_words(tmp_path, overrides, message):
    assert message in stopped_before_any_job(bad(tmp_path, overrides))


def test_a_bad_experiment_file_stops_before_any_job(tmp_path):
    """luffy check-config reads every experiment file as a run config (with the overrides applied)."""
    out = stopped_before_any_job(bad(tmp_path, {"experiments": {"luffy": {"set": ["train.stepz=2"]}}}))
    assert ("luffy workflow: config error: experiments.luffy: config/experiments/tiny/luffy.yaml: "
            "train.stepz: unknown key") in out
    assert "Traceback" not in out


def bare_path(tmp_path) -> dict[str, str]:
    """An environment whose PATH holds bash and which (what snakemake itself needs) and nothing else."""
    bin_dir = tmp_path / "bare-bin"
    bin_dir.mkdir(exist_ok=True)
    for tool_name in ("bash", "sh", "which"):
        if not (bin_dir / tool_name).exists():
            (bin_dir / tool_name).symlink_to(shutil.which(tool_name))
    return {"PATH": str(bin_dir), "HOME": os.environ.get("HOME", "/tmp")}


def test_checks_run_without_any_project_environment_on_path(tmp_path):
    """The rules and the config check use the `python` key, not PATH: a bare PATH still checks."""
    env = bare_path(tmp_path)
    cfg = _yaml(tmp_path, {"groups": {"table1": ["luffyy"]}})
    r = subprocess.run([str(tool("snakemake")), "-n", f"--configfile={cfg}", "--", "table1"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120, check=False)
    assert "groups.table1: unknown experiment 'luffyy'" in stopped_before_any_job(r)


def test_a_missing_runtime_stops_with_the_key_and_the_fix(tmp_path):
    r = snakemake("-n", "--config", f"results={tmp_path}", "python=envs/nowhere/bin/python", "--", "table1")
    out = stopped_before_any_job(r)
    assert "luffy workflow: pre-flight: python: envs/nowhere/bin/python not found: run `make setup`" in out


def test_slurm_profile_without_slurm_commands_stops_at_once(tmp_path):
    """Not a dry run, no sbatch on PATH: one line before any submission (the plugin would retry ~40 s)."""
    env = bare_path(tmp_path)
    cmd = [str(tool("snakemake")), "--profile", "slurm", "--configfile=config/smoke.yaml", "--config",
           f"results={tmp_path / 'results'}", "--", "all"]
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False)
    out = stopped_before_any_job(r)
    assert "luffy workflow: pre-flight: the Slurm profile submits with sbatch, which is not on PATH" in out
    r = subprocess.run([*cmd[:1], "-n", *cmd[1:]], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
                       check=False)
    assert r.returncode == 0, r.stdout + r.stderr  # a dry run plans without Slurm


def test_unknown_run_target_is_refused(tmp_path):
    out = str(tmp_path / "results")
    r, _ = dry(tmp_path, f"{out}/runs/luffyy-s0/summary.json")
    assert r.returncode != 0
    assert f"{out}/runs/luffyy-s0/summary.json" in r.stdout + r.stderr


def test_schema_lists_the_fields_of_the_library_configs():
    """task / tiny_model in the schema = the pydantic models' fields (a typo is caught before any job)."""
    from luffy.data.synthetic import SplitSpec, TaskConfig
    from luffy.model.tiny import TinyModelConfig

    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    props = schema["properties"]
    assert set(props["task"]["properties"]) == set(TaskConfig.model_fields)
    assert set(schema["$defs"]["split_spec"]["properties"]) == set(SplitSpec.model_fields)
    assert set(props["tiny_model"]["properties"]) == set(TinyModelConfig.model_fields)
