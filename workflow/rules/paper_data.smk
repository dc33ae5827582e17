# Paper preset: real datasets and metric-network weights. Nothing else in the DAG downloads; these rules
# run only when a paper-scale target needs them (or are asked for by name), e.g.
#   snakemake --cores 1 resources/datasets/horse2zebra/.complete
#   snakemake --cores 1 resources/weights/pt_inception-2015-12-05-6726825d.pth

import re

from vem.data.paper_datasets import DATASETS, WEIGHTS

WEIGHT_FILES = {w["file"]: name for name, w in WEIGHTS.items()}


rule paper_dataset:
    output:
        "resources/datasets/{dataset}/.complete",
    log:
        "logs/paper_dataset/{dataset}.log",
    benchmark:
        "results/benchmarks/paper_dataset/{dataset}.tsv"
    wildcard_constraints:
        dataset="|".join(re.escape(d) for d in DATASETS),
    conda:
        "../../envs/vem.yaml"
    params:
        manual=config.get("manual_downloads", "resources/downloads/manual"),
    message:
        "Download, verify and extract the {wildcards.dataset} dataset"
    shell:
        "python -m vem dataset --name {wildcards.dataset} --out resources/datasets/{wildcards.dataset} "
        "--cache resources/downloads --manual-dir {params.manual} > {log} 2>&1 "
        "|| {{ grep '^vem: error' {log} >&2; exit 1; }}"


rule metric_weights:
    output:
        "resources/weights/{wfile}",
    log:
        "logs/metric_weights/{wfile}.log",
    wildcard_constraints:
        wfile="|".join(re.escape(f) for f in WEIGHT_FILES),
    conda:
        "../../envs/vem.yaml"
    params:
        name=lambda w: WEIGHT_FILES[w.wfile],
        path=lambda w: (
            f"--path {config['weights'][WEIGHT_FILES[w.wfile]]}"
            if (config.get("weights") or {}).get(WEIGHT_FILES[w.wfile])
            else ""
        ),
    message:
        "Put the {params.name} weights in place (download, or the path in config weights.{params.name})"
    shell:
        "python -m vem weights --name {params.name} --out {output} {params.path} > {log} 2>&1 "
        "|| {{ grep '^vem: error' {log} >&2; exit 1; }}"
