"""The FFHQ paper preset of CAGC: the BiSeNet face parser against an independent functional reference with the
same weights, its content mask, LPIPS with linear heads against the ``lpips`` package on the same weights,
the released StyleGAN2 checkpoint import, the FFHQ index and its configuration checks."""

import argparse
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from tests import bisenet_reference
from tests import stylegan2_reference as sg2ref
from vem.config import ConfigError, resolve


def _randomised(net: torch.nn.Module, seed: int = 0) -> dict:
    """Every weight and BatchNorm statistic drawn at random (so each one enters the comparison)."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, v in net.state_dict().items():
        if k.endswith("num_batches_tracked"):
            sd[k] = v
        elif k.endswith("running_var"):
            sd[k] = torch.rand(v.shape, generator=g, dtype=torch.float64) + 0.5
        elif k.endswith("bn.weight") or k.endswith("bn1.weight") or k.endswith("bn2.weight"):
            sd[k] = torch.rand(v.shape, generator=g, dtype=torch.float64) + 0.5
        else:
            fan = v[0].numel() if v.dim() > 1 else 1
            sd[k] = torch.randn(v.shape, generator=g, dtype=torch.float64) / fan ** 0.5
    return sd


def test_face_parser_equals_an_independent_reference_with_the_same_weights():
    from vem.models.faceparse import FaceParser

    net = FaceParser().double().eval()
    sd = _randomised(net)
    net.load_state_dict(sd, strict=True)
    x = torch.randn(2, 3, 96, 64, dtype=torch.float64)
    with torch.no_grad():
        got = net(x)
    want = bisenet_reference.bisenet_logits(sd, x)
    assert got.shape == (2, 19, 96, 64)
    assert torch.allclose(got, want, rtol=0, atol=1e-9), (got - want).abs().max()
    # the released file's layout: the auxiliary heads are there (strict load), torchvision's ResNet-18 keys
    assert {"conv_out16.conv_out.weight", "conv_out32.conv.bn.running_mean", "cp.resnet.layer4.1.bn2.bias",
            "cp.arm32.bn_atten.weight", "ffm.conv2.weight"} <= set(sd)
    assert not any(k.startswith("cp.resnet.fc") for k in sd)


def test_face_parser_file_is_checked_and_a_dataparallel_prefix_accepted(tmp_path):
    from vem.models.faceparse import FaceParser, load_face_parser

    sd = FaceParser().state_dict()
    torch.save({f"module.{k}": v for k, v in sd.items()}, tmp_path / "ok.pth")
    assert not load_face_parser(tmp_path / "ok.pth").training
    torch.save({k: v for k, v in sd.items() if "ffm" not in k}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="not BiSeNet face-parsing weights"):
        load_face_parser(tmp_path / "bad.pth")
    with pytest.raises(FileNotFoundError, match="weights.bisenet_face"):
        load_face_parser(tmp_path / "missing.pth")


def test_content_mask_keeps_every_class_but_background_and_cloth():
    """A parser that labels by position: left third background, middle third cloth, right third hair (17)."""
    from vem.models.faceparse import PARSE_SIZE, FaceParser

    class ByPosition(FaceParser):
        def forward(self, x):
            assert x.shape[-2:] == (PARSE_SIZE, PARSE_SIZE)
            logits = torch.zeros(len(x), 19, *x.shape[-2:])
            w = x.shape[-1]
            logits[:, 0, :, : w // 3] = 1
            logits[:, 16, :, w // 3: 2 * w // 3] = 1
            logits[:, 17, :, 2 * w // 3:] = 1
            return logits

    img = torch.rand(2, 3, 48, 48) * 2 - 1
    mask = ByPosition().eval().content_mask(img)
    assert mask.shape == (2, 1, 48, 48) and set(mask.unique().tolist()) == {0.0, 1.0}
    assert mask[..., :32].sum() == 0 and mask[..., 33:].all()       # hair only (thresholded at 0.5 near 32)


def test_lpips_with_linear_heads_equals_the_lpips_package_on_the_same_weights():
    lpips_pkg = pytest.importorskip("lpips")
    from torchvision.models import vgg16

    from vem.models.evalnets import VGG16LPIPS

    torch.manual_seed(0)
    ref = lpips_pkg.LPIPS(net="vgg", pnet_rand=True, verbose=False).eval()   # the package's heads, random VGG
    vgg = vgg16(weights=None).state_dict()
    slices = {k.split(".", 1)[1]: k for k in ref.net.state_dict()}          # slice<n>.<index>.<param>
    ref.net.load_state_dict({slices[k.removeprefix("features.")]: v for k, v in vgg.items()
                             if k.removeprefix("features.") in slices}, strict=True)
    heads = {k: v for k, v in ref.state_dict().items() if k.startswith("lin") and not k.startswith("lins")}
    ours = VGG16LPIPS(vgg, heads).eval()
    x, y = torch.rand(2, 2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        want = ref(x, y).flatten()
        got = ours(x, y)
    assert got.shape == (2,) and (got > 0).all()
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="not LPIPS VGG linear heads"):
        VGG16LPIPS(vgg, {"lin0.model.1.weight": torch.ones(1, 64, 1, 1)})


def test_lpips_heads_come_from_the_installed_package_with_their_pinned_checksum(tmp_path):
    pytest.importorskip("lpips")
    from vem.data.paper_datasets import fetch_weights

    out = fetch_weights("lpips_vgg", tmp_path / "lpips-vgg-v0.1.pth", log=lambda m: None)
    heads = torch.load(out, map_location="cpu", weights_only=True)
    assert sorted(heads) == [f"lin{i}.model.1.weight" for i in range(5)]


def test_released_stylegan2_checkpoint_imports_with_its_discriminator(tmp_path):
    from vem.models import load_generator
    from vem.models.stylegan2 import StyleGAN2Discriminator
    from vem.pretrained import import_teacher

    chain = [8, 8, 8, 8, 8, 8, 8, 8]
    g_ema = sg2ref.make_generator_state(32, 16, 2, chain, seed=4, dtype=torch.float32)
    d = sg2ref.make_discriminator_state(32, sg2ref.rosinality_channels(32, 2, 8), seed=5, dtype=torch.float32)
    ck = {"g": g_ema, "d": d, "g_ema": g_ema, "g_optim": {}, "d_optim": {}, "args": argparse.Namespace(size=32)}
    torch.save(ck, tmp_path / "550000.pt")
    with pytest.raises(FileNotFoundError, match="cagc/stylegan2/ffhq256"):
        import_teacher("cagc/stylegan2/ffhq256", tmp_path / "t.pt", None, cache=tmp_path / "cache")
    out = import_teacher("cagc/stylegan2/ffhq256", tmp_path / "t.pt", str(tmp_path / "550000.pt"),
                         cache=tmp_path / "cache", log=lambda m: None)
    G = load_generator(out).double().eval()
    z = torch.randn(2, 16, dtype=torch.float64)
    fixed = [g_ema[f"noises.noise_{i}"].double() for i in range(7)]
    sd64 = {k: v.double() for k, v in g_ema.items()}
    torch.testing.assert_close(G(z), sg2ref.generate(sd64, z, fixed, n_mlp=2), rtol=0, atol=1e-5)
    D = StyleGAN2Discriminator(**out["discriminator"]["kwargs"])
    D.load_state_dict(out["discriminator"]["state_dict"])
    x = torch.randn(4, 3, 32, 32)
    torch.testing.assert_close(D(x).double(), sg2ref.discriminate({k: v.double() for k, v in d.items()},
                                                                  x.double()), rtol=0, atol=1e-4)
    assert out["generator"]["kwargs"]["net_shape"] == chain and out["config_hash"].startswith("imported:")
    torch.save({"g_ema": g_ema}, tmp_path / "no_d.pt")
    with pytest.raises(ValueError, match="no d"):
        import_teacher("cagc/stylegan2/ffhq256", tmp_path / "t2.pt", str(tmp_path / "no_d.pt"),
                       cache=tmp_path / "cache2")


def test_ffhq_index_splits_by_ffhq_numbering_and_resizes_once(tmp_path, monkeypatch):
    from PIL import Image

    from vem.data import folders
    from vem.data.folders import FolderTaskData, prepare_paper_task

    root = tmp_path / "ffhq"
    rng = np.random.default_rng(0)
    numbers = [0, 1, 2, 3, 4, 5, 6, 7, 60000, 60001, 69999]
    for n in numbers:
        d = root / "images1024x1024" / f"{n // 1000 * 1000:05d}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(d / f"{n:05d}.png")
    (root / ".complete").write_text("test\n")
    monkeypatch.setitem(folders.VAL_HOLDOUT, "ffhq", 2)
    logs = []
    idx = prepare_paper_task("ffhq", root, tmp_path / "ffhq.json", log=logs.append)
    tr, va, te = (idx["splits"][s]["B"] for s in ("train", "val", "test"))
    assert len(tr) == 6 and len(va) == 2 and [int(Path(f).stem) for f in te] == [60000, 60001, 69999]
    assert idx["n_latents"]["test"] == 50_000 and idx["source"] == "images1024x1024"
    stored = Image.open(te[0])
    assert stored.size == (256, 256) and Path(te[0]).parent == tmp_path / "ffhq"
    want = Image.open(root / "images1024x1024" / "60000" / "60000.png").convert("RGB").resize((256, 256),
                                                                                              Image.BILINEAR)
    np.testing.assert_array_equal(np.asarray(stored), np.asarray(want))
    data = FolderTaskData(tmp_path / "ffhq.json", "ffhq", load_size=256, crop_size=256, flip=True)
    assert data.n("test", "A") == 50_000 and data.n("test", "B") == 3
    assert data.tensor("val", "A").shape == (2, 512, 1, 1)
    x = data.tensor("train", "B")[torch.tensor([0])]
    assert x.shape == (1, 3, 256, 256) and x.min() >= -1 and x.max() <= 1


def test_ffhq_is_a_manual_download_of_either_archive(tmp_path):
    from PIL import Image

    from vem.data.paper_datasets import fetch_dataset

    with pytest.raises(FileNotFoundError, match="images1024x1024.zip, thumbnails128x128.zip") as e:
        fetch_dataset("ffhq", tmp_path / "out", tmp_path / "cache", tmp_path / "manual")
    assert "\n" not in str(e.value) and "Google Drive" in str(e.value)
    (tmp_path / "manual").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "0.png")
    with zipfile.ZipFile(tmp_path / "manual" / "thumbnails128x128.zip", "w") as z:
        z.write(tmp_path / "0.png", "thumbnails128x128/00000/00000.png")
    out = fetch_dataset("ffhq", tmp_path / "out", tmp_path / "cache", tmp_path / "manual")
    assert (out / "thumbnails128x128" / "00000" / "00000.png").is_file() and (out / ".complete").is_file()


def test_ffhq_configuration_and_its_checks():
    cfg = resolve("ffhq", {}, method="cagc")
    t = cfg["teachers"]["original"]
    assert (t["arch"], t["source"], t["n_mlp"], cfg["cagc"]["content"], cfg["cagc"]["iters"]) == \
        ("stylegan2", "cagc/stylegan2/ffhq256", 8, "face", 450000)
    assert "ngf" not in t                                  # the SAGAN defaults of the kind are replaced
    with pytest.raises(ConfigError, match="needs the paper scale's face parser"):
        resolve("fmnist_uncond_sg2", {"cagc.content": "face"}, method="cagc")
    with pytest.raises(ConfigError, match="is the Original of ffhq, not of celeba"):
        resolve("celeba", {"teachers.original.source": "cagc/stylegan2/ffhq256"})
    with pytest.raises(ConfigError, match="no released teacher"):
        resolve("ffhq", {"teachers.original.source": "cagc/stylegan2/ffhq1024"})


def test_content_mask_resizes_as_cagcs_pruning_or_its_distillation():
    """The parse (512 px) is resized to the image: antialiased for the pruning score (PIL's bilinear), plain
    bilinear for the distillation's masks (Get_Masked_Tensor); both thresholded at 0.5."""
    import torch.nn.functional as F

    from vem.models.faceparse import PARSE_SIZE, FaceParser

    g = torch.Generator().manual_seed(0)
    labels = (torch.rand(1, 1, PARSE_SIZE // 4, PARSE_SIZE // 4, generator=g) < 0.5).float()
    face = F.interpolate(labels, size=(PARSE_SIZE, PARSE_SIZE), mode="nearest")   # 4x4 blocks of face / background

    class Fixed(FaceParser):
        def forward(self, x):
            logits = torch.zeros(len(x), 19, PARSE_SIZE, PARSE_SIZE)
            logits[:, 0] = 1 - face[0, 0]          # background where not face
            logits[:, 17] = face[0, 0]             # hair
            return logits

    img = torch.zeros(1, 3, 96, 96)
    parser = Fixed().eval()
    for antialias in (True, False):
        want = (F.interpolate(face, size=(96, 96), mode="bilinear", align_corners=False, antialias=antialias) > 0.5)
        assert torch.equal(parser.content_mask(img, antialias=antialias), want.float())
    assert not torch.equal(parser.content_mask(img, antialias=True), parser.content_mask(img, antialias=False))
