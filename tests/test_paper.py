"""Paper preset at small size: DRN-D-105 and the Cityscapes mIoU protocol, the VGG16 perceptual net, real
dataset layouts -> task indices -> batches, released-teacher import, paper-scale evaluation (Inception FID,
DRN mIoU) with stand-in weights, and the paper tables' published-vs-measured columns."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from .conftest import ROOT, run_env

# --------------------------------------------------------------------------------------------------
# DRN-D-105 and the mIoU protocol


def test_drn_d_105_matches_the_published_size_and_release_layout():
    from vem.models.drn import DRNSeg, drn_d_base

    base = drn_d_base()
    n = sum(p.numel() for p in base.parameters())
    # DRN paper, Table 1: DRN-D-105 has 54.8 M parameters with its 1000-class 1x1 classifier (512 -> 1000)
    assert abs(n + 512 * 1000 + 1000 - 54.8e6) < 0.05e6
    keys = DRNSeg().state_dict().keys()
    assert {k.split(".")[1] for k in keys if k.startswith("base.")} == {str(i) for i in range(9)}
    assert {"seg.weight", "seg.bias", "up.weight", "base.5.0.downsample.0.weight", "base.4.3.conv3.weight"} <= set(keys)


def test_drn_upsampling_is_bilinear_and_frozen():
    from vem.models.drn import DRNSeg

    net = DRNSeg(classes=2)
    assert not net.up.weight.requires_grad
    x = torch.ones(1, 2, 8, 8)
    y = net.up(x)
    assert y.shape == (1, 2, 64, 64)
    # a constant map stays constant in the interior (bilinear weights sum to one per output pixel)
    assert torch.allclose(y[..., 8:-8, 8:-8], torch.ones_like(y[..., 8:-8, 8:-8]), atol=1e-5)


def test_load_drn_roundtrip_and_errors(tmp_path):
    from vem.models.drn import DRNSeg, load_drn

    torch.manual_seed(0)
    ref = DRNSeg()
    torch.save({"module." + k: v for k, v in ref.state_dict().items()}, tmp_path / "drn.pth")  # DataParallel names
    net = load_drn(tmp_path / "drn.pth")
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(net(x), ref.eval()(x))
    torch.save({"seg.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="not a DRN-D-105"):
        load_drn(tmp_path / "bad.pth")
    with pytest.raises(FileNotFoundError, match="drn_d_105_cityscapes"):
        load_drn(tmp_path / "missing.pth")


def test_label_ids_to_train_ids():
    from vem.metrics.cityscapes import label_ids_to_train_ids

    ids = np.array([[0, 7, 8, 26], [33, 34, 255, 24]], np.uint8)
    np.testing.assert_array_equal(label_ids_to_train_ids(ids), [[255, 0, 1, 13], [18, 255, 255, 11]])


class _FixedScores(nn.Module):
    """A stand-in segmenter: scores = one-hot of a fixed class map (per image), whatever the input."""

    def __init__(self, maps):
        super().__init__()
        self.maps = torch.as_tensor(maps).long()
        self.i = 0

    def forward(self, x):
        m = self.maps[self.i:self.i + len(x)]
        self.i += len(x)
        return nn.functional.one_hot(m, 19).permute(0, 3, 1, 2).float()


def _sklearn_miou(pred, target):
    from sklearn.metrics import confusion_matrix

    keep = target != 255
    cm = confusion_matrix(target[keep].ravel(), pred[keep].ravel(), labels=list(range(19)))
    inter = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - inter
    iou = np.array([i / u if u else np.nan for i, u in zip(inter, union)])
    return np.nanmean(iou) * 100


def test_cityscapes_miou_equals_an_independent_confusion_matrix():
    from vem.metrics.cityscapes import cityscapes_miou

    rng = np.random.default_rng(0)
    # 16x16 class maps of 4x4 blocks: bilinear upsampling x4 of one-hot scores keeps each block's class
    # away from block borders; labels at 64x64 include ignored pixels and classes never predicted
    maps = rng.integers(0, 12, (3, 4, 4)).repeat(4, 1).repeat(4, 2)
    labels = rng.integers(0, 19, (3, 64, 64)).astype(np.uint8)
    labels[rng.random(labels.shape) < 0.1] = 255
    imgs = rng.integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    seg = _FixedScores(maps)
    res = cityscapes_miou(seg, [(imgs[:2], labels[:2]), (imgs[2:], labels[2:])], size=(64, 64))
    seg.i = 0
    from vem.metrics.cityscapes import predict_full_size

    pred = predict_full_size(seg, imgs, size=(64, 64))
    # interior of every 16x16 upsampled block is the block's class
    np.testing.assert_array_equal(pred[:, 6:10, 6:10], np.broadcast_to(maps[:, 1:2, 1:2], (3, 4, 4)))
    assert res["n"] == 3
    assert res["miou"] == pytest.approx(_sklearn_miou(pred, labels), abs=1e-9)
    # classes absent from predictions and labels are NaN, not zero
    labels2 = np.zeros_like(labels)
    seg.i = 0
    res2 = cityscapes_miou(seg, [(imgs, labels2)], size=(64, 64))
    assert res2["per_class_iou"]["bicycle"] is None and res2["per_class_iou"]["road"] is not None
    assert res2["miou"] == pytest.approx(_sklearn_miou(pred, labels2), abs=1e-9)
    seg.i = 0
    with pytest.raises(ValueError, match="do not match"):   # labels must be at the full size
        cityscapes_miou(seg, [(imgs, labels[:, :32])], size=(64, 64))


def test_predictions_are_resized_to_2048x1024():
    from vem.metrics.cityscapes import predict_full_size

    pred = predict_full_size(_FixedScores(np.full((1, 256, 256), 5)), np.zeros((1, 256, 256, 3), np.uint8))
    assert pred.shape == (1, 1024, 2048) and (pred == 5).all()


# --------------------------------------------------------------------------------------------------
# VGG16 perceptual network


def test_vgg16_perceptual_taps_and_missing_weights(tmp_path):
    from torchvision.models import vgg16

    from vem.models.evalnets import VGG16Perceptual, load_perceptual

    torch.manual_seed(0)
    ref = vgg16(weights=None)
    torch.save(ref.state_dict(), tmp_path / "vgg16-397923af.pth")
    net = load_perceptual(tmp_path / "vgg16-397923af.pth", "paper")
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    taps = net.taps(x)
    assert [t.shape[1] for t in taps] == [64, 128, 256, 512]
    # relu2_2 of torchvision's VGG16 on (x + 1) / 2, no ImageNet normalisation (OMGD's utils/vgg)
    with torch.no_grad():
        np.testing.assert_allclose(taps[1], ref.features[:9]((x + 1) / 2), rtol=1e-5, atol=1e-6)
    assert not any(p.requires_grad for p in net.parameters())
    assert isinstance(net, VGG16Perceptual) and len(net.features) == 23      # up to relu4_3, no classifier
    with pytest.raises(FileNotFoundError, match="weights.vgg16"):
        load_perceptual(tmp_path / "nope.pth", "paper")
    wrong = ref.state_dict()
    wrong["features.28.weight"] = wrong["features.28.weight"][:, :256]       # another network's file
    torch.save(wrong, tmp_path / "other.pth")
    with pytest.raises(ValueError, match=r"not a VGG16 state dict: .*other shapes \['features.28.weight'\]"):
        load_perceptual(tmp_path / "other.pth", "paper")


# --------------------------------------------------------------------------------------------------
# real dataset layouts (tiny synthetic copies) -> task index -> batches


def _save(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def _ab(rng, size=40, same=False):
    a = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    b = a.copy() if same else rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    return np.concatenate([a, b], axis=1)


def make_edges2shoes(root, n_train=24, n_val=5, same=False):
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("val", n_val)):
        for i in range(n):
            _save(root / split / f"{i}_AB.png", _ab(rng, same=same))
    (root / ".complete").write_text("test\n")
    return root


def make_cyclegan(root, n=(26, 25, 4, 3)):
    rng = np.random.default_rng(1)
    for folder, k in zip(("trainA", "trainB", "testA", "testB"), n):
        for i in range(k):
            _save(root / folder / f"{i}.jpg", rng.integers(0, 256, (40, 40, 3), dtype=np.uint8))
    (root / ".complete").write_text("test\n")
    return root


def make_cityscapes(root, n_train=14, n_val=2, hw=(64, 128)):
    rng = np.random.default_rng(2)
    for split, n in (("train", n_train), ("val", n_val)):
        for i in range(n):
            stem = f"city_{i:06d}_000019"
            small = (hw[0] // 16, hw[1] // 16)   # blocky content: fast to write at 1024 x 2048
            _save(root / "leftImg8bit" / split / "city" / f"{stem}_leftImg8bit.png",
                  rng.integers(0, 256, (*small, 3), dtype=np.uint8).repeat(16, 0).repeat(16, 1))
            ids = rng.choice([0, 7, 8, 11, 26], size=small).astype(np.uint8).repeat(16, 0).repeat(16, 1)
            _save(root / "gtFine" / split / "city" / f"{stem}_gtFine_labelIds.png", ids)
            _save(root / "gtFine" / split / "city" / f"{stem}_gtFine_color.png",
                  np.stack([ids * 7, ids * 3, ids], -1).astype(np.uint8))
    (root / ".complete").write_text("test\n")
    return root


def test_edges2shoes_index_and_paired_batches(tmp_path):
    from vem.data.folders import FolderTaskData, prepare_paper_task

    root = make_edges2shoes(tmp_path / "edges2shoes-r", same=True)
    idx = prepare_paper_task("edges2shoes", root, tmp_path / "edges2shoes.json", log=lambda m: None)
    tr, va, te = (idx["splits"][s]["AB"] for s in ("train", "val", "test"))
    assert len(te) == 5 and len(tr) + len(va) == 24 and len(va) == 2   # 2,048 > 24 images: 1/12 held out
    assert not set(tr) & set(va) and all("/train/" in f for f in tr + va) and all("/val/" in f for f in te)
    data = FolderTaskData(tmp_path / "edges2shoes.json", "edges2shoes", load_size=40, crop_size=32)
    idx_b = torch.tensor([3, 0, 3])
    a, b = data.tensor("train", "A")[idx_b], data.tensor("train", "B")[idx_b]
    assert a.shape == (3, 3, 32, 32) and a.min() >= -1 and a.max() <= 1
    torch.testing.assert_close(a, b)   # A == B in this copy: the pair got the same crop and flip
    torch.testing.assert_close(data.tensor("train", "A")[idx_b], a)   # no hidden RNG state
    assert data.tensor("test", "A")[torch.tensor([0])].shape == (1, 3, 32, 32)
    again = prepare_paper_task("edges2shoes", root, tmp_path / "again.json", log=lambda m: None)
    assert again["splits"] == idx["splits"]   # the held-out split is a function of the seed


def test_cyclegan_index(tmp_path):
    from vem.data.folders import FolderTaskData, prepare_paper_task

    root = make_cyclegan(tmp_path / "horse2zebra")
    idx = prepare_paper_task("horse2zebra", root, tmp_path / "h.json", log=lambda m: None)
    assert [len(idx["splits"]["test"][s]) for s in "AB"] == [4, 3]
    assert len(idx["splits"]["train"]["A"]) + len(idx["splits"]["val"]["A"]) == 26
    data = FolderTaskData(tmp_path / "h.json", "horse2zebra", 40, 32)
    assert data.n("train", "B") == len(idx["splits"]["train"]["B"])
    assert data.tensor("val", "B")[torch.tensor([0, 1])].shape == (2, 3, 32, 32)


def test_cityscapes_pairs_direction_and_labels(tmp_path):
    from vem.data.folders import FolderTaskData, prepare_paper_task

    root = make_cityscapes(tmp_path / "cityscapes")
    out = tmp_path / "data" / "cityscapes.json"
    idx = prepare_paper_task("cityscapes", root, out, log=lambda m: None)
    assert idx["direction"] == "BtoA" and len(idx["splits"]["test"]["AB"]) == 2
    assert len(idx["labels"]["test"]) == 2 and all(f.endswith("_gtFine_labelIds.png") for f in idx["labels"]["test"])
    pair = np.asarray(Image.open(idx["splits"]["test"]["AB"][0]))
    assert pair.shape == (256, 512, 3)
    # pix2pix's preparation: both halves RGB, resized with Pillow's bicubic default, one JPEG at quality 100,
    # 4:4:4 (written here from its description, on the same source files)
    stem = Path(idx["splits"]["test"]["AB"][0]).stem
    src = {"photo": root / "leftImg8bit" / "val" / "city" / f"{stem}_leftImg8bit.png",
           "color": root / "gtFine" / "val" / "city" / f"{stem}_gtFine_color.png"}
    ref = Image.new("RGB", (512, 256))
    for k, x in (("photo", 0), ("color", 256)):
        ref.paste(Image.open(src[k]).convert("RGB").resize((256, 256)), (x, 0))
    buf = io.BytesIO()
    ref.save(buf, format="JPEG", quality=100, subsampling=0)
    np.testing.assert_array_equal(pair, np.asarray(Image.open(io.BytesIO(buf.getvalue()))))
    data = FolderTaskData(out, "cityscapes", 286, 256)
    a = data.load_u8("test", "A", 0)   # input = the colour label map (right half), photo = target
    np.testing.assert_array_equal(a, pair[:, 256:])
    np.testing.assert_array_equal(data.load_u8("test", "B", 0), pair[:, :256])
    # held-out val images keep their own label maps
    for f, lab in zip(idx["splits"]["val"]["AB"], idx["labels"]["val"]):
        assert Path(f).stem in Path(lab).name


def test_prepare_refuses_an_incomplete_dataset(tmp_path):
    from vem.data.folders import prepare_paper_task

    root = make_edges2shoes(tmp_path / "e")
    (root / ".complete").unlink()
    with pytest.raises(FileNotFoundError, match="not complete"):
        prepare_paper_task("edges2shoes", root, tmp_path / "x.json")
    with pytest.raises(ValueError, match="mini task"):
        prepare_paper_task("fmnist_edges2shoes", root, tmp_path / "x.json")


# --------------------------------------------------------------------------------------------------
# released teachers


def _flat_pix2pix_resnet(ngf=4, norm="instance", dropout_slot=False):
    """A pix2pix/CycleGAN ResNet generator as one flat nn.Sequential (the released files' key layout),
    written here independently of vem.models; ``dropout_slot``: GAN-Compression's blocks, which always hold
    a Dropout(dropout_rate) after the first ReLU, at its default rate 0."""
    nl = (lambda c: nn.InstanceNorm2d(c)) if norm == "instance" else (lambda c: nn.BatchNorm2d(c))
    bias = norm == "instance"

    class Block(nn.Module):
        def __init__(self, c):
            super().__init__()
            layers = [nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3, bias=bias), nl(c), nn.ReLU(True)]
            layers += [nn.Dropout(0.0)] if dropout_slot else []
            layers += [nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3, bias=bias), nl(c)]
            self.conv_block = nn.Sequential(*layers)

        def forward(self, x):
            return x + self.conv_block(x)

    m = [nn.ReflectionPad2d(3), nn.Conv2d(3, ngf, 7, bias=bias), nl(ngf), nn.ReLU(True),
         nn.Conv2d(ngf, 2 * ngf, 3, 2, 1, bias=bias), nl(2 * ngf), nn.ReLU(True),
         nn.Conv2d(2 * ngf, 4 * ngf, 3, 2, 1, bias=bias), nl(4 * ngf), nn.ReLU(True)]
    m += [Block(4 * ngf) for _ in range(9)]
    m += [nn.ConvTranspose2d(4 * ngf, 2 * ngf, 3, 2, 1, output_padding=1, bias=bias), nl(2 * ngf), nn.ReLU(True),
          nn.ConvTranspose2d(2 * ngf, ngf, 3, 2, 1, output_padding=1, bias=bias), nl(ngf), nn.ReLU(True),
          nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, 7), nn.Tanh()]

    class Flat(nn.Module):
        def __init__(self):
            super().__init__()
            self.model = nn.Sequential(*m)

        def forward(self, x):
            return self.model(x)
    return Flat()


@pytest.mark.parametrize("norm,dropout_slot", [("instance", False), ("batch", True), ("instance", True)])
def test_import_released_teacher_reproduces_its_outputs(tmp_path, norm, dropout_slot):
    """Same outputs in eval *and* train mode: GAN-Compression's rate-0 dropout slot is no dropout (it was
    imported as Dropout(0.5), which differs in train mode)."""
    from vem.models import load_generator
    from vem.pretrained import import_teacher
    from vem.utils import load_checkpoint

    torch.manual_seed(0)
    ref = _flat_pix2pix_resnet(norm=norm, dropout_slot=dropout_slot).eval()
    if norm == "batch":  # non-trivial running statistics
        with torch.no_grad():
            for mod in ref.modules():
                if isinstance(mod, nn.BatchNorm2d):
                    mod.running_mean.uniform_(-0.1, 0.1)
                    mod.running_var.uniform_(0.5, 1.5)
    torch.save(ref.state_dict(), tmp_path / "latest_net_G.pth")
    ck = import_teacher("gan_compression/cycle_gan/horse2zebra", tmp_path / "t" / "generator.pt",
                        user_path=str(tmp_path / "latest_net_G.pth"), cache=tmp_path / "cache", log=lambda m: None)
    assert ck["generator"]["backbone"] == "resnet"
    assert ck["generator"]["kwargs"]["norm"] == norm and ck["generator"]["kwargs"]["dropout"] is False
    G = load_generator(load_checkpoint(tmp_path / "t" / "generator.pt"))
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    for train in (False, True):
        G.train(train)
        ref.train(train)
        with torch.no_grad():
            torch.testing.assert_close(G(x), ref(x))
    assert len(ck["source_sha256"]) == 64


def test_import_teacher_rejects_other_files(tmp_path):
    from vem.pretrained import import_teacher

    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "x.pth")
    with pytest.raises(ValueError, match="flat ResNet"):
        import_teacher("gan_compression/cycle_gan/horse2zebra", tmp_path / "o.pt", str(tmp_path / "x.pth"),
                       cache=tmp_path, log=lambda m: None)
    with pytest.raises(ValueError, match="unknown released teacher"):
        import_teacher("nobody/model", tmp_path / "o.pt")


# --------------------------------------------------------------------------------------------------
# paper-scale evaluation end to end (stand-in weights: the plumbing and protocol are tested, not numbers)


def _vem(*args, cwd=ROOT):
    env = run_env()
    env["OMP_NUM_THREADS"] = "2"
    return subprocess.run([sys.executable, "-m", "vem", *args], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=900)


def test_paper_real_stats_with_stand_in_inception(tmp_path):
    """CycleGAN real statistics: every real target-domain image (train + held-out val + test), Inception
    features in the recorded mode; without the weights file one line says which file and both ways."""
    from benchmarks.stand_ins import stand_in_inception

    make_cyclegan(tmp_path / "horse2zebra", n=(14, 13, 3, 2))
    index = tmp_path / "h.json"
    assert _vem("prepare-paper-data", "--task", "horse2zebra", "--dataset", str(tmp_path / "horse2zebra"),
                "--out", str(index)).returncode == 0
    w = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    # missing weights: one line naming the file and both ways to provide it
    res = _vem("real-stats", "--task", "horse2zebra", "--data", str(index), "--featnet", str(w),
               "--images", str(tmp_path / "real.zip"), "--out", str(tmp_path / "stats.npz"), "--device", "cpu")
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1
    assert w.name in res.stderr and "snakemake" in res.stderr and "weights.inception_legacy" in res.stderr
    assert not (tmp_path / "stats.npz").exists()
    stand_in_inception(w)
    res = _vem("real-stats", "--task", "horse2zebra", "--data", str(index), "--featnet", str(w),
               "--images", str(tmp_path / "real.zip"), "--out", str(tmp_path / "stats.npz"), "--device", "cpu",
               "--set", "data.crop_size=64", "--set", "data.load_size=64")
    assert res.returncode == 0, res.stderr
    with np.load(tmp_path / "stats.npz") as z:
        assert str(z["mode"]) == "legacy_pytorch" and z["mu"].shape == (2048,)
        assert "train+test B" in str(z["description"]) and int(z["n"]) == 13 + 2
    # (evaluation against these statistics: test_paper_workflow_runs_table1_at_toy_size)


def test_paper_miou_pipeline_with_stand_in_drn(tmp_path):
    from vem.data.folders import prepare_paper_task
    from vem.models import build, record
    from vem.models.drn import DRNSeg
    from vem.utils import atomic_save_torch

    make_cityscapes(tmp_path / "cityscapes", n_train=3, n_val=2, hw=(1024, 2048))
    index = tmp_path / "data" / "cityscapes.json"
    prepare_paper_task("cityscapes", tmp_path / "cityscapes", index, log=lambda m: None)
    torch.manual_seed(0)
    torch.save(DRNSeg().state_dict(), tmp_path / "drn.pth")
    rec = record("unet", ngf=2, num_downs=8)
    G = build(rec)
    atomic_save_torch(tmp_path / "g.pt", {"generator": rec, "state_dict": G.state_dict(), "seed": 0,
                                          "config_hash": "x"})
    out = tmp_path / "m.json"
    res = _vem("evaluate", "--task", "cityscapes", "--method", "omgd", "--generator", str(tmp_path / "g.pt"),
               "--data", str(index), "--evalnet", str(tmp_path / "drn.pth"), "--images", str(tmp_path / "gen.zip"),
               "--out", str(out), "--device", "cpu",    # latency (ONNX export, 20 timed runs at 256 px: 30 s) is
               "--set", "eval.latency.backends=[eager]",  # tested in test_latency and the toy workflow below
               "--set", "eval.latency.runs=2", "--set", "eval.latency.warmup=1")
    assert res.returncode == 0, res.stderr
    rec = json.loads(out.read_text())
    assert rec["metric"]["name"].startswith("mIoU (DRN-D-105") and rec["protocol"]["label_size"] == [1024, 2048]
    assert 0 <= rec["metric"]["value"] <= 100 and rec["protocol"]["n_images"] == 2
    assert rec["protocol"]["evalnet_sha256"] and len(rec["protocol"]["per_class_iou"]) == 19


# --------------------------------------------------------------------------------------------------
# tables at paper scale: measured next to published, with the difference


def test_paper_scale_table_has_published_values_and_delta(tmp_path):
    from vem.tables import render

    paths = []
    for addon, vals in (("none", [58.0, 56.0, 57.0]), ("vem", [52.0, 51.0, 50.5])):
        for seed, v in enumerate(vals):
            rec = {"task": "horse2zebra", "scale": "paper", "paper_task": "horse2zebra", "method": "omgd",
                   "addon": addon, "lambda_mi": None if addon == "none" else 0.1, "seed": seed,
                   "metric": {"name": "FID (Inception, pytorch-fid weights)", "value": v, "higher_is_better": False},
                   "cost": {"macs": 1.41e9, "params": 137_000}, "protocol": {"checkpoint_selection": "final"}}
            p = tmp_path / f"{addon}{seed}.json"
            p.write_text(json.dumps(rec))
            paths.append(p)
    render(4, paths, tmp_path / "t4.csv")
    import pandas as pd

    t = pd.read_csv(tmp_path / "t4.csv")
    meas = t[t["block"].str.startswith("measured")].set_index("method")
    assert meas.loc["OMGD", "paper_value"] == 57.14 and meas.loc["OMGD + VEM", "paper_value"] == 50.83
    assert meas.loc["OMGD", "delta_vs_paper"] == pytest.approx(57.0 - 57.14)
    assert meas.loc["OMGD + VEM", "delta_vs_paper"] == pytest.approx(51.1666667 - 50.83, abs=1e-6)
    md = (tmp_path / "t4.md").read_text()
    assert "delta_vs_paper" in md and "not comparable" not in md


def test_gpu_check_runs_table1_at_toy_size_on_the_cpu(tmp_path, monkeypatch):
    """The prepared GPU script (``benchmarks/gpu_check.py``) end to end on the CPU at toy size. Part 1: OMGD's
    paper-scale iteration timed per task x add-on (one process per task). Part 2: the paper preset's rules executed
    by Snakemake (not only dry-run): prepare_paper_data -> real_stats (Inception) -> train_teacher +
    evaluate_teacher (Original) -> compress (OMGD + VEM: image index, augmentation, VGG16 losses, online wide +
    deep expansion-block teachers, Inception-FID val curve, snapshots) -> evaluate_run (best-on-test) ->
    render_table, on a synthetic edges2shoes-r with stand-in weights in resources/ (so nothing downloads) and toy
    overrides. (Each FID costs a 2048x2048 matrix square root, ~10 s on 2 cores: the toy run is kept to four.)"""
    import pandas as pd

    from benchmarks.gpu_check import main

    toy = {"data.load_size": 40, "data.crop_size": 32, "teachers.original.num_downs": 5, "omgd.batch": 2,
           "omgd.wide_ngf": 4, "omgd.deep_ngf": 2, "omgd.student_ngf": 2, "omgd.ndf": 4, "omgd.teacher.ngf": 4,
           "omgd.teacher.n_blocks": 1, "eval.val_images": 2, "eval.batch": 3, "addon.vem.width": 2,
           "addon.vem.n_blocks": 2, "addon.crd.nce_k": 20, "teachers.original.ngf": 4,
           "teachers.original.batch": 2, "teachers.original.ndf": 4, "eval.latency.runs": 2,
           "eval.latency.warmup": 1}
    for k, v in {**run_env(), "OMP_NUM_THREADS": "2"}.items():
        monkeypatch.setenv(k, v)
    work, out = tmp_path / "w", tmp_path / "out"
    sets = [a for k, v in toy.items() for a in ("--set", f"{k}={v}")]
    main(["--out", str(out), "--work", str(work), "--iters", "1", "--workflow-iters", "2", "--n-train", "24",
          "--n-val", "3", "--cores", "1", "--device", "cpu", "--addons", "none,crd", *sets])

    report = json.loads((out / "gpu_check.json").read_text())
    it = pd.DataFrame(report["iterations"])
    assert sorted(zip(it["task"], it["addon"])) == [("edges2shoes", "crd"), ("edges2shoes", "none"),
                                                    ("horse2zebra", "crd"), ("horse2zebra", "none")]
    assert (it["device"] == "cpu").all() and (it["seconds_per_iter"] > 0).all() and (it["batch"] == 2).all()
    assert (it.loc[it["addon"] == "crd", "addon_seconds"] > 0).all()       # CRD's bank: 42 listed of 24 images
    assert (it.loc[it["task"] == "edges2shoes", "online_teachers_seconds"] > 0).all()
    jobs = {j["job"].split("/")[0] for j in report["workflow"]["jobs"]}
    assert {"prepare_data", "real_stats", "train_teacher", "compress", "evaluate_run", "render_table"} <= jobs
    md = (out / "gpu_check.md").read_text()
    assert "Paper-scale OMGD iteration" in md and "| horse2zebra | crd" in md and "trained on cpu" in md

    t = pd.read_csv(out / "table1.csv")
    meas = t[t["block"].str.startswith("measured")].set_index("method")
    assert set(meas.index) == {"Original", "OMGD + VEM"}
    # Table 1's published edges2shoes FIDs beside the measured values
    assert meas.loc["OMGD + VEM", "paper_value"] == pytest.approx(24.59)
    assert meas.loc["Original", "paper_value"] == pytest.approx(34.31)
    assert np.isfinite(meas["delta_vs_paper"]).all()
    run = work / "results/runs/edges2shoes/omgd/vem_lam0.1/seed0"
    curve = pd.read_csv(run / "curve.csv")
    assert list(curve["iter"]) == [2] and np.isfinite(curve[["val", "mi_loss", "distill_loss"]]).all().all()
    rec = json.loads((run / "metrics.json").read_text())
    assert rec["scale"] == "paper" and rec["seed"] == 0 and rec["protocol"]["n_images"] == 3
    assert rec["devices"] == {"train": "cpu", "evaluate": "cpu"}
    assert rec["protocol"]["mode"] == "legacy_pytorch" and rec["protocol"]["real_stats"] == "real test B (3)"
    assert "ON THE TEST SET" in rec["protocol"]["checkpoint_selection"]
    assert rec["metric"]["value"] == min(c["value"] for c in rec["protocol"]["candidates"])
    assert Image.open(run / "samples.png").mode == "RGB"
    assert not (work / "resources" / "downloads").exists()   # nothing was downloaded


def test_gpu_check_reports_a_failed_part_with_its_logs(tmp_path, monkeypatch):
    """A part that fails or runs out of time leaves its error in gpu_check.json and .md, with Snakemake's output and
    the logs of the jobs that had started (on a GPU machine there may be no second try); the other part still runs
    and the script ends non-zero."""
    from benchmarks.gpu_check import main

    for k, v in run_env().items():
        monkeypatch.setenv(k, v)
    out, work = tmp_path / "out", tmp_path / "w"
    with pytest.raises(SystemExit, match="iterations and workflow failed"):
        main(["--out", str(out), "--work", str(work), "--tasks", "horse2zebra", "--task-timeout", "1",
              "--workflow-timeout", "15",
              "--n-train", "2", "--n-val", "2", "--cores", "1", "--set", "data.load_size=40",
              "--set", "data.crop_size=32", "--set", "teachers.original.num_downs=5"])
    report = json.loads((out / "gpu_check.json").read_text())
    assert "--task horse2zebra timed out after 1 s" in report["iterations_error"] and report["iterations"] == []
    assert "timed out after 15 s" in report["workflow_error"] and "workflow" not in report
    assert "Building DAG of jobs" in (out / "workflow.log").read_text()
    assert "==> logs/prepare_data/edges2shoes.log <==" in (out / "job_logs.txt").read_text()
    md = (out / "gpu_check.md").read_text()
    assert "**iterations failed**" in md and "**workflow failed**" in md
    left = []                               # the timed-out workflow's jobs were stopped with it
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(work) in os.readlink(proc / "cwd"):
                left.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()[:200])
        except OSError:
            pass
    assert left == []                       # (the check itself: an independent scan of /proc)


def test_gpu_check_script_installs_the_carried_wheels_and_runs_the_check(tmp_path):
    """scripts/gpu-check.sh (the device side): no wheels -> one line saying what to do; with wheels, every one
    installed into its own folder in one call, except SciPy where the interpreter's is older than 1.18 (here: a
    deliberately broken scipy wheel, which pip would refuse), then benchmarks/gpu_check.py runs with the checkout
    first on PYTHONPATH and the folder's commands on PATH."""
    script = ROOT / "scripts" / "gpu-check.sh"
    env = {**run_env(), "PYTHON": sys.executable, "GPU_CHECK_SITE": str(tmp_path / "site")}
    empty = tmp_path / "none"
    empty.mkdir()
    res = subprocess.run(["bash", str(script), str(tmp_path / "o0")], capture_output=True, text=True,
                         env={**env, "GPU_CHECK_WHEELS": str(empty)})
    assert res.returncode == 2 and "run 'make gpu-wheels'" in res.stderr and "carry .whl" in res.stderr
    pkg, wheels = tmp_path / "probe", tmp_path / "wheels"
    (pkg / "gpu_check_probe").mkdir(parents=True)
    (pkg / "gpu_check_probe" / "__init__.py").write_text("")
    (pkg / "pyproject.toml").write_text('[project]\nname = "gpu-check-probe"\nversion = "1.0"\n'
                                        '[project.scripts]\ngpu-check-probe = "gpu_check_probe:main"\n')
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheels),
                    str(pkg)], check=True, capture_output=True)
    (wheels / "scipy-1.17.1-cp312-cp312-manylinux_2_28_x86_64.whl").write_text("not a wheel")
    res = subprocess.run(["bash", str(script), str(tmp_path / "out"), "--skip", "iterations", "--skip", "workflow"],
                         capture_output=True, text=True, env={**env, "GPU_CHECK_WHEELS": str(wheels)})
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    site = tmp_path / "site"
    assert (site / "gpu_check_probe").is_dir() and (site / "bin" / "gpu-check-probe").exists()
    assert not (site / "scipy").exists()
    report = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    assert report["environment"]["cuda_available"] == torch.cuda.is_available()
    assert (tmp_path / "out" / "nvidia-smi.txt").exists()


