"""Run configuration: preset -> per-task resolution, override validation, add-on keyword arguments.

The expected resolved configuration is rebuilt here from the YAML file itself (kind section + task
delta, merged by a few lines of independent code), so the tests do not pin values that the preset
may legitimately retune; the per-task deltas the paper prescribes are pinned explicitly.
"""

from __future__ import annotations

import copy
import math
import os
import sys

import pytest
import yaml

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

from vem.config import CONFIG_DIR, ConfigError, addon_kwargs, resolve, unflatten  # noqa: E402
from vem.data.tasks import MINI_TASKS, get_task  # noqa: E402


@pytest.fixture(scope="module")
def preset():
    return yaml.safe_load((CONFIG_DIR / "mini.yaml").read_text())


def _merge(base, delta):
    out = copy.deepcopy(base)
    for k, v in delta.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) else v
    return out


@pytest.mark.parametrize("task", MINI_TASKS)
def test_resolve_is_kind_plus_task_delta(task, preset):
    kind = get_task(task).kind
    cfg = resolve(task)
    expected = _merge(preset["kinds"][kind], preset["tasks"].get(task) or {})
    expected.update(evalnets=preset["evalnets"], task=task, scale="mini")
    assert cfg == expected
    # kind-specific structure
    if kind == "paired":
        assert sorted(cfg["teachers"]) == ["original"]
        assert cfg["addon"]["positive"] == "gt"
        assert cfg["teachers"]["original"]["arch"] == "unet"
    else:
        assert sorted(cfg["teachers"]) == ["omgd", "original"]
        assert cfg["addon"]["positive"] == "teacher"
        assert cfg["teachers"]["original"]["arch"] == "resnet"
        assert cfg["teachers"]["omgd"]["arch"] == "mobile_resnet"
    assert set(cfg["addon"]) >= {"lambda_mi", "vem", "vid", "crd", "positive"}


def test_paper_task_deltas():
    scenes, e2s = resolve("fmnist_scenes"), resolve("fmnist_edges2shoes")
    assert scenes["omgd"]["lambda_cd"] == 50.0        # cityscapes: lambda_CD 5e1
    assert scenes["omgd"]["n_dis"] == 3                # cityscapes: n_dis 3
    assert scenes["addon"]["vem"]["step_size"] == 50.0  # cityscapes: Langevin step 50
    assert isinstance(scenes["omgd"]["lambda_cd"], float)
    # everything else is the paired kind's value
    a, b = copy.deepcopy(scenes), copy.deepcopy(e2s)
    for c in (a, b):
        del c["omgd"]["lambda_cd"], c["omgd"]["n_dis"], c["addon"]["vem"]["step_size"], c["task"]
    assert a == b
    assert e2s["addon"]["vem"]["step_size"] != 50.0 or e2s["omgd"]["lambda_cd"] != 50.0
    assert resolve("fmnist_pullover2coat")["omgd"]["lambda_cd"] == 100.0  # summer2winter: 1e2
    # resolving returns fresh copies: mutating one must not leak into the next
    scenes["omgd"]["lambda_cd"] = -1
    assert resolve("fmnist_scenes")["omgd"]["lambda_cd"] == 50.0


# --------------------------------------------------------------------------------------------------
# overrides


def test_dotted_and_nested_overrides():
    a = resolve("fmnist_edges2shoes", {"omgd.iters": 7, "addon.vem.steps": 3})
    b = resolve("fmnist_edges2shoes", {"omgd": {"iters": 7}, "addon": {"vem": {"steps": 3}}})
    assert a == b
    assert a["omgd"]["iters"] == 7 and a["addon"]["vem"]["steps"] == 3
    # a nested section replaces only the keys it names
    base = resolve("fmnist_edges2shoes")
    assert a["addon"]["vem"]["width"] == base["addon"]["vem"]["width"]
    assert a["omgd"]["batch"] == base["omgd"]["batch"]


@pytest.mark.parametrize("order", ["dotted_first", "nested_first"])
def test_mixed_forms_combine_and_input_untouched(order):
    items = [("addon.vem.steps", 3), ("addon", {"vem": {"step_size": 5.0}})]
    if order == "nested_first":
        items.reverse()
    ov = dict(items)
    before = copy.deepcopy(ov)
    assert unflatten(ov) == {"addon": {"vem": {"steps": 3, "step_size": 5.0}}}
    assert ov == before  # the caller's overrides are not modified
    cfg = resolve("fmnist_edges2shoes", ov)
    assert cfg["addon"]["vem"]["steps"] == 3 and cfg["addon"]["vem"]["step_size"] == 5.0


def test_unknown_key_names_full_dotted_key():
    with pytest.raises(ConfigError, match=r"'addon\.vem\.nope'"):
        resolve("fmnist_edges2shoes", {"addon.vem.nope": 1})
    with pytest.raises(ConfigError, match=r"'omgd\.iterz'"):
        resolve("fmnist_edges2shoes", {"omgd": {"iterz": 1}})
    with pytest.raises(ConfigError, match=r"'nope'"):
        resolve("fmnist_edges2shoes", {"nope.x": 1})


def test_wrong_type_names_key():
    with pytest.raises(ConfigError, match=r"'omgd\.iters'.*int.*'x'"):
        resolve("fmnist_edges2shoes", {"omgd.iters": "x"})
    with pytest.raises(ConfigError, match=r"'omgd\.iters'"):
        resolve("fmnist_edges2shoes", {"omgd.iters": 2.5})
    with pytest.raises(ConfigError, match=r"'addon\.positive'"):
        resolve("fmnist_edges2shoes", {"addon.positive": 3})
    with pytest.raises(ConfigError, match=r"'omgd' must be a mapping"):
        resolve("fmnist_edges2shoes", {"omgd": 3})


