# The base model. Scale tiny: pretrain the tiny model on the task (luffy build-model). Scale
# paper: fetch Qwen2.5-Math-7B and apply the 16k-context config edit and the think chat
# template (method §8). A local base model (base_model.source: local) needs no rule. With
# base_model.warmup, every method starts from the pretrained model after that warm-up run.


if BASE["source"] == "build":

    rule build_base_model:
        """The tiny base model: knows the answer format, rarely the multi-step answer."""
        input:
            task=data_file("info"),
            train=data_file("train"),
            config=f"{R}/config/tiny_model.yaml",
        output:
            PRETRAINED_MARKER,
        log:
            f"{R}/logs/build_base_model.log",
        conda:
            CONDA_ENV
        container:
            CONTAINER
        threads: RES["model"]["threads"]
        resources:
            **res("model"),
        params:
            luffy=LUFFY,
            task=lambda wildcards, input: Path(input.task).parent,
            out=lambda wildcards, output: Path(output[0]).parent,
        shell:
            "logged {log} env OMP_NUM_THREADS={threads} {params.luffy} build-model --task {params.task}"
            " --config {input.config} --out {params.out}"


if BASE["source"] == "hub":

    rule resolve_base_model:
        """Download the hub model, then edit config.json (rope_theta, max_position_embeddings)
        and install the chat template, as the paper's "-16k-think" model (method §8).
        """
        output:
            PRETRAINED_MARKER,
        log:
            f"{R}/logs/resolve_base_model.log",
        localrule: True  # a download: runs on the submitting host (compute nodes may be offline)
        conda:
            CONDA_ENV
        container:
            CONTAINER
        threads: RES["model"]["threads"]
        resources:
            **res("model"),
        params:
            luffy=LUFFY,
            base=BASE["path"],
            edits=" ".join(
                f"--set {k}={v}" for k, v in BASE.get("context_edit", {}).items()
            ),
            template=(
                f"--chat-template {BASE['chat_template']}"
                if BASE.get("chat_template")
                else ""
            ),
            out=lambda wildcards, output: Path(output[0]).parent,
        shell:
            "logged {log} {params.luffy} resolve-model --base {params.base} {params.edits}"
            " {params.template} --out {params.out}"


if WARMUP:

    rule warm_up_base_model:
        """The model every method starts from: the pretrained base after a short run of the
        base_model.warmup experiment (e.g. a little SFT on the traces), a stand-in for a base
        that has seen some reasoning data before RL (docs/miniature-warm-base.md).
        """
        input:
            unpack(warmup_inputs),
        output:
            BASE_MARKER,
        log:
            f"{R}/logs/warm_up_base_model.log",
        benchmark:
            f"{R}/benchmarks/warm_up_base_model.tsv"
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
            sets=warmup_sets,
            launcher=TRAIN_LAUNCHER,
        shell:
            TRAIN_SHELL
