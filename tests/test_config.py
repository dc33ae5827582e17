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
from vem.data.tasks import MINI_TASKS, TASKS, get_task  # noqa: E402


@pytest.fixture(scope="module")
def preset():
    return yaml.safe_load((CONFIG_DIR / "mini.yaml").read_text())


@pytest.fixture(scope="module")
def omgd_file():
    from vem.methods import get_method

    return yaml.safe_load(get_method("omgd").config_file.read_text())


def _merge(base, delta):
    out = copy.deepcopy(base)
    for k, v in delta.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) else v
    return out


@pytest.mark.parametrize("task", [t for t in MINI_TASKS if get_task(t).kind != "unconditional"])
def test_resolve_is_kind_plus_task_delta(task, preset, omgd_file):
    kind = get_task(task).kind
    cfg = resolve(task)
    expected = _merge(preset["kinds"][kind], preset["tasks"].get(task) or {})
    expected.update(evalnets=preset["evalnets"], eval=preset["eval"], task=task, scale="mini", kind=kind)
    assert cfg == expected
    assert "omgd" not in cfg                      # a method's section only when that method is resolved
    # the method's section comes from its own file: kind values + task delta
    with_omgd = resolve(task, method="omgd")
    assert with_omgd["omgd"] == _merge(omgd_file["mini"]["kinds"][kind], omgd_file["mini"]["tasks"].get(task) or {})
    assert {k: v for k, v in with_omgd.items() if k != "omgd"} == cfg
    assert sorted(cfg["teachers"]) == ["original"]
    if kind == "paired":
        assert cfg["addon"]["positive"] == "gt" and cfg["teachers"]["original"]["arch"] == "unet"
        assert "teacher" not in with_omgd["omgd"]
    else:
        assert cfg["addon"]["positive"] == "teacher" and cfg["teachers"]["original"]["arch"] == "resnet"
        assert with_omgd["omgd"]["teacher"]["arch"] == "mobile_resnet"
    assert set(cfg["addon"]) >= {"lambda_mi", "vem", "vid", "crd", "positive"}


def test_paper_task_deltas():
    scenes, e2s = resolve("fmnist_scenes", method="omgd"), resolve("fmnist_edges2shoes", method="omgd")
    assert scenes["omgd"]["lambda_cd"] == 50.0        # cityscapes: lambda_CD 5e1
    assert scenes["omgd"]["n_dis"] == 3                # cityscapes: n_dis 3
    assert scenes["addon"]["vem"]["step_size"] == 50.0  # cityscapes: Langevin step 50
    assert isinstance(scenes["omgd"]["lambda_cd"], float)
    # everything else is the paired kind's value
    a, b = copy.deepcopy(scenes), copy.deepcopy(e2s)
    for c in (a, b):
        del c["omgd"]["lambda_cd"], c["omgd"]["n_dis"], c["addon"]["vem"]["step_size"], c["task"]
    assert a == b
    assert resolve("fmnist_pullover2coat", method="omgd")["omgd"]["lambda_cd"] == 100.0  # summer2winter: 1e2
    # resolving returns fresh copies: mutating one must not leak into the next
    scenes["omgd"]["lambda_cd"] = -1
    assert resolve("fmnist_scenes", method="omgd")["omgd"]["lambda_cd"] == 50.0
    # the paper preset's deltas
    city = resolve("cityscapes", method="omgd")
    assert city["omgd"]["n_dis"] == 3 and city["omgd"]["iters"] == 520500 and city["addon"]["vem"]["step_size"] == 50.0
    s2w = resolve("summer2winter", method="omgd")
    assert s2w["omgd"]["teacher"]["iters"] == 222200 and s2w["omgd"]["lambda_cd"] == 100.0
    # CRD's negatives per task: its reference's 16,384 (paired) / 4,096 where the training set allows, else the
    # largest power of 2 below the training inputs (the memory bank draws nce_k of the others)
    nce_k = {t: resolve(t)["addon"]["crd"]["nce_k"] for t in TASKS}
    assert {t: nce_k[t] for t in ("edges2shoes", "cityscapes", "horse2zebra", "summer2winter", "celeba", "ffhq")} \
        == {"edges2shoes": 16384, "cityscapes": 2048, "horse2zebra": 512, "summer2winter": 1024, "celeba": 4096,
            "ffhq": 4096}
    assert all(k < TASKS[t].train_inputs for t, k in nce_k.items())


# --------------------------------------------------------------------------------------------------
# overrides


