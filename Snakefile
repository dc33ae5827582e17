# GAN compression x mutual-information add-ons: the benchmark DAG.
#   snakemake --cores all                       # every table of config/config.yaml (embedded suite)
#   snakemake --cores all results/table4.csv    # one table
#   snakemake --cores all --configfile config/smoke.yaml   # CI-sized run of the same DAG

from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


# ---- load rules -------------------------------------------------------------------------------------
include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/evalnets.smk"
include: "workflow/rules/teachers.smk"
include: "workflow/rules/methods.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/paper_data.smk"


# ---- targets ----------------------------------------------------------------------------------------
rule all:
    default_target: True
    input:
        expand("results/table{n}.csv", n=config.get("tables", [1, 2, 3, 4, 5])),
        PLAN.figures(),
        ["results/control.csv"] if PLAN.control_metrics() else [],
        [f"results/tuning/{m}.csv" for m in PLAN.tuning_methods()],
        "results/latency.csv",
        "results/leaderboard.html",
        "results/summary.md",


onstart:
    start_forkserver()


onsuccess:
    stop_forkserver()
    print(all_done_message())


onerror:
    stop_forkserver()
