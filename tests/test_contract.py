"""The method contract: stage declarations, the registry, the plan the DAG derives from them, and the
project's layering (no import cycle, the library never imports the methods, no method named outside its
folder)."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT, run_env

# --------------------------------------------------------------------------------------------------
# layering


def _modules(root=ROOT, pkgs=("vem", "baselines")) -> dict[str, Path]:
    mods = {}
    for pkg in pkgs:
        for f in (root / pkg).rglob("*.py"):
            parts = list(f.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join(parts)] = f
    return mods


def _import_graph(root=ROOT, pkgs=("vem", "baselines")) -> dict[str, set[str]]:
    """module -> project modules it imports, at module level or inside functions (a lazy import hides a
    cycle from Python, not from a reader)."""
    mods = _modules(root, pkgs)
    graph = {m: set() for m in mods}
    for m, f in mods.items():
        pkg = m.split(".") if f.name == "__init__.py" else m.split(".")[:-1]
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = pkg[: len(pkg) - (node.level - 1)] if node.level else []
                mod = ".".join(base + ([node.module] if node.module else []))
                names = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in mods else mod for a in node.names]
            else:
                continue
            for n in names:
                while n and n not in mods:
                    n = n.rpartition(".")[0]
                if n and n != m and not (f.name == "__init__.py" and n.startswith(m + ".")):
                    graph[m].add(n)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Depth-first search with colours: every back edge closes a cycle."""
    state, cycle = {}, []

    def visit(m, path):
        state[m] = "open"
        for d in sorted(graph[m]):
            if state.get(d) == "open":
                cycle.append(path[path.index(d):] + [d] if d in path else [m, d])
            elif d not in state:
                visit(d, path + [d])
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    return cycle


def test_no_import_cycle_and_the_library_never_imports_the_methods():
    graph = _import_graph()
    assert {"vem.config", "vem.methods.base", "baselines.omgd"} <= set(graph)
    upward = sorted(f"{m} -> {d}" for m, deps in graph.items() if m.startswith("vem") for d in deps
                    if d.startswith("baselines"))
    assert upward == []
    assert _cycles(graph) == [], f"import cycles: {_cycles(graph)[:3]}"


def test_a_cycle_hidden_in_a_function_is_found(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "low.py").write_text("def f():\n    from .high import g\n    return g\n")
    (tmp_path / "pkg" / "high.py").write_text("from pkg.low import f\n\ng = f\n")
    graph = _import_graph(tmp_path, ("pkg",))
    assert graph["pkg.low"] == {"pkg.high"} and graph["pkg.high"] == {"pkg.low"}
    assert _cycles(graph) == [["pkg.high", "pkg.low", "pkg.high"]]


def _code_strings_and_names(path: Path):
    """String constants without whitespace (identifiers, keys, paths - prose is documentation) and the
    names a Python file defines or uses, with their line numbers."""
    tree = ast.parse(path.read_text())
    docs = {id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)) and n.body
            and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    for n in ast.walk(tree):
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs \
                and not re.search(r"\s", n.value):
            yield n.lineno, n.value
        elif isinstance(n, ast.Name):
            yield n.lineno, n.id
        elif isinstance(n, (ast.FunctionDef, ast.ClassDef)):
            yield n.lineno, n.name
        elif isinstance(n, ast.arg):
            yield n.lineno, n.arg


@pytest.mark.parametrize("method", ["omgd"])
def test_no_method_is_named_outside_its_folder_and_config(method):
    """`git grep -i <method> -- vem workflow profiles Snakefile` finds documentation only: no identifier, key,
    path or rule of the library or the workflow names a method."""
    token = re.compile(rf"(^|[^a-z0-9]){method}($|[^a-z0-9])", re.I)
    found = []
    for f in (ROOT / "vem").rglob("*.py"):
        found += [f"{f.relative_to(ROOT)}:{ln}: {s}" for ln, s in _code_strings_and_names(f) if token.search(s)]
    for f in [ROOT / "Snakefile", *(ROOT / "workflow").rglob("*"), *(ROOT / "profiles").rglob("*"),
              *(ROOT / "vem" / "configs").glob("*.yaml")]:
        if f.is_file():
            for ln, line in enumerate(f.read_text().splitlines(), 1):
                code = line.split("#", 1)[0]
                if token.search(code) and "description:" not in code:
                    found.append(f"{f.relative_to(ROOT)}:{ln}: {line.strip()}")
    assert found == []


