"""Add-on tuning (vem.tuning, Plan's tuning trials, tuned rows in table 4): the trials drawn, their scores on
the val curve, the choice, and what a bad search space gets."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tests.test_tables import write_record
from vem.config import ConfigError
from vem.plan import Plan, lam_str, parse_variant
from vem.tuning import check_space, choose, render_tuning, sample_trials, val_score

SPACE = {"lambda_mi": {"log": [0.01, 10.0]}, "addon.vem.steps": {"int": [2, 5]},
         "addon.vem.noise_std": {"uniform": [0.001, 0.05]}, "addon.vem.width": {"choice": [8, 16]}}


def test_trials_are_deterministic_bounded_and_start_from_the_defaults():
    a = sample_trials("vem", SPACE, 50, seed=3)
    assert a == sample_trials("vem", SPACE, 50, seed=3)
    assert a[0] == {} and len(a) == 50
    assert a != sample_trials("vem", SPACE, 50, seed=4)
    lam = {"lambda_mi": SPACE["lambda_mi"]}                      # each add-on has a stream of its own
    assert sample_trials("vid", lam, 50, seed=3) != sample_trials("vem", lam, 50, seed=3)
    lams = np.array([t["lambda_mi"] for t in a[1:]])
    assert lams.min() >= 0.01 and lams.max() <= 10.0
    steps = {t["addon.vem.steps"] for t in a[1:]}
    assert steps == {2, 3, 4, 5}                                 # int bounds are inclusive
    assert {t["addon.vem.width"] for t in a[1:]} == {8, 16}
    assert all(0.001 <= t["addon.vem.noise_std"] <= 0.05 for t in a[1:])
    assert all(float(f"{t['lambda_mi']:.3g}") == t["lambda_mi"] for t in a[1:])  # 3 significant digits


def test_log_uniform_is_uniform_in_the_log():
    t = sample_trials("crd", {"lambda_mi": {"log": [1e-3, 1e3]}}, 2001, seed=0)[1:]
    u = (np.log10([x["lambda_mi"] for x in t]) + 3) / 6                 # -> U(0, 1) if log-uniform
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    assert abs(np.median([x["lambda_mi"] for x in t]) - 1.0) < 0.3      # the geometric middle, not 500


@pytest.mark.parametrize("space,match", [
    ({"lambda_mi": {"gauss": [0, 1]}}, "expects one of"),
    ({"lambda_mi": {"log": [1.0, 0.1]}}, "low <= high"),
    ({"addon.vem.lr": {"log": [0.0, 0.1]}}, "positive bounds"),
    ({"addon.vem.steps": {"int": [1.5, 4]}}, "integer bounds"),
    ({"lambda_mi": {"uniform": [0.0, 1.0]}}, "lambda_mi must stay > 0"),
    ({"addon.vem.width": {"choice": []}}, "non-empty list"),
    ({"lambda_mi": {"choice": [0.5, 0]}}, "lambda_mi must stay > 0"),
    ({"addon.lambda_mi": {"log": [0.1, 1.0]}}, "the run's lambda_mi overrides addon.lambda_mi"),     # a no-op
    ({"addon.vid.init_var": {"log": [1.0, 5.0]}}, "an option of add-on 'vid', which the vem trials do not run"),
    ({}, "expects a mapping"),
])
def test_a_bad_space_names_the_bad_dimension(space, match):
    with pytest.raises(ValueError, match=match):
        check_space("vem", space)


def test_choose_prefers_the_better_finite_score_and_the_defaults_on_a_tie():
    assert choose({0: 10.0, 1: 8.0, 2: 9.0}, higher_is_better=False) == 1
    assert choose({0: 10.0, 1: 8.0, 2: 9.0}, higher_is_better=True) == 0
    assert choose({0: 10.0, 1: math.nan, 2: 10.0}, higher_is_better=False) == 0   # tie -> the lower trial
    assert choose({0: math.nan, 1: 50.0}, higher_is_better=False) == 1            # NaN never wins
    assert choose({0: math.nan, 1: math.nan}, higher_is_better=True) == 0


def _curve(path, vals):
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"iter": np.arange(1, len(vals) + 1) * 10, "val": vals}).to_csv(path, index=False)
    return str(path)


def test_render_tuning_scores_the_last_val_point_and_chooses_per_kind_and_addon(tmp_path):
    assert val_score(_curve(tmp_path / "c.csv", [9.0, 7.0, math.nan])) == 7.0
    # paired FD (lower better): vem trial 1 best on the mean over 2 seeds; unpaired: defaults best
    vals = {("paired", "vem", 0): [9.0, 9.2], ("paired", "vem", 1): [8.0, 9.9], ("paired", "vem", 2): [8.5, 8.6],
            ("unpaired", "vem", 0): [5.0, 5.0], ("unpaired", "vem", 1): [5.5, 4.9], ("unpaired", "vem", 2): [6.0, 6.0]}
    trials = []
    for (kind, addon, k), per_seed in vals.items():
        for s, v in enumerate(per_seed):
            trials.append({"task": f"t_{kind}", "kind": kind, "addon": addon, "trial": k, "seed": s,
                           "lambda_mi": 0.1 * (k + 1), "values": {"addon.vem.steps": k + 2} if k else {},
                           "curve": _curve(tmp_path / f"{kind}{k}{s}.csv", [20.0, v]), "higher_is_better": False})
    csv, js, md = render_tuning({"method": "omgd", "trials": trials}, tmp_path / "tuning" / "omgd.csv")
    choice = json.loads(open(js).read())["choice"]
    assert choice["paired"]["vem"]["trial"] == 2            # means 9.1 / 8.95 / 8.55
    assert choice["paired"]["vem"]["values"] == {"addon.vem.steps": 4}
    assert choice["paired"]["vem"]["val"] == pytest.approx(8.55)
    assert choice["paired"]["vem"]["val_default"] == pytest.approx(9.1)
    assert choice["unpaired"]["vem"]["trial"] == 0 and choice["unpaired"]["vem"]["trials"] == 3
    df = pd.read_csv(csv)
    assert len(df) == 12 and df["chosen"].sum() == 4        # the chosen trials' rows over both seeds
    assert "paired / vem: trial 2" in open(md).read()


CFG = {"tasks": ["fmnist_edges2shoes", "fmnist_scenes", "fmnist_sneaker2boot"], "methods": ["omgd"],
       "addons": ["none", "vid", "crd", "vem"], "seeds": [0, 1], "tables": [4], "teacher_seed": 0, "overrides": {},
       "lambda_mi_sweep": [], "sweep_task": "fmnist_scenes"}
TUNING = {"tasks": ["fmnist_edges2shoes", "fmnist_sneaker2boot"], "methods": ["omgd"], "addons": ["vid", "vem"],
          "trials": 3, "seeds": [100], "space": {"vid": {"lambda_mi": {"log": [0.01, 10.0]}},
                                                 "vem": {"addon.vem.steps": {"int": [2, 5]}}}}


def test_plan_runs_every_trial_on_the_tuning_tasks_and_the_chosen_one_everywhere():
    plan = Plan(dict(CFG, tuning=TUNING))
    assert plan.tuning_methods() == ["omgd"]
    spec = plan.tuning_spec("omgd")["trials"]
    assert len(spec) == 2 * 2 * 3                          # tasks x add-ons x trials, 1 seed
    vem1 = next(t for t in spec if t["addon"] == "vem" and t["trial"] == 1 and t["kind"] == "paired")
    steps = plan.trials["vem"][1]["addon.vem.steps"]
    assert vem1["values"] == {"addon.vem.steps": steps} and vem1["lambda_mi"] == 0.1
    assert vem1["curve"] == "results/runs/fmnist_edges2shoes/omgd/vem_lam0.1+t1/seed100/curve.csv"
    vid2 = next(t for t in spec if t["addon"] == "vid" and t["trial"] == 2 and t["kind"] == "unpaired")
    lam = plan.trials["vid"][2]["lambda_mi"]
    assert vid2["curve"] == f"results/runs/fmnist_sneaker2boot/omgd/vid_lam{lam_str(lam)}+t2/seed100/curve.csv"
    assert vid2["values"] == {}                            # its lambda is in the run's name
    t0 = next(t for t in spec if t["addon"] == "vem" and t["trial"] == 0 and t["kind"] == "paired")
    assert t0["curve"] == "results/runs/fmnist_edges2shoes/omgd/vem_lam0.1/seed100/curve.csv"
    assert parse_variant("vem_lam0.1+t1/seed100") == ("run", "vem", "0.1", 100, "+t1")
    assert json.loads(plan.run_overrides_json("omgd", "+t1", "vem")) == {"addon.vem.steps": steps}
    # the choice of a kind reaches every task of that kind over the evaluation seeds; trial 0 adds nothing
    choice = {"paired": {"vem": {"trial": 1}, "vid": {"trial": 0}}}
    got = plan.tuned_metrics("omgd", choice)
    assert got == [f"results/runs/{t}/omgd/vem_lam0.1+t1/seed{s}/metrics.json"
                   for t in ("fmnist_edges2shoes", "fmnist_scenes") for s in (0, 1)]


@pytest.mark.parametrize("change,match", [
    ({"addons": ["vid", "vem", "crd"]}, "has no search space"),
    ({"tasks": ["fmnist_edges2shoes", "fmnist_scenes"]}, "one tuning task per task kind"),
    ({"tasks": ["fmnist_pullover2coat"]}, "is not among tasks"),
    ({"methods": ["cat"]}, "tuning.methods"),
    ({"space": {"vid": {"lambda_mi": {"log": [0.01, 10.0]}}, "vem": {"addon.vem.steps": {"int": [0, 5]}}}},
     r"tuning: .* on fmnist_edges2shoes \(omgd\): addon.vem.steps must be >= 1, got 0"),
    ({"space": {"vid": {"lambda_mi": {"log": [0.01, 10.0]}}, "vem": {"addon.vem.stepz": {"int": [1, 5]}}}},
     "unknown config key 'addon.vem.stepz'"),
])
def test_a_bad_tuning_config_is_refused_before_any_job(change, match):
    with pytest.raises(ConfigError, match=match):
        Plan(dict(CFG, tuning=dict(TUNING, **change)))


def test_only_the_configured_addons_are_tuned():
    plan = Plan(dict(CFG, addons=["none", "vid"], tuning=TUNING))
    assert list(plan.trials) == ["vid"]
    assert {t["addon"] for t in plan.tuning_spec("omgd")["trials"]} == {"vid"}
    edges = next(t for t in plan.tuning_spec("omgd")["trials"] if t["task"] == "fmnist_edges2shoes")
    assert edges["scale"] == "mini" and edges["metric"] == "fd_fmnist on val"      # recorded in the tuning CSV
    # a run without any add-on to tune (addons: [none]) tunes nothing, instead of failing to build its DAG
    bare = Plan(dict(CFG, addons=["none"], tuning=TUNING))
    assert plan.tuning_methods() and bare.tuning_methods() == [] and bare.trials == {}


def test_a_dimension_set_to_null_by_a_config_of_ones_own_is_not_tuned(root):
    """Config files merge key by key (snakemake's update_config): null fixes a default dimension instead."""
    import yaml
    from snakemake.utils import update_config

    default = yaml.safe_load((root / "config" / "config.yaml").read_text())
    merged = yaml.safe_load((root / "config" / "config.yaml").read_text())
    update_config(merged, yaml.safe_load("tuning: {space: {vem: {addon.vem.noise_std: null, addon.vem.steps: null}}}"))
    assert set(merged["tuning"]["space"]["vem"]) == set(default["tuning"]["space"]["vem"])   # merged, not replaced
    tuning = dict(default["tuning"], methods=["omgd"], addons=["vem"])
    kept, fixed = (Plan(dict(CFG, tuning=dict(tuning, space=t["tuning"]["space"]))) for t in (default, merged))
    assert {"addon.vem.noise_std", "addon.vem.steps"} <= set(kept.trials["vem"][1])
    for trial in fixed.trials["vem"][1:]:
        assert set(trial) == {"lambda_mi", "addon.vem.lr", "addon.vem.step_size"}
    assert fixed.tuning["space"]["vem"].keys() == set(trial)                  # the bounds probed: those left
    # a null that removes nothing is a typo, and a space left empty is no space
    with pytest.raises(ConfigError, match=r"tuning.space.vem.addon.vem.noise_sdt: null leaves a dimension out, "
                                          r"but fmnist_edges2shoes \(omgd\) has no config key"):
        Plan(dict(CFG, tuning=dict(tuning, space={"vem": {**default["tuning"]["space"]["vem"],
                                                          "addon.vem.noise_sdt": None}})))
    with pytest.raises(ConfigError, match="tuning.space.vem: every dimension is null"):
        Plan(dict(CFG, tuning=dict(tuning, space={"vem": dict.fromkeys(default["tuning"]["space"]["vem"])})))


def test_a_value_the_space_admits_is_checked_even_when_no_trial_drew_it():
    space = {"vid": {"lambda_mi": {"log": [0.01, 10.0]}}, "vem": {"addon.vem.steps": {"choice": [3, 0]}}}
    with pytest.raises(ConfigError, match=r"tuning.space.vem.addon.vem.steps = 0 on fmnist_edges2shoes"):
        Plan(dict(CFG, tuning=dict(TUNING, trials=1, space=space)))


def test_a_trial_arm_of_an_untuned_addon_or_out_of_range_is_refused():
    plan = Plan(dict(CFG, tuning=TUNING))
    with pytest.raises(ConfigError, match="trials 0..2"):
        plan.arm_overrides("omgd", "+t3", "vem")
    with pytest.raises(ConfigError, match="not tuned here"):
        plan.arm_overrides("omgd", "+t1", "crd")


def test_lambda_names_never_use_an_exponent():
    assert [lam_str(x) for x in (0.1, 10.0, 1e-5, 0.0123, 100)] == ["0.1", "10", "0.00001", "0.0123", "100"]


def test_table4_shows_tuned_rows_beside_the_defaults_and_table1_does_not(tmp_path):
    from vem.tables import render

    vals = {("none", None, ""): [20.0, 21.0, 22.0], ("vem", 0.1, ""): [19.5, 21.2, 22.1],
            ("vem", 2.5, "t1"): [15.0, 16.5, 17.0]}
    paths = []
    for (addon, lam, arms), v in vals.items():
        for s, x in enumerate(v):
            p = write_record(tmp_path / (arms or "default"), "fmnist_sneaker2boot", "omgd", addon, s, x, lambda_mi=lam)
            rec = json.loads(p.read_text())
            rec["arms"] = [arms] if arms else []
            p.write_text(json.dumps(rec))
            paths.append(p)
    render(4, paths, tmp_path / "table4.csv")
    df = pd.read_csv(tmp_path / "table4.csv")
    m = df[df["block"].str.startswith("measured")].set_index("method")
    assert list(m.index) == ["OMGD", "OMGD + VEM", "OMGD + VEM (tuned: trial 1)"]
    tuned = m.loc["OMGD + VEM (tuned: trial 1)"]
    ref = stats.ttest_rel(vals[("vem", 2.5, "t1")], vals[("none", None, "")])
    assert tuned["p_paired"] == pytest.approx(ref.pvalue)
    assert tuned["verdict"].startswith("better than OMGD")
    assert m.loc["OMGD + VEM", "mean"] == pytest.approx(np.mean(vals[("vem", 0.1, "")]))   # the default row kept
    assert "tuned: trial k" in (tmp_path / "table4.md").read_text()
    with pytest.raises(ValueError, match="none of the"):                # table 1: paired tasks only anyway
        render(1, paths, tmp_path / "table1.csv")
    render(2, paths, tmp_path / "table2.csv")
    t2 = pd.read_csv(tmp_path / "table2.csv")
    assert not t2["method"].astype(str).str.contains("tuned").any()


def test_dose_response_restricted_to_the_listed_methods():
    cfg = dict(CFG, methods={"omgd": "all", "cat": ["fmnist_sneaker2boot"]},
               dose_response={"tasks": ["fmnist_sneaker2boot"], "lambdas": [1.0, 10.0], "addons": ["vem"],
                              "seeds": [0]})
    every = Plan(cfg).dose_response_metrics()
    assert {p.split("/")[3] for p in every} == {"omgd", "cat"} and len(every) == 2 * 3
    only = Plan(dict(cfg, dose_response=dict(cfg["dose_response"], methods=["cat"]))).dose_response_metrics()
    assert only == [p for p in every if "/cat/" in p]
    with pytest.raises(ConfigError, match="dose_response.methods: 'gcc'"):
        Plan(dict(cfg, dose_response=dict(cfg["dose_response"], methods=["gcc"])))


def test_a_control_task_or_tuned_method_that_would_yield_nothing_is_refused():
    cfg = dict(CFG, methods={"omgd": ["fmnist_edges2shoes"], "cat": ["fmnist_sneaker2boot"]})
    with pytest.raises(ConfigError, match=r"control.tasks: none of control.methods \['omgd'\] runs on "
                                          r"'fmnist_sneaker2boot'"):
        Plan(dict(cfg, control={"tasks": ["fmnist_sneaker2boot"], "methods": ["omgd"], "addons": ["vem"],
                                "seeds": [0]}))
    with pytest.raises(ConfigError, match=r"tuning.methods: 'cat' runs on none of tuning.tasks \['fmnist_edges2"):
        Plan(dict(cfg, tuning=dict(TUNING, tasks=["fmnist_edges2shoes"], methods=["omgd", "cat"])))
    assert Plan(dict(cfg, tuning=dict(TUNING, methods=["omgd", "cat"]))).tuning_methods() == ["omgd", "cat"]


def test_a_study_of_the_addons_refuses_a_method_run_alone():
    """Slimming combines no add-on: naming it in the dose-response or the tuning would schedule add-on runs
    its training rejects (after pretrain and prune): refused while the DAG is built."""
    cfg = dict(CFG, tasks=["fmnist_uncond"], methods={"gcc": "all", "slimming": "all"}, tables=[3])
    dose = {"tasks": ["fmnist_uncond"], "lambdas": [1.0], "addons": ["vem"], "seeds": [0]}
    assert Plan(dict(cfg, dose_response=dose)).dose_response_metrics()        # gcc's, by default
    with pytest.raises(ConfigError, match="dose_response.methods: 'slimming' is not combined with the add-ons"):
        Plan(dict(cfg, dose_response=dict(dose, methods=["slimming"])))
    with pytest.raises(ConfigError, match="tuning.methods: 'slimming' is not combined with the add-ons"):
        Plan(dict(cfg, tuning=dict(TUNING, tasks=["fmnist_uncond"], methods=["slimming"])))
