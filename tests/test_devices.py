"""The GPU path's devices (no GPU here: checked on the source and under another default device, ``meta``).

Random draws. ``--device cuda`` (paper scale) runs the jobs under
``torch.set_default_device("cuda")``, where a factory call without ``device=`` makes a CUDA tensor, while the
harness's ``torch.Generator()`` streams (batches, latents, subnet samples, mixing, noise) are CPU ones: PyTorch
refuses a CPU generator for a CUDA draw ("Expected a 'cuda' device type for generator but found 'cpu'"). Each
draw from a generator therefore names its device, and its result moves to where it is used (checked on the
source, and under ``meta`` for the draws that become Python numbers). Tensors made on the CPU (numpy batches,
files, resume states) meet the default device's tensors only after a move: Cityscapes' normalisation, LPIPS's
linear heads, CycleGAN's resumed image pool; latency is built, exported and timed on the CPU."""

from __future__ import annotations

import ast

import pytest
import torch

from .conftest import ROOT

FACTORIES = {"rand", "randn", "randint", "randperm", "normal"}


def _undeviced_draws() -> list[str]:
    bad = []
    for pkg in ("vem", "baselines"):
        for f in sorted((ROOT / pkg).rglob("*.py")):
            tree = ast.parse(f.read_text())
            for node in ast.walk(tree):
                if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch"):
                    continue
                kws = {k.arg for k in node.keywords}
                if node.func.attr in FACTORIES and "generator" in kws and "device" not in kws:
                    bad.append(f"{f.relative_to(ROOT)}:{node.lineno} torch.{node.func.attr}")
                if node.func.attr == "multinomial" and "generator" in kws and isinstance(node.args[0], ast.Name):
                    bad.extend(_multinomial_weights(f, tree, node))
    return bad


def _multinomial_weights(f, tree, call) -> list[str]:
    """torch.multinomial draws on its weights' device: the weights must be made with an explicit device."""
    name = call.args[0].id
    for node in ast.walk(tree):
        if (isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets)
                and isinstance(node.value, ast.Call) and isinstance(node.value.func, ast.Attribute)
                and node.value.func.attr == "tensor"):
            if "device" not in {k.arg for k in node.value.keywords}:
                return [f"{f.relative_to(ROOT)}:{node.lineno} torch.tensor (weights of a multinomial draw)"]
    return []


def test_every_draw_from_a_generator_names_its_device():
    assert _undeviced_draws() == []


def test_the_rule_finds_an_undeviced_draw(tmp_path, monkeypatch):
    """The source check itself: a draw without device= in a module is reported with its line."""
    from . import test_devices as me

    (tmp_path / "vem").mkdir()
    (tmp_path / "baselines").mkdir()
    (tmp_path / "vem" / "m.py").write_text("import torch\ng = torch.Generator()\nx = torch.rand(3, generator=g)\n"
                                          "y = torch.rand(3, generator=g, device='cpu')\n"
                                          "w = torch.tensor([1.0, 2.0])\ni = torch.multinomial(w, 1, generator=g)\n")
    monkeypatch.setattr(me, "ROOT", tmp_path)
    assert me._undeviced_draws() == ["vem/m.py:3 torch.rand", "vem/m.py:5 torch.tensor (weights of a multinomial draw)"]


@pytest.fixture
def default_meta():
    torch.set_default_device("meta")
    try:
        yield
    finally:
        torch.set_default_device(None)


def _draws():
    from baselines.gan_compression.train import _uniform, _weighted
    from vem.train.stylegan import draw_mixing

    gen = torch.Generator().manual_seed(3)
    choices = [[4, 8, 16], [2, 6], [1, 3, 5, 7]]
    z = torch.zeros(2, 5, device="cpu")
    z2, index = draw_mixing(z, 1.0, 6, gen)
    return _uniform(choices, gen), _weighted(choices, gen, 3.0), z2.tolist(), index, float(torch.rand(
        (), generator=gen, device="cpu"))


def test_draws_are_the_same_under_another_default_device(default_meta):
    """GAN-Compression's subnet samples and StyleGAN2's style mixing under a non-CPU default device draw the
    same numbers as on the CPU (a draw on the default device would be a meta tensor here: no number)."""
    under_meta = _draws()
    torch.set_default_device(None)
    assert _draws() == under_meta


# --------------------------------------------------------------------------------------------------
# where tensors made on the CPU (files, numpy, resume states) meet the default device


def test_cityscapes_normalisation_follows_its_images(default_meta):
    import numpy as np

    from vem.metrics.cityscapes import normalise

    x = normalise(np.full((1, 4, 4, 3), 255, np.uint8))       # numpy -> a CPU batch, also on a GPU run
    assert x.device.type == "cpu" and torch.isfinite(x).all()


def test_lpips_heads_live_with_the_network(default_meta):
    from vem.models.evalnets import VGG16LPIPS

    widths = [64, 128, 256, 512, 512]
    heads = {f"lin{i}.model.1.weight": torch.ones(1, w, 1, 1, device="cpu") for i, w in enumerate(widths)}
    net = VGG16LPIPS(lin_state=heads)
    assert {b.device.type for b in net.buffers()} == {"meta"}


def test_vgg16_weights_loaded_from_the_cpu_land_on_the_default_device(default_meta):
    """The perceptual net's weights load on the CPU (``map_location="cpu"``) into a network made on the default
    device (a GPU run's cuda): every parameter ends there, none stays behind on the CPU."""
    from torchvision.models import vgg16

    from vem.models.evalnets import VGG16Perceptual

    with torch.device("cpu"):
        state = vgg16(weights=None).state_dict()
    net = VGG16Perceptual(state)
    assert {p.device.type for p in net.parameters()} == {"meta"} and len(net.features) == 23


def test_a_resumed_image_pool_holds_its_images_on_the_default_device(default_meta):
    from vem.train.gan import ImagePool

    pool = ImagePool(2, seed=0)
    pool.load_state_dict({"images": [torch.zeros(1, 3, 4, 4, device="cpu")] * 2,
                          "rng": ImagePool(2, seed=1).state_dict()["rng"]})
    out = pool.query(torch.zeros(2, 3, 4, 4))                 # new fakes on the default device
    assert out.device.type == "meta" and all(im.device.type == "meta" for im in pool.images)


def test_latency_builds_and_times_on_the_cpu_under_another_default_device(default_meta):
    from vem.config import resolve
    from vem.data.tasks import get_task
    from vem.eval.evaluate import measure_latency
    from vem.models import build, record

    with torch.device("cpu"):
        rec = record("unet", in_nc=1, out_nc=1, ngf=4, num_downs=5)
        ck = {"generator": rec, "state_dict": build(rec).state_dict()}
    cfg = resolve("fmnist_edges2shoes", {"eval.latency.runs": 2, "eval.latency.warmup": 0,
                                         "eval.latency.backends": ["eager", "torchscript"]})
    lat = measure_latency(ck, get_task("fmnist_edges2shoes"), cfg)
    assert lat["eager_ms"] > 0 and lat["torchscript_ms"] > 0 and lat["speedup_eager"] > 0, lat


def test_a_resume_state_with_gpu_streams_is_refused_where_none_is_visible():
    from vem.resume import rng_state, set_rng_state

    st = rng_state()
    assert "cuda" not in st                                   # a CPU run saves no CUDA stream
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    with pytest.raises(ValueError, match="1 CUDA RNG stream"):
        set_rng_state({**st, "cuda": [torch.zeros(16, dtype=torch.uint8)]})