def test_dotted_and_nested_overrides():
    a = resolve("fmnist_edges2shoes", {"omgd.iters": 7, "addon.vem.steps": 3}, method="omgd")
    b = resolve("fmnist_edges2shoes", {"omgd": {"iters": 7}, "addon": {"vem": {"steps": 3}}}, method="omgd")
    assert a == b
    assert a["omgd"]["iters"] == 7 and a["addon"]["vem"]["steps"] == 3
    # a nested section replaces only the keys it names
    base = resolve("fmnist_edges2shoes", method="omgd")
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
        resolve("fmnist_edges2shoes", {"omgd": {"iterz": 1}})        # checked even when OMGD is not resolved
    with pytest.raises(ConfigError, match=r"'omgd\.teacher\.nope'"):
        resolve("fmnist_sneaker2boot", {"omgd.teacher.nope": 1}, method="omgd")
    with pytest.raises(ConfigError, match=r"'nope'"):
        resolve("fmnist_edges2shoes", {"nope.x": 1})


def test_wrong_type_names_key():
    with pytest.raises(ConfigError, match=r"'omgd\.iters'.*int.*'x'"):
        resolve("fmnist_edges2shoes", {"omgd.iters": "x"}, method="omgd")
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
    cfg = resolve("fmnist_edges2shoes", {"omgd.lambda_cd": 20, "addon.lambda_mi": 0}, method="omgd")
    assert cfg["omgd"]["lambda_cd"] == 20.0 and isinstance(cfg["omgd"]["lambda_cd"], float)
    assert cfg["addon"]["lambda_mi"] == 0.0 and isinstance(cfg["addon"]["lambda_mi"], float)


def test_bool_and_int_not_interchangeable():
    with pytest.raises(ConfigError, match=r"'omgd\.iters'"):
        resolve("fmnist_edges2shoes", {"omgd.iters": True})
    with pytest.raises(ConfigError, match=r"'omgd\.lr'"):
        resolve("fmnist_edges2shoes", {"omgd.lr": False})


@pytest.mark.parametrize("task, ov, msg", [
    ("fmnist_edges2shoes", {"omgd.n_dis": 0}, r"omgd\.n_dis must be >= 1, got 0"),
    ("fmnist_sneaker2boot", {"teachers.original.batch": 0}, r"teachers\.original\.batch must be >= 1, got 0"),
    ("fmnist_edges2shoes", {"addon.vem.step_size": 0}, r"addon\.vem\.step_size must be > 0, got 0"),
    ("fmnist_edges2shoes", {"addon.positive": "both"}, r"addon\.positive must be one of \['gt', 'teacher'\]"),
    # values that every job would reject later used to pass the dry run: an option outside its set, a
    # reference size of 0 (a ZeroDivisionError inside the job), a step that SLURM would run for nothing
    ("fmnist_edges2shoes", {"addon.vem.on_nonfinite": "ignore"}, r"addon\.vem\.on_nonfinite must be one of"),
    ("fmnist_edges2shoes", {"addon.vem.step_ref_size": 0}, r"addon\.vem\.step_ref_size must be >= 1, got 0"),
    ("fmnist_edges2shoes", {"addon.crd.nce_m": 1.0}, r"addon\.crd\.nce_m must be < 1"),
    ("fmnist_edges2shoes", {"omgd.init": "xavier"}, r"omgd\.init must be one of"),
    ("fmnist_edges2shoes", {"omgd.n_share": 9}, r"omgd\.n_share must be <= omgd\.n_layers_d \+ 2"),
    ("fmnist_sneaker2boot", {"omgd.teacher.norm": "group"}, r"omgd\.teacher\.norm must be one of"),
    ("fmnist_edges2shoes", {"omgd.decay_from": 1.5}, r"omgd\.decay_from must be <= 1"),
    ("fmnist_edges2shoes", {"eval.val_images": 1}, r"eval\.val_images must be >= 2"),
    ("fmnist_edges2shoes", {"eval.latency.backends": ["onnx"]}, r"eval\.latency\.backends must contain 'eager'"),
    ("fmnist_edges2shoes", {"teachers.original.arch": "unet256"}, r"teachers\.original\.arch must be one of"),
    ("fmnist_edges2shoes", {"teachers.original.num_downs": 6},
     r"teachers\.original\.num_downs 6 is too deep for 32 px inputs \(a U-Net halves them .*: at most 5\)"),
    # VEM's energy network pools 32 px to 16, then halves it per block: 4 blocks reach 1 px
    ("fmnist_edges2shoes", {"addon.vem.n_blocks": 5},
     r"addon\.vem\.n_blocks 5 is too deep for 32 px inputs \(the energy network halves its 16 px .*: at most 4\)"),
    ("edges2shoes", {"data.load_size": 40, "data.crop_size": 32, "teachers.original.num_downs": 5,
                     "addon.vem.n_blocks": 7},
     r"addon\.vem\.n_blocks 7 is too deep for 32 px inputs"),       # the paper's depth on toy crops
    # CRD's memory bank draws nce_k negatives among the other training inputs: the 5,500 training sneakers
    ("fmnist_sneaker2boot", {"addon.crd.nce_k": 5500},
     r"addon\.crd\.nce_k 5500 must be smaller than the 5500 training inputs of fmnist_sneaker2boot"),
])
def test_range_and_choice_checks_after_merge(task, ov, msg):
    with pytest.raises(ConfigError, match=msg):
        resolve(task, ov, method="omgd")


