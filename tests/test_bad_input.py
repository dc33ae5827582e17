"""Malformed input, tried systematically: every case fails with exit status 2 and ONE line
``vem: error: ...`` naming the problem, and leaves nothing in the output folder (no file that looks done,
no temporary file)."""

import gzip
import shutil

import numpy as np
import pytest

from tests.conftest import ROOT
from vem.cli import main

TASK = "fmnist_edges2shoes"


@pytest.fixture(scope="module")
def files(edges_assets, tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    (d / "garbage.pt").write_bytes(b"\x80\x04 this is not a checkpoint")
    (d / "garbage.npz").write_bytes(b"PK\x03\x04 truncated zip")
    np.savez(d / "partial.npz", train_A=np.zeros((2, 32, 32), np.uint8))
    # Fashion-MNIST folders with a corrupt image file / a truncated archive
    src = ROOT / "resources" / "fmnist"
    for name, mutate in (("corrupt_fm", "garbage"), ("truncated_fm", "truncate")):
        fm = d / name
        fm.mkdir()
        for f in src.glob("*.gz"):
            shutil.copy(f, fm / f.name)
        target = fm / "t10k-images-idx3-ubyte.gz"
        if mutate == "garbage":
            target.write_bytes(gzip.compress(b"\x00\x00\x08\x03" + b"\x00" * 100))  # IDX header, no images
        else:
            target.write_bytes(target.read_bytes()[:5000])                         # cut mid-stream
    return edges_assets, d


def compress(a, out, *extra, addon="vem", task=TASK, data=None, perceptual=None, evalnet=None):
    return ["stage", "--task", task, "--method", "omgd", "--addon", addon, "--threads", "1",
            "--data", str(data or a / "d.npz"), "--input", f"perceptual={perceptual or a / 'perceptual.pt'}",
            "--evalnet", str(evalnet or a / "feature.pt"), "--set", "omgd.iters=4", "--set", "omgd.batch=4",
            "--set", "omgd.eval_every=2", "--set", "omgd.share_teachers=false", "--out", str(out / "student.pt"),
            "--table", str(out / "curve.csv"), *extra]


CASES = {
    # id: (argv builder (assets, bad-files dir, out dir), words the one line must contain)
    "unknown task id": (lambda a, b, o: compress(a, o, task="fmnist_horses"), ["fmnist_horses"]),
    "unknown add-on id": (lambda a, b, o: compress(a, o, addon="mine"), ["unknown add-on", "'mine'"]),
    "unknown method id": (lambda a, b, o: [x if x != "omgd" else "gcc2" for x in compress(a, o)],
                          ["unknown method", "'gcc2'"]),
    "unknown config key": (lambda a, b, o: compress(a, o, "--set", "omgd.iterz=3"), ["omgd.iterz"]),
    "wrong type": (lambda a, b, o: compress(a, o, "--set", "omgd.lr=fast"), ["omgd.lr", "fast"]),
    "negative size": (lambda a, b, o: compress(a, o, "--set", "omgd.batch=-2"), ["omgd.batch", "-2"]),
    "zero iterations": (lambda a, b, o: compress(a, o, "--set", "omgd.iters=0"), ["omgd.iters", "0"]),
    "zero Langevin steps": (lambda a, b, o: compress(a, o, "--set", "addon.vem.steps=0"), ["steps", "0"]),
    "nce_k too large": (lambda a, b, o: compress(a, o, "--set", "addon.crd.nce_k=10000000", addon="crd"),
                        ["addon.crd.nce_k 10000000", "training inputs of fmnist_edges2shoes"]),
    "negative checkpoint interval": (lambda a, b, o: compress(a, o, "--checkpoint-every", "-5"),
                                     ["--checkpoint-every", "-5"]),
    "missing data file": (lambda a, b, o: compress(a, o, data=b / "nowhere.npz"), ["nowhere.npz", "does not exist"]),
    "corrupt data file": (lambda a, b, o: compress(a, o, data=b / "garbage.npz"), ["garbage.npz", "unreadable"]),
    "data file lacking arrays": (lambda a, b, o: compress(a, o, data=b / "partial.npz"), ["partial.npz", "lacks"]),
    "bad checkpoint": (lambda a, b, o: compress(a, o, perceptual=b / "garbage.pt"), ["garbage.pt", "corrupt"]),
    "missing checkpoint": (lambda a, b, o: compress(a, o, evalnet=b / "none.pt"), ["none.pt", "does not exist"]),
    "corrupt image file": (lambda a, b, o: ["prepare-data", "--task", TASK, "--fmnist", str(b / "corrupt_fm"),
                                            "--out", str(o / "d.npz")], ["t10k-images", "truncated"]),
    "truncated archive": (lambda a, b, o: ["fetch-fmnist", "--source", str(b / "truncated_fm"),
                                           "--out", str(o / "fm")], ["t10k-images", "gzip"]),
    "NaN-producing EBM learning rate": (lambda a, b, o: compress(a, o, "--set", "addon.vem.lr=1e30"),
                                        ["VEM: non-finite", "student iteration 1"]),
    # teachers update at iterations 1, 2, ... (n_dis 1), each through the D of before its step: the first
    # exploded step shows in iteration 2's teacher loss
    "NaN-producing learning rate": (lambda a, b, o: compress(a, o, "--set", "omgd.lr=1e30", "--set", "omgd.n_dis=1"),
                                    ["non-finite online teacher loss at iteration 2"]),
    # every value a job would reject is rejected with its name before the job does anything
    "add-on option outside its set": (lambda a, b, o: compress(a, o, "--set", "addon.vem.on_nonfinite=ignore"),
                                      ["addon.vem.on_nonfinite", "'ignore'"]),
    "zero reference size": (lambda a, b, o: compress(a, o, "--set", "addon.vem.step_ref_size=0"),
                            ["addon.vem.step_ref_size", ">= 1", "0"]),
    "negative threads": (lambda a, b, o: compress(a, o, "--threads", "-2"), ["--threads", "-2"]),
    "malformed overrides JSON": (lambda a, b, o: compress(a, o, "--overrides", "{omgd.iters: 3"),
                                 ["--overrides", "not valid JSON"]),
    "overrides not an object": (lambda a, b, o: compress(a, o, "--overrides", "[1, 2]"),
                                ["--overrides", "JSON object"]),
    "negative lambda": (lambda a, b, o: compress(a, o, "--lambda-mi", "-0.1"), ["--lambda-mi", "-0.1"]),
    "unknown stage": (lambda a, b, o: compress(a, o, "--stage", "prune"), ["no stage 'prune'"]),
    "add-on on a shared stage": (lambda a, b, o: compress(a, o, "--stage", "teachers", "--set",
                                                          "omgd.share_teachers=true"),
                                 ["runs per seed", "--addon", "run-scoped"]),
    "missing stage input": (lambda a, b, o: [x for x in compress(a, o) if x not in
                                             ("--input", f"perceptual={a / 'perceptual.pt'}")],
                            ["needs --input", "perceptual"]),
    "zero input channels": (lambda a, b, o: ["profile", "--model", "unet_256", "--in-nc", "0"],
                            ["--in-nc", "must be >= 1", "0"]),
    "bad KEY=VALUE": (lambda a, b, o: compress(a, o, "--set", "omgd.iters"), ["--set", "KEY=VALUE"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_malformed_input_fails_with_one_line_and_no_output(files, tmp_path, capsys, case):
    assets, bad = files
    out = tmp_path / "out"
    out.mkdir()
    build, words = CASES[case]
    code = main(build(assets, bad, out))
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("vem: error: ")]
    assert code == 2, err[-1500:]
    assert len(lines) == 1, err[-1500:]
    for w in words:
        assert w in lines[0], f"{case}: {w!r} not in {lines[0]!r}"
    left = sorted(p.name for p in out.rglob("*"))
    assert left == [], f"{case}: left {left}"


def test_the_table_is_systematic():
    assert len(CASES) >= 10


def test_nonfinite_energies_can_be_skipped_and_counted_instead(files, tmp_path, capsys):
    """addon.vem.on_nonfinite: skip -> the run finishes, every skipped VEM step is counted in the curve,
    and nothing non-finite reaches the student. (A huge Langevin *step* does not produce NaN: the chain is
    clamped to [-1, 1].)"""
    import pandas as pd
    import torch

    assets, _ = files
    out = tmp_path / "out"
    code = main(compress(assets, out, "--set", "addon.vem.lr=1e30", "--set", "addon.vem.on_nonfinite=skip"))
    assert code == 0, capsys.readouterr().err[-1500:]
    curve = pd.read_csv(out / "curve.csv")
    assert curve["vem_skipped"].iloc[-1] >= 1          # the energy model blew up after its first update
    assert curve["val"].notna().all()
    sd = torch.load(out / "student.pt", weights_only=True)["state_dict"]
    assert all(torch.isfinite(v).all() for v in sd.values() if v.is_floating_point())
