import shlex

from vem.data.paper_datasets import DATASET_OF


rule fetch_fmnist:
    output:
        expand(
            "resources/fmnist/{f}.gz",
            f=[
                "train-images-idx3-ubyte",
                "train-labels-idx1-ubyte",
                "t10k-images-idx3-ubyte",
                "t10k-labels-idx1-ubyte",
            ],
        ),
    log:
        "logs/fetch_fmnist.log",
    benchmark:
        "results/benchmarks/fetch_fmnist.tsv"
    conda:
        "../../envs/vem.yaml"
    params:
        source=(
            f"--source {shlex.quote(config['fmnist_dir'])}"
            if config["fmnist_dir"]
            else ""
        ),
    message:
        "Copy Fashion-MNIST (Debian's dataset-fashion-mnist or fmnist_dir) into resources/"
    shell:
        "python -m vem fetch-fmnist --out resources/fmnist {params.source} > {log} 2>&1"


rule prepare_data:
    input:
        rules.fetch_fmnist.output,
    output:
        "resources/data/{task}.npz",
    log:
        "logs/prepare_data/{task}.log",
    benchmark:
        "results/benchmarks/prepare_data/{task}.tsv"
    conda:
        "../../envs/vem.yaml"
    message:
        "Build the {wildcards.task} task from Fashion-MNIST"
    shell:
        "python -m vem prepare-data --task {wildcards.task} --fmnist resources/fmnist "
        "--out {output} > {log} 2>&1"


rule prepare_paper_data:
    input:
        lambda w: f"resources/datasets/{DATASET_OF[w.task]}/.complete",
    output:
        "resources/data/{task}.json",
    log:
        "logs/prepare_data/{task}.log",
    benchmark:
        "results/benchmarks/prepare_data/{task}.tsv"
    wildcard_constraints:
        task="|".join(DATASET_OF),
    conda:
        "../../envs/vem.yaml"
    params:
        dataset=lambda w: f"resources/datasets/{DATASET_OF[w.task]}",
    message:
        "Index the {wildcards.task} images (held-out val split from train)"
    shell:
        "python -m vem prepare-paper-data --task {wildcards.task} --dataset {params.dataset} "
        "--out {output} > {log} 2>&1 || {{ grep '^vem: error' {log} >&2; exit 1; }}"