@pytest.mark.parametrize("key,value", [("omgd.iters", -1), ("omgd.lr", -0.1),
                                       ("omgd.lambda_cd", -5),       # an int for a float key
                                       ("omgd.lr", math.nan)])
def test_negative_or_nan_rejected(key, value):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        resolve("fmnist_edges2shoes", {key: value})


def test_int_for_float_key_becomes_float():
    cfg = resolve("fmnist_edges2shoes", {"omgd.lambda_cd": 20, "addon.lambda_mi": 0})
    assert cfg["omgd"]["lambda_cd"] == 20.0 and isinstance(cfg["omgd"]["lambda_cd"], float)
    assert cfg["addon"]["lambda_mi"] == 0.0 and isinstance(cfg["addon"]["lambda_mi"], float)


def test_bool_and_int_not_interchangeable():
    with pytest.raises(ConfigError, match=r"'omgd\.iters'"):
        resolve("fmnist_edges2shoes", {"omgd.iters": True})
    with pytest.raises(ConfigError, match=r"'omgd\.lr'"):
        resolve("fmnist_edges2shoes", {"omgd.lr": False})


def test_range_checks_after_merge():
    with pytest.raises(ConfigError, match=r"omgd\.n_dis must be >= 1"):
        resolve("fmnist_edges2shoes", {"omgd.n_dis": 0})
    with pytest.raises(ConfigError, match=r"teachers\.original\.batch"):
        resolve("fmnist_sneaker2boot", {"teachers.original.batch": 0})
    with pytest.raises(ConfigError, match=r"addon\.vem\.step_size must be > 0"):
        resolve("fmnist_edges2shoes", {"addon.vem.step_size": 0})
    with pytest.raises(ConfigError, match="addon.positive must be 'gt' or 'teacher'"):
        resolve("fmnist_edges2shoes", {"addon.positive": "both"})


def test_foreign_teacher_roles():
    # teachers.omgd exists for unpaired tasks only: a paired task ignores it, an unpaired one applies it
    paired = resolve("fmnist_edges2shoes", {"teachers.omgd.iters": 3})
    assert "omgd" not in paired["teachers"]
    assert paired == resolve("fmnist_edges2shoes")
    assert resolve("fmnist_sneaker2boot", {"teachers.omgd.iters": 3})["teachers"]["omgd"]["iters"] == 3
    with pytest.raises(ConfigError, match=r"teachers\.nope"):
        resolve("fmnist_edges2shoes", {"teachers.nope.iters": 3})
    with pytest.raises(ConfigError, match=r"teachers\.nope"):
        resolve("fmnist_sneaker2boot", {"teachers.nope.iters": 3})


def test_gt_positive_impossible_for_unpaired():
    with pytest.raises(ConfigError, match="unpaired"):
        resolve("fmnist_sneaker2boot", {"addon.positive": "gt"})
    assert resolve("fmnist_edges2shoes", {"addon.positive": "teacher"})["addon"]["positive"] == "teacher"


def test_unknown_task():
    with pytest.raises(ValueError, match="nope"):
        resolve("nope")


# --------------------------------------------------------------------------------------------------
# add-on keyword arguments


def test_addon_kwargs_mapping():
    cfg = resolve("fmnist_edges2shoes", {"addon.vem.n_blocks": 0, "addon.lambda_mi": 0.25})
    assert addon_kwargs(cfg, "none") == {}
    kw = addon_kwargs(cfg, "vem")
    assert kw["n_blocks"] is None                  # 0 means automatic
    assert kw["lambda_mi"] == 0.25
    assert {k: v for k, v in kw.items() if k not in ("n_blocks", "lambda_mi")} == \
        {k: v for k, v in cfg["addon"]["vem"].items() if k != "n_blocks"}
    assert addon_kwargs(cfg, "vid") == {**cfg["addon"]["vid"], "lambda_mi": 0.25}
    assert addon_kwargs(cfg, "crd", lambda_mi=0.05)["lambda_mi"] == 0.05  # the sweep's explicit value wins
    # an explicit depth is kept, and the config itself is not modified
    cfg2 = resolve("fmnist_edges2shoes", {"addon.vem.n_blocks": 2})
    assert addon_kwargs(cfg2, "vem")["n_blocks"] == 2
    assert cfg["addon"]["vem"]["n_blocks"] == 0


@pytest.mark.parametrize("task", ["fmnist_edges2shoes", "fmnist_sneaker2boot"])
def test_build_every_addon_from_config(task):
    from vem.mi import ADDONS, build_addon

    cfg = resolve(task, {"addon.crd.nce_k": 64, "addon.vem.n_blocks": 0})
    built = {name: build_addon(name, channels=1, image_size=32, n_data=100, t_channels=1, **addon_kwargs(cfg, name))
             for name in ("none", "vid", "crd", "vem")}
    for name, a in built.items():
        assert isinstance(a, ADDONS[name])
    lam = cfg["addon"]["lambda_mi"]
    assert built["vid"].lambda_mi == built["crd"].lambda_mi == built["vem"].lambda_mi == lam
    assert built["crd"].nce_k == 64 and built["crd"].n_data == 100
    assert built["vem"].step_size == cfg["addon"]["vem"]["step_size"]
    assert len(built["vem"].energy.blocks) == 4  # automatic depth at 32 px: log2(32 / 2)
    # the preset's CRD bank (nce_k 4096) does not fit 100 images: a clear error, not a crash later
    with pytest.raises(ValueError, match="nce_k"):
        build_addon("crd", channels=1, image_size=32, n_data=100, t_channels=1,
                    **addon_kwargs(resolve(task, {"addon.crd.nce_k": 4096}), "crd"))
