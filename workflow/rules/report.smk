# Reports: tables (Markdown, CSV, LaTeX), figures (PNG, PDF) and the claims (CSV, Markdown), pure
# functions of the runs' metrics.jsonl / resolved_config.yaml and the evaluations' suite.json
# (luffy.report). The evaluations are those of report.checkpoint (final or best_val) of each run.


rule table:
    """Table 1 (methods), Table 4 (ablations) and the gamma sweep as a table."""
    input:
        lambda wildcards: report_inputs(wildcards.table),
    output:
        md=f"{R}/reports/{{table}}.md",
        csv=report(
            f"{R}/reports/{{table}}.csv",
            caption="../report/table.rst",
            category="Tables",
            labels={"table": "{table}"},
        ),
        tex=f"{R}/reports/{{table}}.tex",
    log:
        f"{R}/logs/report/table_{{table}}.log",
    wildcard_constraints:
        table="|".join(TABLE_GROUPS),
    localrule: True
    conda:
        CONDA_ENV
    container:
        CONTAINER
    threads: RES["report"]["threads"]
    resources:
        **res("report"),
    params:
        luffy=LUFFY,
        scale=SCALE,
        args=lambda wildcards: report_args(wildcards.table),
        out=lambda wildcards, output: Path(output.md).with_suffix(""),
    shell:
        "logged {log} {params.luffy} report table --kind {wildcards.table} --scale {params.scale}"
        " {params.args} --out {params.out}"


rule figure:
    """One figure (PNG for reading, PDF for papers)."""
    input:
        lambda wildcards: report_inputs(wildcards.kind),
    output:
        png=report(
            f"{R}/reports/figures/{{kind}}.png",
            caption="../report/figure.rst",
            category="Figures",
            labels={"figure": "{kind}"},
        ),
        pdf=f"{R}/reports/figures/{{kind}}.pdf",
    log:
        f"{R}/logs/report/figure_{{kind}}.log",
    wildcard_constraints:
        kind="|".join(FIGURE_KINDS),
    localrule: True
    conda:
        CONDA_ENV
    container:
        CONTAINER
    threads: RES["report"]["threads"]
    resources:
        **res("report"),
    params:
        luffy=LUFFY,
        scale=SCALE,
        args=lambda wildcards: report_args(wildcards.kind),
        out=lambda wildcards, output: Path(output.png).with_suffix(""),
    shell:
        "logged {log} env MPLBACKEND=Agg {params.luffy} report figure --kind {wildcards.kind}"
        " --scale {params.scale} {params.args} --out {params.out}"


rule claims:
    """The paper's claims tested on the runs: claims.csv (the five claims) and claims.md (those and
    other comparisons), from the evaluations of report.checkpoint and the runs' metrics.jsonl.
    """
    input:
        claims_inputs(),
    output:
        csv=report(
            f"{R}/reports/claims.csv",
            caption="../report/claims.rst",
            category="Claims",
        ),
        md=f"{R}/reports/claims.md",
    log:
        f"{R}/logs/report/claims.log",
    localrule: True
    conda:
        CONDA_ENV
    container:
        CONTAINER
    threads: RES["report"]["threads"]
    resources:
        **res("report"),
    params:
        luffy=LUFFY,
        args=claims_args(),
        out=lambda wildcards, output: Path(output.md).with_suffix(""),
    shell:
        "logged {log} {params.luffy} report claims {params.args} --out {params.out}"