# --------------------------------------------------------------------------------------------------
# stage declarations


class _Toy:
    """A method declaration built in the test (the contract's rules, not a registered method)."""

    @staticmethod
    def make(stages):
        from vem.methods import Method

        class Toy(Method):
            id = "toy"
            title = "Toy"

            def stages(self, cfg):
                return stages
        return Toy()


def test_stage_declarations_are_checked():
    from vem.methods import Stage

    with pytest.raises(ValueError, match="scope must be one of"):
        Stage("prune", "forever")
    with pytest.raises(ValueError, match="lower-case identifier"):
        Stage("student", "run")
    ok = _Toy.make((Stage("teacher", "task"), Stage("prune", "task", ("teacher",)),
                    Stage("distill", "run", ("teacher", "prune", "perceptual"))))
    assert [s.name for s in ok.checked_stages({})] == ["teacher", "prune", "distill"]
    assert ok.final({}).name == "distill"
    bad = {
        "the last stage must exist and have scope 'run'": (Stage("teacher", "task"),),
        "needs 'pruned', which is neither": (Stage("distill", "run", ("pruned",)),),
        "cannot need 'search', which runs per run": (Stage("search", "run"), Stage("export", "seed", ("search",)),
                                                      Stage("distill", "run")),
        "declared twice": (Stage("distill", "run"), Stage("distill", "run")),
    }
    for msg, stages in bad.items():
        with pytest.raises(ValueError, match=msg):
            _Toy.make(stages).checked_stages({})


def test_the_addon_stage_is_the_last_unless_one_declares_it():
    from vem.methods import Stage

    assert _Toy.make((Stage("teacher", "task"), Stage("distill", "run"))).addon_stage({}).name == "distill"
    gc = _Toy.make((Stage("supernet", "run", addon=True), Stage("search", "run", ("supernet",)),
                    Stage("export", "run", ("supernet", "search"))))
    assert gc.addon_stage({}).name == "supernet" and gc.final({}).name == "export"
    bad = {
        "only one stage trains with the add-on": (Stage("a", "run", addon=True), Stage("b", "run", addon=True)),
        "it must have scope 'run'": (Stage("a", "seed", addon=True), Stage("b", "run")),
    }
    for msg, stages in bad.items():
        with pytest.raises(ValueError, match=msg):
            _Toy.make(stages).checked_stages({})


def test_registry_and_omgd_declaration():
    from vem.config import resolve
    from vem.methods import get_method, method_ids

    assert "omgd" in method_ids()
    with pytest.raises(ValueError, match=r"unknown method 'gcc2'; choose one of \["):
        get_method("gcc2")
    m = get_method("omgd")
    names = {t: [(s.name, s.scope) for s in m.checked_stages(resolve(t, method="omgd"))]
             for t in ("fmnist_edges2shoes", "fmnist_sneaker2boot", "edges2shoes", "horse2zebra")}
    assert names["fmnist_edges2shoes"] == [("teachers", "seed"), ("distill", "run")]   # shared online teachers
    assert names["edges2shoes"] == [("distill", "run")]                                # paper: inside each job
    assert names["fmnist_sneaker2boot"] == names["horse2zebra"] == [("teacher", "task"), ("distill", "run")]


