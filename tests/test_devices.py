"""The GPU path's random draws. ``--device cuda`` (paper scale) runs the jobs under
``torch.set_default_device("cuda")``, where a factory call without ``device=`` makes a CUDA tensor, while the
harness's ``torch.Generator()`` streams (batches, latents, subnet samples, mixing, noise) are CPU ones: PyTorch
refuses a CPU generator for a CUDA draw ("Expected a 'cuda' device type for generator but found 'cpu'"). Each
draw from a generator therefore names its device, and its result moves to where it is used. No GPU here:
the rule is checked on the source, and the draws under another default device (``meta``, which like CUDA is
not where CPU generators draw) on the functions that turn them into Python numbers."""

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
            for node in ast.walk(ast.parse(f.read_text())):
                if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch"):
                    continue
                kws = {k.arg for k in node.keywords}
                if node.func.attr in FACTORIES and "generator" in kws and "device" not in kws:
                    bad.append(f"{f.relative_to(ROOT)}:{node.lineno} torch.{node.func.attr}")
                if node.func.attr == "multinomial" and "generator" in kws and isinstance(node.args[0], ast.Name):
                    bad.extend(_multinomial_weights(f, node))
    return bad


def _multinomial_weights(f, call) -> list[str]:
    """torch.multinomial draws on its weights' device: the weights must be made with an explicit device."""
    name = call.args[0].id
    tree = ast.parse(f.read_text())
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
