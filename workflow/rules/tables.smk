rule render_table:
    input:
        metrics=lambda w: PLAN.table_metrics(int(w.n)),
        curves=lambda w: PLAN.table_curves(int(w.n)),
        tuned=lambda w: tuned_lists(w.n),
        quality=lambda w: PLAN.table_quality(int(w.n)),
    output:
        csv=report(
            "results/table{n}.csv", caption="../report/table.rst", category="Tables"
        ),
        md="results/table{n}.md",
        tex="results/table{n}.tex",
    log:
        "logs/render_table/{n}.log",
    benchmark:
        "results/benchmarks/render_table/{n}.tsv"
    wildcard_constraints:
        n="1|2|3|4|5",
    conda:
        "../../envs/vem.yaml"
    message:
        "Render table {wildcards.n}"
    shell:
        "python -m vem tables --table {wildcards.n} --metrics {input.metrics} --curves {input.curves} "
        "--quality {input.quality} --tuned-runs {input.tuned} --out {output.csv} > {log} 2>&1"


checkpoint tune:
    input:
        lambda w: PLAN.tuning_curves(w.method),
    output:
        csv=report(
            "results/tuning/{method}.csv",
            caption="../report/tuning.rst",
            category="Tuning",
        ),
        json="results/tuning/{method}.json",
        md="results/tuning/{method}.md",
    log:
        "logs/tune/{method}.log",
    benchmark:
        "results/benchmarks/tune/{method}.tsv"
    conda:
        "../../envs/vem.yaml"
    params:
        spec=lambda w: json.dumps(PLAN.tuning_spec(w.method), sort_keys=True),
    message:
        "Choose {wildcards.method}'s add-on hyper-parameters on the val split"
    shell:
        "python -m vem tune --spec {params.spec:q} --out {output.csv} > {log} 2>&1"


rule tuned_runs:
    input:
        tuned_runs_of,
    output:
        "results/tuning/{method}.runs",
    log:
        "logs/tuned_runs/{method}.log",
    conda:
        "../../envs/vem.yaml"
    message:
        "List {wildcards.method}'s runs with the tuned add-on values"
    shell:
        "printf '%s\\n' {input} > {output} 2> {log}"


rule dose_response:
    input:
        PLAN.dose_response_metrics(),
    output:
        csv=report(
            "results/dose_response.csv",
            caption="../report/dose_response.rst",
            category="Tables",
        ),
        md="results/dose_response.md",
    log:
        "logs/dose_response.log",
    benchmark:
        "results/benchmarks/dose_response.tsv"
    conda:
        "../../envs/vem.yaml"
    message:
        "Render the dose-response table"
    shell:
        "python -m vem dose-response --metrics {input} --out {output.csv} > {log} 2>&1"


rule control:
    input:
        PLAN.control_metrics(),
    output:
        csv=report(
            "results/control.csv", caption="../report/control.rst", category="Tables"
        ),
        md="results/control.md",
    log:
        "logs/control.log",
    benchmark:
        "results/benchmarks/control.tsv"
    conda:
        "../../envs/vem.yaml"
    message:
        "Render the positive-control table"
    shell:
        "python -m vem control --metrics {input} --out {output.csv} > {log} 2>&1"


rule latency:
    input:
        PLAN.latency_metrics(),
    output:
        csv=report(
            "results/latency.csv", caption="../report/latency.rst", category="Tables"
        ),
        md="results/latency.md",
    log:
        "logs/latency.log",
    benchmark:
        "results/benchmarks/latency.tsv"
    conda:
        "../../envs/vem.yaml"
    message:
        "Gather the measured CPU latency of every evaluated generator"
    shell:
        "python -m vem latency --metrics {input} --out {output.csv} > {log} 2>&1"


rule leaderboard:
    input:
        PLAN.latency_metrics(),
    output:
        report(
            "results/leaderboard.html",
            caption="../report/leaderboard.rst",
            category="Leaderboard",
        ),
    log:
        "logs/leaderboard.log",
    conda:
        "../../envs/vem.yaml"
    params:
        meta=lambda w: json.dumps(RUN_META, sort_keys=True),
    message:
        "Render the leaderboard page (results/leaderboard.html)"
    shell:
        "python -m vem leaderboard --metrics {input} --meta {params.meta:q} --out {output} > {log} 2>&1"


rule summary:
    input:
        tables=expand("results/table{n}.md", n=config["tables"]),
        extra=(["results/control.md"] if PLAN.control_metrics() else []) + tuning_md(),
        figures=PLAN.figures(),
    output:
        "results/summary.md",
    log:
        "logs/summary.log",
    conda:
        "../../envs/vem.yaml"
    params:
        meta=lambda w: json.dumps(RUN_META, sort_keys=True),
    message:
        "Summarise the run (results/summary.md)"
    shell:
        "python -m vem summary --tables {input.tables} --extra {input.extra} --figures {input.figures} "
        "--meta {params.meta:q} --out {output} > {log} 2>&1"