def test_plan_derives_every_file_from_the_declarations():
    from vem.plan import Plan, parse_variant

    cfg = {"tasks": ["fmnist_edges2shoes", "fmnist_sneaker2boot"], "methods": ["omgd"], "addons": ["none", "vem"],
           "seeds": [0, 1], "tables": [4], "teacher_seed": 0, "overrides": {}, "lambda_mi_sweep": [],
           "sweep_task": "fmnist_scenes"}
    plan = Plan(cfg)
    assert parse_variant("shared") == ("task", None, None, None, "")
    assert parse_variant("shared/seed3") == ("seed", None, None, 3, "")
    assert parse_variant("vem_lam0.1/seed2") == ("run", "vem", "0.1", 2, "")
    assert parse_variant("vem_lam0.1+nodistill+frozen/seed2") == ("run", "vem", "0.1", 2, "+nodistill+frozen")
    with pytest.raises(ValueError, match="not a run variant"):
        parse_variant("vem_lam0.1+bogus/seed2")
    ins = plan.stage_inputs("fmnist_edges2shoes", "omgd", "distill", "vem_lam0.1/seed1")
    assert ins == {"data": "resources/data/fmnist_edges2shoes.npz", "evalnet": "results/evalnets/feature.pt",
                   "teachers": "results/runs/fmnist_edges2shoes/omgd/shared/seed1/teachers.pt",
                   "perceptual": "results/evalnets/perceptual.pt"}
    ins = plan.stage_inputs("fmnist_sneaker2boot", "omgd", "distill", "none_lam0/seed1")
    assert ins["teacher"] == "results/runs/fmnist_sneaker2boot/omgd/shared/teacher.pt"
    assert plan.stage_args("fmnist_sneaker2boot", "omgd", "teacher", "shared") == "--stage teacher --seed 0"
    with pytest.raises(ValueError, match="scope seed, not run"):
        plan.stage_inputs("fmnist_edges2shoes", "omgd", "teachers", "none_lam0/seed1")
    with pytest.raises(ValueError, match="has no stage 'prune'"):
        plan.stage_inputs("fmnist_edges2shoes", "omgd", "prune", "shared")
    assert len(plan.table_metrics(4)) == 2 * 2 * 2
    # arms: the positive control's runs, with the overrides each arm adds
    assert plan.arm_overrides("omgd", "+nodistill+frozen") == {
        "omgd.lambda_ssim": 0.0, "omgd.lambda_style": 0.0, "omgd.lambda_feature": 0.0, "omgd.lambda_cd": 0.0,
        "addon.vem.train_energy": False}
    assert plan.run_dir("fmnist_edges2shoes", "omgd", "vem", 0.1, 1, "+nodistill") == \
        "results/runs/fmnist_edges2shoes/omgd/vem_lam0.1+nodistill/seed1"
    ctl = Plan(dict(cfg, control={"tasks": ["fmnist_edges2shoes"], "methods": ["omgd"], "addons": ["vid", "vem"],
                                  "seeds": [0, 1]})).control_metrics()
    assert len(ctl) == (2 + 2 + 1) * 2 and "results/runs/fmnist_edges2shoes/omgd/none_lam0/seed0/metrics.json" in ctl
    assert "results/runs/fmnist_edges2shoes/omgd/vem_lam0.1+nodistill+frozen/seed1/metrics.json" in ctl
    with pytest.raises(ValueError, match="control.methods"):
        Plan(dict(cfg, control={"tasks": [], "methods": ["cat"], "addons": ["vem"], "seeds": [0]}))
    # a method restricted to some tasks, and one that cannot run on a task
    assert Plan(dict(cfg, methods={"omgd": ["fmnist_sneaker2boot"]})).method_tasks("omgd") == ["fmnist_sneaker2boot"]
    with pytest.raises(ValueError, match="is not among tasks"):
        Plan(dict(cfg, methods={"omgd": ["fmnist_scenes"]}))


def test_methods_command_lists_the_stages():
    res = subprocess.run([sys.executable, "-m", "vem", "methods"], capture_output=True, text=True, env=run_env(),
                         cwd=ROOT, timeout=120)
    assert res.returncode == 0, res.stderr
    assert re.search(r"fmnist_edges2shoes\s+teachers \[seed\] -> distill \[run, add-on\]", res.stdout)
    assert re.search(r"horse2zebra\s+teacher \[task\] -> distill \[run, add-on\]", res.stdout)
    assert re.search(r"horse2zebra\s+supernet \[run, add-on\] -> search \[run\] -> export \[run\]", res.stdout)


def test_a_method_runs_only_where_the_original_is_a_backbone_it_compresses():
    from vem.config import ConfigError
    from vem.plan import Plan

    cfg = {"tasks": ["fmnist_uncond", "fmnist_uncond_sg2"], "methods": {"gcc": "all", "slimming": "all"},
           "addons": ["none", "vem"], "seeds": [0], "tables": [3], "teacher_seed": 0, "overrides": {},
           "lambda_mi_sweep": [], "sweep_task": "fmnist_uncond"}
    plan = Plan(cfg)
    assert plan.original_arch("fmnist_uncond") == "sagan" and plan.original_arch("fmnist_uncond_sg2") == "stylegan2"
    assert plan.method_tasks("gcc") == plan.method_tasks("slimming") == ["fmnist_uncond"]
    with pytest.raises(ConfigError, match="methods.gcc: gcc compresses sagan; the Original of fmnist_uncond_sg2 "
                                          "is stylegan2"):
        Plan({**cfg, "methods": {"gcc": ["fmnist_uncond_sg2"]}})
