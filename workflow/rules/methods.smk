# Every compression method's stages, as declared by the method (vem.methods; `python -m vem methods`):
# method_stage runs the shared and intermediate stages, compress the last stage (the student; the MI
# add-on enters at the method's add-on stage, the last one unless it declares another), evaluate_run
# scores the student on the test split.


rule method_stage:
    input:
        unpack(lambda w: PLAN.stage_inputs(w.task, w.method, w.stage, w.variant)),
    output:
        ckpt="results/runs/{task}/{method}/{variant}/{stage}.pt",
        table="results/runs/{task}/{method}/{variant}/{stage}.csv",
    log:
        "logs/method_stage/{task}/{method}/{variant}/{stage}.log",
    benchmark:
        "results/benchmarks/method_stage/{task}/{method}/{variant}/{stage}.tsv"
    conda:
        "../../envs/vem.yaml"
    threads: 1
    params:
        args=lambda w: PLAN.stage_args(w.task, w.method, w.stage, w.variant),
        overrides=lambda w: PLAN.variant_overrides_json(w.method, w.variant),
        every=config["checkpoint_every"],
    message:
        "{wildcards.method} stage {wildcards.stage} on {wildcards.task} ({wildcards.variant})"
    shell:
        "python -m vem stage --task {wildcards.task} --method {wildcards.method} {params.args} "
        "--data {input.data} --evalnet {input.evalnet} --threads {threads} --overrides {params.overrides:q} "
        "--checkpoint-every {params.every} --out {output.ckpt} --table {output.table} > {log} 2>&1"


rule compress:
    input:
        unpack(
            lambda w: PLAN.stage_inputs(
                w.task, w.method, final_stage(w), run_variant(w)
            )
        ),
    output:
        student="results/runs/{task}/{method}/{addon}_lam{lam}{arms}/seed{seed}/student.pt",
        curve="results/runs/{task}/{method}/{addon}_lam{lam}{arms}/seed{seed}/curve.csv",
    log:
        "logs/compress/{task}/{method}-{addon}-lam{lam}{arms}-seed{seed}.log",
    benchmark:
        "results/benchmarks/compress/{task}/{method}-{addon}-lam{lam}{arms}-seed{seed}.tsv"
    conda:
        "../../envs/vem.yaml"
    threads: 1
    params:
        args=lambda w: PLAN.stage_args(w.task, w.method, final_stage(w), run_variant(w)),
        overrides=lambda w: PLAN.run_overrides_json(w.method, w.arms, w.addon),
        every=config["checkpoint_every"],
        snapshots=lambda w: (
            "--keep-snapshots" if PLAN.selection(w.method) != "final" else ""
        ),
    message:
        "Compress {wildcards.task} with {wildcards.method} + {wildcards.addon} (lambda {wildcards.lam}{wildcards.arms}), seed {wildcards.seed}"
    shell:
        "python -m vem stage --task {wildcards.task} --method {wildcards.method} {params.args} "
        "--data {input.data} --evalnet {input.evalnet} --threads {threads} "
        "--overrides {params.overrides:q} --checkpoint-every {params.every} {params.snapshots} "
        "--out {output.student} --table {output.curve} > {log} 2>&1"


rule evaluate_run:
    input:
        unpack(real_stats_for),
        generator=rules.compress.output.student,
        curve=rules.compress.output.curve,
        data=lambda w: PLAN.data_file(w.task),
        evalnet=lambda w: PLAN.evalnet(w.task),
    output:
        metrics="results/runs/{task}/{method}/{addon}_lam{lam}{arms}/seed{seed}/metrics.json",
        images="results/runs/{task}/{method}/{addon}_lam{lam}{arms}/seed{seed}/images.zip",
        samples="results/runs/{task}/{method}/{addon}_lam{lam}{arms}/seed{seed}/samples.png",
    log:
        "logs/evaluate_run/{task}/{method}-{addon}-lam{lam}{arms}-seed{seed}.log",
    benchmark:
        "results/benchmarks/evaluate_run/{task}/{method}-{addon}-lam{lam}{arms}-seed{seed}.tsv"
    conda:
        "../../envs/vem.yaml"
    threads: 1
    params:
        stats=real_stats_arg,
        selection=lambda w: PLAN.selection(w.method),
        overrides=PLAN.overrides_json("evaluate"),
        arms=lambda w: f"--arms {w.arms}" if w.arms else "",
    message:
        "Evaluate {wildcards.task} {wildcards.method} + {wildcards.addon} seed {wildcards.seed} on the test split"
    shell:
        "python -m vem evaluate --task {wildcards.task} --method {wildcards.method} --addon {wildcards.addon} {params.arms} "
        "--generator {input.generator} --curve {input.curve} --data {input.data} --evalnet {input.evalnet} "
        "{params.stats} --threads {threads} --selection {params.selection} --overrides {params.overrides:q} "
        "--images {output.images} --samples {output.samples} --out {output.metrics} > {log} 2>&1"
