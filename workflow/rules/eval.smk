# Evaluation of the base model ("base") and of every run's final model on the benchmark suite
# (tiny: test_id and test_ood; paper: six math benchmarks and three OOD ones, spec §5.2).


rule evaluate:
    input:
        model=lambda wildcards: model_marker(wildcards.model),
        # the test splits (tiny); the paper's benchmark files are read in place
        data=[data_file("test_id"), data_file("test_ood")] if SCALE == "tiny" else [],
    output:
        f"{R}/eval/{{model}}/suite.json",
    log:
        f"{R}/logs/eval/{{model}}.log",
    wildcard_constraints:
        model=f"base|{RUN_WILDCARD}",
    conda:
        CONDA_ENV
    threads: RES["eval"]["threads"]
    resources:
        **res("eval"),
    params:
        model=lambda wildcards: model_dir(wildcards.model),
        out=lambda wildcards, output: Path(output[0]).parent,
        args=eval_args,
    shell:
        "OMP_NUM_THREADS={threads} python -m luffy evaluate --model {params.model}"
        " --out {params.out} {params.args} --no-progress > {log} 2>&1"
