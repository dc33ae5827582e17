rule train_teacher:
    input:
        data=lambda w: PLAN.data_file(w.task),
        evalnet=lambda w: PLAN.evalnet(w.task),
    output:
        generator="results/teachers/{task}/{role}/generator.pt",
        curve="results/teachers/{task}/{role}/curve.csv",
    log:
        "logs/train_teacher/{task}-{role}.log",
    benchmark:
        "results/benchmarks/train_teacher/{task}-{role}.tsv"
    conda:
        "../../envs/vem.yaml"
    threads: 1
    params:
        seed=config["teacher_seed"],
        overrides=PLAN.overrides_json("teacher"),
        every=config["checkpoint_every"],
    message:
        "Train the {wildcards.role} teacher of {wildcards.task}"
    shell:
        "python -m vem train-teacher --task {wildcards.task} --role {wildcards.role} --data {input.data} "
        "--evalnet {input.evalnet} --seed {params.seed} --threads {threads} --overrides {params.overrides:q} "
        "--checkpoint-every {params.every} --out {output.generator} --curve {output.curve} > {log} 2>&1"


rule evaluate_teacher:
    input:
        unpack(real_stats_for),
        generator=lambda w: PLAN.teacher_path(w.task),
        data=lambda w: PLAN.data_file(w.task),
        evalnet=lambda w: PLAN.evalnet(w.task),
    output:
        metrics="results/teachers/{task}/original/metrics.json",
        images="results/teachers/{task}/original/images.zip",
        samples="results/teachers/{task}/original/samples.png",
    log:
        "logs/evaluate_teacher/{task}.log",
    benchmark:
        "results/benchmarks/evaluate_teacher/{task}.tsv"
    conda:
        "../../envs/vem.yaml"
    threads: 1
    params:
        stats=real_stats_arg,
        curve=lambda w: (
            f"--curve results/teachers/{w.task}/original/curve.csv"
            if PLAN.teacher_path(w.task).startswith("results/")
            else ""
        ),
        overrides=PLAN.overrides_json("evaluate"),
    message:
        "Evaluate the Original model of {wildcards.task} on the test split"
    shell:
        "python -m vem evaluate --task {wildcards.task} --method original --generator {input.generator} "
        "{params.curve} --data {input.data} --evalnet {input.evalnet} {params.stats} --threads {threads} "
        "--overrides {params.overrides:q} --images {output.images} --samples {output.samples} --out {output.metrics} > {log} 2>&1"


rule import_teacher:
    output:
        "resources/teachers/{source}/generator.pt",
    log:
        "logs/import_teacher/{source}.log",
    wildcard_constraints:
        source="(gan_compression|cagc)/[a-z0-9_]+/[a-z0-9_-]+",
    conda:
        "../../envs/vem.yaml"
    params:
        path=lambda w: (
            f"--path {config['weights'][w.source]}"
            if (config.get("weights") or {}).get(w.source)
            else ""
        ),
    message:
        "Import the released full generator {wildcards.source} (checksum-verified)"
    shell:
        "python -m vem import-teacher --name {wildcards.source} --out {output} {params.path} > {log} 2>&1 "
        "|| {{ grep '^vem: error' {log} >&2; exit 1; }}"
