# Training: one job per run = experiment x seed, e.g. results/tiny/runs/luffy-s0. The run's
# settings are config/experiments/<scale>/<experiment>.yaml; the workflow sets the seed, the
# model (base, or the init_from experiment's final model) and the data files.
#
# Only summary.json (written last by the trainer) is a declared output. checkpoints/ and model/
# are not: Snakemake deletes the outputs of failed or restarted jobs, and a rerun must find the
# checkpoints to resume from (the trainer resumes by itself). resolved_config.yaml and
# metrics.jsonl sit next to summary.json.


rule train:
    input:
        unpack(train_inputs),
    output:
        f"{R}/runs/{{run}}/summary.json",
    log:
        f"{R}/logs/train/{{run}}.log",
    benchmark:
        f"{R}/benchmarks/train/{{run}}.tsv"
    wildcard_constraints:
        run=RUN_WILDCARD,
    conda:
        CONDA_ENV
    container:
        CONTAINER
    threads: RES["train"]["threads"]
    resources:
        **res("train"),
    params:
        luffy=LUFFY,
        out=lambda wildcards, output: Path(output[0]).parent,
        sets=train_sets,
        launcher=TRAIN_LAUNCHER,
    shell:
        TRAIN_SHELL