def test_keys_of_another_kind_apply_to_that_kind_only():
    # omgd.teacher exists for unpaired tasks only: a paired task ignores it, an unpaired one applies it
    paired = resolve("fmnist_edges2shoes", {"omgd.teacher.iters": 3}, method="omgd")
    assert paired == resolve("fmnist_edges2shoes", method="omgd")
    assert resolve("fmnist_sneaker2boot", {"omgd.teacher.iters": 3}, method="omgd")["omgd"]["teacher"]["iters"] == 3
    assert resolve("fmnist_sneaker2boot", {"omgd.wide_ngf": 4}, method="omgd") == \
        resolve("fmnist_sneaker2boot", method="omgd")
    with pytest.raises(ConfigError, match=r"teachers\.nope"):
        resolve("fmnist_edges2shoes", {"teachers.nope.iters": 3})
    with pytest.raises(ConfigError, match=r"'omgd\.teacher\.nope'"):
        resolve("fmnist_edges2shoes", {"omgd.teacher.nope": 3}, method="omgd")


def test_gt_positive_impossible_without_targets():
    with pytest.raises(ConfigError, match="unpaired"):
        resolve("fmnist_sneaker2boot", {"addon.positive": "gt"})
    # an unconditional task has no ground-truth image for a latent either (was accepted and silently ignored)
    for task, method, scale in (("fmnist_uncond", "gcc", "mini"), ("celeba", "gcc", "paper"),
                                ("fmnist_uncond_sg2", "cagc", "mini")):
        with pytest.raises(ConfigError, match=f"positive 'gt' is impossible for the unconditional task {task}"):
            resolve(task, {"addon.positive": "gt"}, method=method, scale=scale)
    assert resolve("fmnist_edges2shoes", {"addon.positive": "teacher"})["addon"]["positive"] == "teacher"


def test_unknown_task_and_method_and_unsupported_kind():
    with pytest.raises(ValueError, match="nope"):
        resolve("nope")
    with pytest.raises(ValueError, match="unknown method 'gcc2'"):
        resolve("fmnist_edges2shoes", method="gcc2")


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


def test_null_overrides_where_a_key_is_nullable():
    """Every value a key accepts can be given: null for a nullable key (VEM's unscaled Langevin step), a
    one-line refusal naming the key where it is not."""
    cfg = resolve("fmnist_edges2shoes", {"addon.vem.step_ref_size": None}, method="omgd")
    assert cfg["addon"]["vem"]["step_ref_size"] is None
    with pytest.raises(ConfigError, match=r"addon\.vem\.steps must be of type integer, got None"):
        resolve("fmnist_edges2shoes", {"addon.vem.steps": None}, method="omgd")


def test_a_delta_with_replace_stands_instead_of_the_section():
    sagan = resolve("fmnist_uncond")["teachers"]["original"]
    sg2 = resolve("fmnist_uncond_sg2")["teachers"]["original"]
    assert sagan["arch"] == "sagan" and "ngf" in sagan and "r1" not in sagan
    assert sg2["arch"] == "stylegan2" and "ngf" not in sg2 and "lr_d" not in sg2 and sg2["r1"] == 10.0
    assert "replace" not in sg2
    # a user override can replace a section too; the result is checked like any other
    ov = {"teachers": {"original": {"replace": True, "arch": "stylegan2", "source": "train", "iters": 3}}}
    assert resolve("fmnist_uncond", ov)["teachers"]["original"] == {"arch": "stylegan2", "source": "train",
                                                                   "iters": 3}
    with pytest.raises(ConfigError, match="teachers.original.replace must be true"):
        resolve("fmnist_uncond", {"teachers": {"original": {"replace": False}}})
    with pytest.raises(ConfigError, match="teachers.original.iters must be >= 1"):
        resolve("fmnist_uncond", {"teachers": {"original": {"replace": True, "arch": "sagan", "iters": 0}}})


def test_a_key_of_another_tasks_recipe_applies_to_that_task_only():
    # channel_max exists only in the StyleGAN2 Original's section (fmnist_uncond_sg2)
    ov = {"teachers.original.channel_max": 8}
    assert resolve("fmnist_uncond", ov) == resolve("fmnist_uncond")
    assert resolve("fmnist_edges2shoes", ov) == resolve("fmnist_edges2shoes")
    assert resolve("fmnist_uncond_sg2", ov)["teachers"]["original"]["channel_max"] == 8
    with pytest.raises(ConfigError, match=r"unknown config key 'teachers\.original\.nope'"):
        resolve("fmnist_uncond", {"teachers.original.nope": 8})
