rule train_classifier_net:
    input:
        rules.fetch_fmnist.output,
    output:
        net="results/evalnets/{kind}.pt",
        quality="results/evalnets/{kind}.json",
    log:
        "logs/train_evalnet/{kind}.log",
    benchmark:
        "results/benchmarks/train_evalnet/{kind}.tsv"
    wildcard_constraints:
        kind="feature|perceptual",
    conda:
        "../../envs/vem.yaml"
    threads: 1
    params:
        seed=config["evalnet_seed"],
        overrides=PLAN.overrides_json("evalnet"),
    message:
        "Train the {wildcards.kind} network on real Fashion-MNIST train images"
    shell:
        "python -m vem train-evalnet --kind {wildcards.kind} --fmnist resources/fmnist "
        "--seed {params.seed} --threads {threads} --overrides {params.overrides:q} "
        "--out {output.net} --quality {output.quality} > {log} 2>&1"


rule train_segmenter:
    input:
        data="resources/data/fmnist_scenes.npz",
    output:
        net="results/evalnets/segmenter.pt",
        quality="results/evalnets/segmenter.json",
    log:
        "logs/train_evalnet/segmenter.log",
    benchmark:
        "results/benchmarks/train_evalnet/segmenter.tsv"
    conda:
        "../../envs/vem.yaml"
    threads: 1
    params:
        seed=config["evalnet_seed"],
        overrides=PLAN.overrides_json("evalnet"),
    message:
        "Train the scenes segmenter (DRN-D-105 role) on real train scenes"
    shell:
        "python -m vem train-evalnet --kind segmenter --task fmnist_scenes --data {input.data} "
        "--seed {params.seed} --threads {threads} --overrides {params.overrides:q} "
        "--out {output.net} --quality {output.quality} > {log} 2>&1"


rule real_stats:
    input:
        data=lambda w: PLAN.data_file(w.task),
        featnet=lambda w: PLAN.evalnet(w.task),
    output:
        stats="results/stats/{task}.npz",
        images="results/stats/{task}_real.zip",
    log:
        "logs/real_stats/{task}.log",
    benchmark:
        "results/benchmarks/real_stats/{task}.tsv"
    conda:
        "../../envs/vem.yaml"
    threads: 1
    params:
        overrides=PLAN.overrides_json("evaluate"),
    message:
        "Real feature statistics of {wildcards.task}"
    shell:
        "python -m vem real-stats --task {wildcards.task} --data {input.data} --featnet {input.featnet} "
        "--threads {threads} --overrides {params.overrides:q} --images {output.images} --out {output.stats} > {log} 2>&1 "
        "|| {{ grep '^vem: error' {log} >&2; exit 1; }}"
