"""Bring your own add-on: the example package (examples/vem-hint-addon) installed into a private folder
registers ``hint`` through the ``vem.addons`` entry-point group; a ``module:Class`` path works without
installing; a class that breaks the protocol fails ``snakemake -n`` with one line naming what is missing."""

import csv
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import ROOT, fmnist_available, run_env

SNAKEMAKE = str(ROOT / ".venv" / "bin" / "snakemake") if (ROOT / ".venv" / "bin" / "snakemake").exists() \
    else "snakemake"
SMALL = {"tasks": ["fmnist_sneaker2boot"], "methods": ["omgd"], "seeds": [0],   # a list replaces smoke.yaml's mapping
         "tables": [4], "lambda_mi_sweep": [],
         "dose_response": {"tasks": ["fmnist_sneaker2boot"], "lambdas": [0.1], "addons": ["vem"], "seeds": [0]},
         "control": {"tasks": [], "methods": [], "addons": ["vem"], "seeds": [0]},
         "tuning": {"tasks": [], "methods": [], "addons": [], "trials": 1, "seeds": [0], "space": {}}}


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory):
    """The example add-on package installed (pip, no network, no build isolation) into a private folder."""
    site = tmp_path_factory.mktemp("site")
    src = tmp_path_factory.mktemp("src") / "vem-hint-addon"      # a copy: the build writes next to the sources
    shutil.copytree(ROOT / "examples" / "vem-hint-addon", src, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    res = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                          "--no-index", "--target", str(site), str(src)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert list(site.glob("vem_hint_addon-*.dist-info/entry_points.txt"))
    bad = site / "bad_addons.py"
    bad.write_text(textwrap.dedent("""
        from vem.mi.base import MIAddon

        class NoLoss:
            name = "noloss"
            def __init__(self, lambda_mi=0.1): pass
            def fit_step(self, t, s, idx=None): return {}
            def student_parameters(self): return []
            def state_dict(self): return {}
            def load_state_dict(self, sd): pass

        class WrongLoss(MIAddon):
            name = "wrongloss"
            def __init__(self, lambda_mi=0.1): super().__init__()
            def loss(self, t): return t.sum()

        class MisspeltLoss(MIAddon):     # MIAddon's zero loss would make every run the method alone
            name = "misspelt"
            def __init__(self, lambda_mi=0.1): super().__init__()
            def losss(self, t, s, idx=None): return t.sum()

        class Scaled(MIAddon):
            name = "scaled"
            title = "Scaled hint"
            def __init__(self, lambda_mi=0.1, channels=None, scale=2.0):
                super().__init__()
                self.lambda_mi, self.channels, self.scale = lambda_mi, channels, scale
            def loss(self, t, s, idx=None):
                return self.lambda_mi * self.scale * (s - t.detach()).pow(2).mean()
    """))
    (site / "my_methods.py").write_text(textwrap.dedent("""
        from pathlib import Path

        from vem.methods import Method, Stage
        from vem.schema import integer, section

        class CopyOriginal(Method):
            id = "copyorig"
            title = "Copy"
            config_file = Path(__file__).with_name("copyorig.yaml")
            schema = section({"iters": integer(1)})

            def stages(self, cfg):
                return (Stage("distill", "run", ("original",), "the Original, copied"),)

            def run_stage(self, stage, ctx):
                raise NotImplementedError
    """))
    (site / "copyorig.yaml").write_text("mini:\n  kinds:\n    unpaired: {iters: 1}\n  tasks: {}\n")
    return site


def _env(site):
    env = run_env()
    env["PYTHONPATH"] = f"{site}:{env['PYTHONPATH']}"
    env["FMNIST_DIR"] = str(ROOT / "resources" / "fmnist")
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"    # the jobs' `python -m vem`: this interpreter
    return env


def _config(tmp_path, **over):
    path = tmp_path / "plug.json"
    path.write_text(json.dumps({**SMALL, **over}))
    return path


def _dry(tmp_path, site, cfg, target="results/table4.csv"):
    return subprocess.run([SNAKEMAKE, "-n", "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path / "work"),
                           "--configfile", str(ROOT / "config" / "smoke.yaml"), str(cfg), "--", target],
                          capture_output=True, text=True, env=_env(site), timeout=300)


def test_the_registry_builds_a_user_addon_and_checks_its_options(plugin_site):
    code = textwrap.dedent("""
        import torch
        from vem.config import ConfigError, addon_kwargs, resolve
        from vem.mi import build_addon
        from vem.mi.registry import addon_ids, title
        assert addon_ids()[:4] == ["none", "vid", "crd", "vem"] and "hint" in addon_ids(), addon_ids()
        cfg = resolve("fmnist_sneaker2boot", {"addon.hint.pool": 2})
        assert cfg["addon"]["hint"] == {"pool": 2}
        a = build_addon("hint", channels=1, image_size=32, **addon_kwargs(cfg, "hint", 0.5))
        t, s = torch.zeros(2, 1, 4, 4), torch.ones(2, 1, 4, 4, requires_grad=True)
        assert a.pool == 2 and abs(float(a.loss(t, s)) - 0.5) < 1e-7 and title("hint") == "Hint"
        b = build_addon("bad_addons:Scaled", channels=3, image_size=32, lambda_mi=1.0)
        assert b.channels == 3 and abs(float(b.loss(t, s)) - 2.0) < 1e-6
        for ov, msg in [({"addon.hint.pool": 0}, "pool"), ({"addon.hint.width": 3}, "addon.hint.width")]:
            try:
                resolve("fmnist_sneaker2boot", ov)
            except ConfigError as e:
                assert msg in str(e), e
            else:
                raise AssertionError(ov)
        print("ok")
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(plugin_site),
                         timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-3000:]


@pytest.mark.parametrize("addon, message", [
    ("bad_addons:NoLoss", "NoLoss lacks the add-on protocol method(s) ['loss']"),
    ("bad_addons:WrongLoss", "WrongLoss.loss must take (t, s, idx), it takes (t)"),
    ("bad_addons:MisspeltLoss", "MisspeltLoss defines no loss of its own"),
    ("bad_addons:Missing", "does not import: AttributeError"),
    ("nosuchaddon", "unknown add-on 'nosuchaddon'"),
])
def test_a_bad_addon_fails_the_dry_run_in_one_line(tmp_path, plugin_site, addon, message):
    res = _dry(tmp_path, plugin_site, _config(tmp_path, addons=["none", addon]))
    assert res.returncode != 0
    lines = [ln for ln in (res.stdout + res.stderr).splitlines() if "config error" in ln]
    assert len(lines) == 1 and message in lines[0], res.stdout[-1500:] + res.stderr[-1500:]


def test_module_class_addon_and_method_appear_in_the_dag_without_installing(tmp_path, plugin_site):
    cfg = _config(tmp_path, addons=["none", "bad_addons:Scaled"],
                  methods={"omgd": ["fmnist_sneaker2boot"], "my_methods:CopyOriginal": ["fmnist_sneaker2boot"]},
                  overrides={"copyorig.iters": 5, "addon.scaled.scale": 3.0})
    res = _dry(tmp_path, plugin_site, cfg)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    for m in ("omgd", "copyorig"):
        assert f"results/runs/fmnist_sneaker2boot/{m}/scaled_lam0.1/seed0/metrics.json" in res.stdout
    assert "--method copyorig" in res.stdout and "--addon scaled" in res.stdout   # ids; jobs get VEM_ADDONS
    bad = _dry(tmp_path, plugin_site, _config(tmp_path, methods={"bad_addons:Scaled": "all"}))
    lines = [ln for ln in (bad.stdout + bad.stderr).splitlines() if "config error" in ln]
    assert bad.returncode != 0 and len(lines) == 1 and "is not a vem.methods.Method subclass" in lines[0]


@pytest.mark.skipif(not fmnist_available(), reason="Fashion-MNIST is not installed (make setup installs it)")
def test_example_addon_runs_through_the_smoke_dag_into_table4_and_the_leaderboard(tmp_path, plugin_site):
    cfg = _config(tmp_path, addons=["none", "hint", "bad_addons:Scaled"], overrides={"addon.hint.pool": 2})
    work = tmp_path / "work"
    res = subprocess.run([SNAKEMAKE, "--cores", "2", "-s", str(ROOT / "Snakefile"), "-d", str(work),
                          "--configfile", str(ROOT / "config" / "smoke.yaml"), str(cfg), "--", "results/table4.csv",
                          "results/leaderboard.html"],
                         capture_output=True, text=True, env=_env(plugin_site), timeout=1200)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    served = (work / "logs" / "forkserver.log").read_text()       # the run's jobs forked from its server
    assert ": vem stage " in served and " exit 0 " in served and "refused" not in served, served[-2000:]
    run = work / "results/runs/fmnist_sneaker2boot/omgd/hint_lam0.1/seed0"
    rec = json.loads((run / "metrics.json").read_text())
    assert rec["addon"] == "hint" and rec["metric"]["value"] > 0
    with open(run / "curve.csv") as f:
        curve = list(csv.DictReader(f))
    assert any(float(r["mi_loss"]) > 0 for r in curve if r.get("mi_loss")), curve[:2]
    assert json.loads((run.parent.parent / "scaled_lam0.1/seed0/metrics.json").read_text())["addon"] == "scaled"
    rows = list(csv.DictReader(open(work / "results" / "table4.csv")))
    cells = [str(v) for r in rows for v in r.values()]
    assert "OMGD + Hint" in cells and "OMGD + Scaled hint" in cells, rows[:4]
    page = (work / "results" / "leaderboard.html").read_text()
    assert "<td>OMGD + Hint</td>" in page and "<td>OMGD + Scaled hint</td>" in page
