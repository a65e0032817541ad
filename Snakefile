# luffy: the whole study as one DAG -- data -> base model -> training runs -> evaluation ->
# tables and figures. Run it from the repository root (docs/workflow.md):
#
#   snakemake --cores 2 all                                          # the tiny default (CPU)
#   snakemake --cores 2 --configfile=config/smoke.yaml all           # a few steps of everything
#   snakemake --profile slurm all                                    # the paper, on Slurm (the profile selects config/paper.yaml)
#
# Named targets: all, table1, ablations, gamma_sweep, figures, claims, released (the released
# checkpoints, config key `released`), prestage (downloads only), and any output path, e.g.
# results/tiny/runs/luffy-s0/summary.json (one run) or results/tiny/eval/luffy-s0/best_val/suite.json
# (its best-validation checkpoint; final/suite.json: its final model).


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/job_args.smk"


shell.prefix(SHELL_PREFIX.replace("{", "{{").replace("}", "}}"))  # Snakemake formats it


include: "workflow/rules/data.smk"
include: "workflow/rules/model.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/eval.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/released.smk"


rule all:
    default_target: True
    input:
        all_targets(),
    localrule: True


rule prestage:
    """Every download, and nothing else: run it on a host with internet before a cluster run
    (`snakemake --cores 1 prestage`); the download rules are local rules anyway."""
    input:
        prestage_targets(),
    localrule: True


rule table1:
    """Paper Table 1: the base model and the methods on every benchmark."""
    input:
        table_files("table1"),
    localrule: True


rule ablations:
    """Paper Table 4 and the ablation bar chart."""
    input:
        table_files("table4"),
        figure_files("ablations"),
    localrule: True


rule gamma_sweep:
    """The shaping-parameter sweep (paper Fig. 9) as a table and a figure."""
    input:
        table_files("gamma"),
        figure_files("gamma_sweep"),
    localrule: True


rule figures:
    """Every figure."""
    input:
        [figure_files(kind) for kind in FIGURE_KINDS],
    localrule: True
