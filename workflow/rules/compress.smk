rule compress:
    input:
        unpack(teacher_inputs),
        data=lambda w: data_file(w.task),
        perceptual=lambda w: perceptual_for(w.task),
        evalnet=lambda w: evalnet_for(w.task),
    output:
        student="results/runs/{task}/{method}/{addon}_lam{lam}/seed{seed}/student.pt",
        curve="results/runs/{task}/{method}/{addon}_lam{lam}/seed{seed}/curve.csv",
    log:
        "logs/compress/{task}/{method}-{addon}-lam{lam}-seed{seed}.log",
    benchmark:
        "results/benchmarks/compress/{task}/{method}-{addon}-lam{lam}-seed{seed}.tsv"
    conda:
        "../../envs/vem.yaml"
    threads: 1
    params:
        teacher=teacher_arg,
        lam=lambda w: "" if w.addon == "none" else f"--lambda-mi {w.lam}",
        overrides=OVERRIDES,
        every=config["checkpoint_every"],
        snapshots=(
            "--keep-snapshots"
            if config["checkpoint_selection"] == "best_on_test"
            else ""
        ),
    message:
        "Compress {wildcards.task} with {wildcards.method} + {wildcards.addon} (lambda {wildcards.lam}), seed {wildcards.seed}"
    shell:
        "python -m vem compress --task {wildcards.task} --method {wildcards.method} --addon {wildcards.addon} "
        "{params.lam} --seed {wildcards.seed} --data {input.data} --perceptual {input.perceptual} "
        "--evalnet {input.evalnet} {params.teacher} --threads {threads} --overrides '{params.overrides}' "
        "--checkpoint-every {params.every} {params.snapshots} --out {output.student} --curve {output.curve} > {log} 2>&1"


rule evaluate_run:
    input:
        unpack(real_stats_for),
        generator=rules.compress.output.student,
        data=lambda w: data_file(w.task),
        evalnet=lambda w: evalnet_for(w.task),
    output:
        metrics="results/runs/{task}/{method}/{addon}_lam{lam}/seed{seed}/metrics.json",
        images="results/runs/{task}/{method}/{addon}_lam{lam}/seed{seed}/images.zip",
        samples="results/runs/{task}/{method}/{addon}_lam{lam}/seed{seed}/samples.png",
    log:
        "logs/evaluate_run/{task}/{method}-{addon}-lam{lam}-seed{seed}.log",
    benchmark:
        "results/benchmarks/evaluate_run/{task}/{method}-{addon}-lam{lam}-seed{seed}.tsv"
    conda:
        "../../envs/vem.yaml"
    threads: 1
    params:
        stats=real_stats_arg,
        selection=config["checkpoint_selection"],
        overrides=OVERRIDES,
    message:
        "Evaluate {wildcards.task} {wildcards.method} + {wildcards.addon} seed {wildcards.seed} on the test split"
    shell:
        "python -m vem evaluate --task {wildcards.task} --method {wildcards.method} --addon {wildcards.addon} "
        "--generator {input.generator} --data {input.data} --evalnet {input.evalnet} {params.stats} "
        "--threads {threads} --selection {params.selection} --overrides '{params.overrides}' --images {output.images} --samples {output.samples} "
        "--out {output.metrics} > {log} 2>&1"
