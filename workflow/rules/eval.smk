# Evaluation on the benchmark suite (tiny: test_id and test_ood; paper: six math benchmarks and
# three OOD ones, method §5.2) of the base model and of both checkpoints of every run: final
# (model/) and best_val (best_val/, the best validation after step 0). The best_val job starts
# after the final one and copies its samples when the weights are the same (best_val.json's step
# is the last step), saying so in suite.json under reused_samples.


rule evaluate_base:
    input:
        model=BASE_MARKER,
        # the test splits (tiny); the paper's benchmark files are read in place
        data=[data_file("test_id"), data_file("test_ood")] if SCALE == "tiny" else [],
    output:
        suite_file("base"),
    log:
        f"{R}/logs/eval/base.log",
    benchmark:
        f"{R}/benchmarks/eval/base.tsv"
    conda:
        CONDA_ENV
    container:
        CONTAINER
    threads: RES["eval"]["threads"]
    resources:
        **res("eval"),
    params:
        luffy=LUFFY,
        model=base_model_dir,
        out=lambda wildcards, output: Path(output[0]).parent,
        args=eval_args,
    shell:
        "logged {log} env OMP_NUM_THREADS={threads} {params.luffy} evaluate --model {params.model}"
        " --out {params.out} {params.args} --no-progress"


rule evaluate:
    input:
        unpack(eval_inputs),
    output:
        f"{R}/eval/{{run}}/{{checkpoint}}/suite.json",
    log:
        f"{R}/logs/eval/{{run}}/{{checkpoint}}.log",
    benchmark:
        f"{R}/benchmarks/eval/{{run}}/{{checkpoint}}.tsv"
    wildcard_constraints:
        run=RUN_WILDCARD,
        checkpoint="|".join(CHECKPOINTS),
    conda:
        CONDA_ENV
    container:
        CONTAINER
    threads: RES["eval"]["threads"]
    resources:
        **res("eval"),
    params:
        luffy=LUFFY,
        model=lambda wildcards: model_dir(wildcards.run, wildcards.checkpoint),
        out=lambda wildcards, output: Path(output[0]).parent,
        args=eval_args,
    shell:
        "logged {log} env OMP_NUM_THREADS={threads} {params.luffy} evaluate --model {params.model}"
        " --out {params.out} {params.args} --no-progress"
