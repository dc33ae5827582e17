# Figures rendered from the runs' outputs (vem.figures; what each draws: PLAN.figure_spec).

import json


rule figure:
    input:
        lambda w: PLAN.figure_inputs(w.name),
    output:
        png=report(
            "results/figures/{name}.png",
            caption="../report/figure.rst",
            category="Figures",
        ),
        pdf="results/figures/{name}.pdf",
    log:
        "logs/figure/{name}.log",
    benchmark:
        "results/benchmarks/figure/{name}.tsv"
    wildcard_constraints:
        name="figure2|figure3|vem_diagnostics|addon_effects|curves_[a-z0-9_]+",
    conda:
        "../../envs/vem.yaml"
    params:
        kind=lambda w: "curves" if w.name.startswith("curves_") else w.name,
        spec=lambda w: json.dumps(PLAN.figure_spec(w.name), sort_keys=True),
    message:
        "Figure {wildcards.name}"
    shell:
        "python -m vem figure --kind {params.kind} --spec {params.spec:q} --out {output.png} > {log} 2>&1"
