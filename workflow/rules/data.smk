# Data. Scale tiny: the embedded task's splits (luffy make-task). Scale paper: the OpenR1
# training prompts with their R1 traces, the held-out prompts of SFT->RL and the in-training
# validation parquet (method §3); the benchmark parquets are read in place by the eval rule.


rule section_config:
    """The effective config (or one section of it) as YAML: the provenance of a results folder
    and the input of the rule that reads the section."""
    output:
        f"{R}/config/{{section}}.yaml",
    log:
        f"{R}/logs/config_{{section}}.log",
    wildcard_constraints:
        section="workflow|task|tiny_model",
    localrule: True
    params:
        content=lambda wildcards: (
            config if wildcards.section == "workflow" else config[wildcards.section]
        ),
    run:
        write_yaml(params.content, output[0], log[0])


if SCALE == "tiny":

    rule make_task:
        """The tiny task: train, held-out train_rl, test_id, out-of-distribution test_ood and the
        warm-up's copy of train (task.warmup_trace_every)."""
        input:
            f"{R}/config/task.yaml",
        output:
            train=data_file("train"),
            train_rl=data_file("train_rl"),
            test_id=data_file("test_id"),
            test_ood=data_file("test_ood"),
            warmup=data_file("warmup"),
            info=data_file("info"),
        log:
            f"{R}/logs/make_task.log",
        conda:
            CONDA_ENV
        container:
            CONTAINER
        threads: RES["data"]["threads"]
        resources:
            **res("data"),
        params:
            luffy=LUFFY,
            out=lambda wildcards, output: Path(output.info).parent,
        shell:
            "logged {log} {params.luffy} make-task --config {input} --out {params.out}"


if SCALE == "paper":

    rule fetch_paper_data:
        """OpenR1-Math-46k-8192 (train), its 48k complement (SFT->RL) and valid.parquet."""
        output:
            train=data_file("train"),
            train_rl=data_file("train_rl"),
            val=data_file("val"),
            info=data_file("info"),
        log:
            f"{R}/logs/fetch_paper_data.log",
        localrule: True  # a download: runs on the submitting host (compute nodes may be offline)
        conda:
            CONDA_ENV
        container:
            CONTAINER
        threads: RES["data"]["threads"]
        resources:
            **res("data"),
        params:
            luffy=LUFFY,
            train=config["paper_data"]["train_dataset"],
            complement=config["paper_data"]["complement_dataset"],
            eval_dir=config["paper_data"]["eval_dir"],
            out=lambda wildcards, output: Path(output.info).parent,
        shell:
            "logged {log} {params.luffy} fetch-data --train-dataset {params.train}"
            " --complement-dataset {params.complement} --eval-dir {params.eval_dir}"
            " --out {params.out}"
