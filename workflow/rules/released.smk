# The released checkpoints (config `released`: a name of Table 1's rows -> hub id or local model
# folder, e.g. luffy: Elliott/LUFFY-Qwen-Math-7B-Zero), evaluated with the suite of the study and
# tabulated next to the base model: `snakemake released` regenerates those rows of Table 1
# without training. The download runs on the submitting host (a local rule): compute nodes often
# have no internet.


rule fetch_released_model:
    """A released model, copied or downloaded as it is (no config edit, its own chat template)."""
    output:
        f"{R}/models/released/{{name}}/model_card.json",
    log:
        f"{R}/logs/fetch_released/{{name}}.log",
    wildcard_constraints:
        name=RELEASED_WILDCARD,
    localrule: True
    conda:
        CONDA_ENV
    container:
        CONTAINER
    params:
        luffy=LUFFY,
        source=lambda wildcards: RELEASED[wildcards.name],
        out=lambda wildcards, output: Path(output[0]).parent,
    shell:
        "logged {log} {params.luffy} resolve-model --base {params.source} --out {params.out}"


rule evaluate_released:
    input:
        model=f"{R}/models/released/{{name}}/model_card.json",
        data=[data_file("test_id"), data_file("test_ood")] if SCALE == "tiny" else [],
    output:
        f"{R}/eval/released/{{name}}/suite.json",
    log:
        f"{R}/logs/eval/released/{{name}}.log",
    benchmark:
        f"{R}/benchmarks/eval/released/{{name}}.tsv"
    wildcard_constraints:
        name=RELEASED_WILDCARD,
    conda:
        CONDA_ENV
    container:
        CONTAINER
    threads: RES["eval"]["threads"]
    resources:
        **res("eval"),
    params:
        luffy=LUFFY,
        model=lambda wildcards, input: Path(input.model).parent,
        out=lambda wildcards, output: Path(output[0]).parent,
        args=released_eval_args,
    shell:
        "logged {log} env OMP_NUM_THREADS={threads} {params.luffy} evaluate --model {params.model}"
        " --out {params.out} {params.args} --no-progress"


rule released_table:
    """Table 1's layout with the base model and the released checkpoints (paper numbers beside)."""
    input:
        [suite_file("base")] + [released_suite(n) for n in RELEASED],
    output:
        table_files("released"),
    log:
        f"{R}/logs/report/table_released.log",
    localrule: True
    conda:
        CONDA_ENV
    container:
        CONTAINER
    params:
        luffy=LUFFY,
        scale=SCALE,
        args=released_table_args(),
        out=lambda wildcards, output: Path(output[0]).with_suffix(""),
    shell:
        "logged {log} {params.luffy} report table --kind table1 --scale {params.scale} --checkpoint released"
        " {params.args} --out {params.out}"


rule released:
    """The released checkpoints' rows of Table 1, without training (config key `released`)."""
    input:
        table_files("released") if RELEASED else [],
    localrule: True
