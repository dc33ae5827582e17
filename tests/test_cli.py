"""The command line fails fast with one clear line on bad input and writes nothing that looks done."""

import subprocess
import sys

import pytest
import torch

from .conftest import ROOT, run_env, run_vem


def vem(*args):
    """The command run in this process (``run_vem``); the first test checks the same through a real process."""
    return run_vem(args)


def one_error_line(res):
    assert res.returncode == 2, res.stderr
    lines = [ln for ln in res.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("vem: error: ")
    return lines[0]


def test_unknown_task_is_one_line(tmp_path):
    """Through a real ``python -m vem`` process: its exit status and its stderr."""
    res = subprocess.run([sys.executable, "-m", "vem", "stage", "--task", "fmnist_nope", "--method", "omgd",
                          "--addon", "vem", "--data", "x", "--input", "perceptual=x", "--evalnet", "x",
                          "--out", str(tmp_path / "s.pt"), "--table", str(tmp_path / "c.csv")],
                         capture_output=True, text=True, env=run_env(), cwd=ROOT, timeout=120)
    assert "fmnist_nope" in one_error_line(res)
    assert not (tmp_path / "s.pt").exists()
    same = vem(*res.args[3:])                                  # in-process, as the other tests run it
    assert (same.returncode, same.stderr) == (res.returncode, res.stderr)


def test_unknown_override_key_is_named(tmp_path):
    line = one_error_line(vem("train-teacher", "--task", "fmnist_scenes", "--role", "original", "--data", "x",
                              "--evalnet", "x", "--set", "teachers.original.itres=3",
                              "--out", str(tmp_path / "g.pt"), "--curve", str(tmp_path / "c.csv")))
    assert "teachers.original.itres" in line


def test_wrong_type_and_negative_values_are_named(tmp_path):
    args = ["train-teacher", "--task", "fmnist_scenes", "--role", "original", "--data", "x", "--evalnet", "x",
            "--out", str(tmp_path / "g.pt"), "--curve", str(tmp_path / "c.csv")]
    line = one_error_line(vem(*args, "--set", "teachers.original.iters=lots"))
    assert "'teachers.original.iters' must be int" in line
    assert "must be >= 0" in one_error_line(vem(*args, "--set", "teachers.original.batch=-4"))
    assert "teachers.original.batch must be >= 1, got 0" in one_error_line(vem(*args, "--set",
                                                                                "teachers.original.batch=0"))
    line = one_error_line(vem(*args, "--threads", "-1"))
    assert "argument --threads" in line and "-1" in line
    line = one_error_line(vem(*args, "--overrides", "{not json"))
    assert "argument --overrides" in line and "not valid JSON" in line


def test_missing_and_corrupt_inputs(tmp_path):
    out = tmp_path / "m.json"
    common = ["evaluate", "--task", "fmnist_scenes", "--method", "omgd", "--data", str(tmp_path / "d.npz"),
              "--evalnet", "x", "--images", str(tmp_path / "i.zip"), "--out", str(out)]
    line = one_error_line(vem(*common, "--generator", str(tmp_path / "missing.pt")))
    assert "missing.pt" in line and "does not exist" in line
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    line = one_error_line(vem(*common, "--generator", str(bad)))
    assert "bad.pt" in line and "corrupt" in line
    assert not out.exists()


def test_checkpoints_load_weights_only(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    p = tmp_path / "evil.pt"
    torch.save({"x": Evil()}, p)
    from vem.utils import load_checkpoint

    with pytest.raises(ValueError, match="weights-only"):
        load_checkpoint(p)


def test_profile_json_and_bad_size():
    res = vem("profile", "--model", "mobile_resnet_9blocks", "--ngf", "16", "--size", "256")
    assert res.returncode == 0, res.stderr
    import json

    rec = json.loads(res.stdout.strip().splitlines()[-1])
    assert abs(rec["macs"] - 1.408e9) < 5e6 and isinstance(rec["params"], int)
    assert "--size" in one_error_line(vem("profile", "--model", "unet_256", "--size", "4"))


def test_profile_of_the_unconditional_paper_models_gives_both_counts():
    import json

    pruned = "_".join(["154"] * 10 + ["77", "77", "39", "39"])
    res = json.loads(vem("profile", "--model", "stylegan2_256", "--net-shape", pruned).stdout)
    assert res["macs_cagc"] == 4_123_578_080 and res["input"] == [1, 512, 1, 1] and res["macs"] > res["macs_cagc"]
    res = json.loads(vem("profile", "--model", "sagan_64").stdout)
    assert res["macs_gcc"] == 23_449_600 and res["input"] == [1, 128, 1, 1]
    assert "14 channel groups" in one_error_line(vem("profile", "--model", "stylegan2_256", "--net-shape", "1_2"))
    assert "--net-shape" in one_error_line(vem("profile", "--model", "unet_256", "--net-shape", "4_4"))


def test_a_teachers_config_hash_names_its_task_and_training_not_the_evaluation():
    """Two tasks' Originals with the same recipe (edges2shoes and scenes) used to share a config hash (only the
    teacher section was hashed); the identity now holds the task, the augmentation and the val images, and not
    settings that do not change the training (latency timing)."""
    from vem.cli import teacher_identity
    from vem.config import resolve
    from vem.utils import config_hash

    def h(task, ov=None):
        return config_hash(teacher_identity(resolve(task, ov or {}), task, "original"))

    edges, scenes = resolve("fmnist_edges2shoes", {}), resolve("fmnist_scenes", {})
    assert edges["teachers"]["original"] == scenes["teachers"]["original"]       # the same recipe ...
    assert h("fmnist_edges2shoes") != h("fmnist_scenes")                        # ... two teachers
    assert h("fmnist_edges2shoes") == h("fmnist_edges2shoes", {"eval.latency.runs": 3})
    assert h("fmnist_edges2shoes") != h("fmnist_edges2shoes", {"eval.val_images": 100})
    assert h("fmnist_edges2shoes") != h("fmnist_edges2shoes", {"teachers.original.iters": 7})


def test_source_commit_names_the_checkout_or_says_unknown(tmp_path):
    """Every metrics file's versions carry the checkout's commit (vem_commit); outside git: 'unknown'."""
    import re

    from vem.utils import source_commit, versions

    assert re.fullmatch(r"[0-9a-f]{12}(-dirty)?", source_commit())
    assert source_commit(str(tmp_path)) == "unknown"
    assert versions()["vem_commit"] == source_commit()


def test_the_help_names_every_dataset_weights_file_and_paper_model():
    """The help texts are written out (building the parser imports nothing heavy); they must not go stale."""
    from vem.cli import build_parser
    from vem.data.paper_datasets import DATASETS, WEIGHTS
    from vem.models.backbones import PAPER_MODELS

    subs = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    helps = {c.dest: c.help for c in subs._choices_actions}
    for name in DATASETS:
        assert name in helps["dataset"], name
    for name in WEIGHTS:
        assert name in helps["weights"], name
    model = next(a for a in subs.choices["profile"]._actions if a.dest == "model").help
    for name in PAPER_MODELS:
        assert name in model, name