def test_gpu_check_refuses_bad_arguments_before_any_work(tmp_path):
    from benchmarks.gpu_check import main

    for argv, msg in ((["--tasks", "edges2shoes,zebra"], "--tasks: 'zebra' is not one of"),
                      (["--addons", "vem,hint"], "--addons: 'hint' is not one of"),
                      (["--set", "omgd.iters"], "--set wants key=value"),
                      (["--workflow-iters", "0"], "--workflow-iters must be >= 1"),
                      (["--n-val", "1"], "--n-val must be >= 2")):
        with pytest.raises(SystemExit, match=msg):
            main(["--out", str(tmp_path / "out"), *argv])
        assert not (tmp_path / "out").exists()


def test_celeba_index_partition_center_crop_and_gccs_generated_count(tmp_path, monkeypatch):
    from PIL import Image

    from vem.data import folders
    from vem.data.folders import FolderTaskData, prepare_paper_task

    root = tmp_path / "celeba"
    rng = np.random.default_rng(3)
    ims = {}
    for i in range(1, 15):       # 178 x 218 like img_align_celeba
        ims[i] = rng.integers(0, 256, (218, 178, 3), dtype=np.uint8)
        _save(root / "img_align_celeba" / f"{i:06d}.jpg", ims[i])
    (root / ".complete").write_text("test\n")
    monkeypatch.setattr(folders, "CELEBA_TRAIN_LAST", 10)   # CelebA's partition, scaled down
    monkeypatch.setattr(folders, "CELEBA_VAL_LAST", 12)
    idx = prepare_paper_task("celeba", root, tmp_path / "c.json", log=lambda m: None)
    tr, va, te = (idx["splits"][s]["B"] for s in ("train", "val", "test"))
    assert len(tr) + len(va) == 10 and [int(Path(f).stem) for f in te] == [11, 12]   # 13, 14: CelebA's test
    assert idx["n_latents"]["test"] == 10 // 10 + 1                                  # GCC: floor(0.1 N) + 1
    data = FolderTaskData(tmp_path / "c.json", "celeba", load_size=64, crop_size=64, flip=False)
    z = data.tensor("test", "A")
    assert z.shape == (2, 128, 1, 1) and data.n("test", "A") == 2 and data.n("test", "B") == 2
    # CenterCrop(160) then Resize(64), bilinear - the same for training and evaluation
    stored = np.asarray(Image.open(te[0]).convert("RGB"))
    want = np.asarray(Image.fromarray(stored[29:189, 9:169]).resize((64, 64), Image.BILINEAR))
    np.testing.assert_array_equal(data.eval_u8("test", "B", 0), want)
    x = data.tensor("train", "B")[torch.tensor([0, 0])]
    torch.testing.assert_close(x[0], x[1])
    torch.testing.assert_close(x[0], torch.from_numpy(data.eval_u8("train", "B", 0).astype(np.float32))
                               .permute(2, 0, 1) / 127.5 - 1)


def test_celeba_is_a_manual_download_named_in_one_line(tmp_path):
    from vem.data.paper_datasets import fetch_dataset

    with pytest.raises(FileNotFoundError, match="img_align_celeba.zip") as e:
        fetch_dataset("celeba", tmp_path / "out", tmp_path / "cache", tmp_path / "manual")
    assert "\n" not in str(e.value) and "CelebA site" in str(e.value)
