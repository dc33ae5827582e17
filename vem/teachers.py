"""Teachers / "Original" models: pix2pix (paired) and CycleGAN (unpaired), trained from scratch.

The checkpoint holds the final generator (A -> B) and, every ``snapshot_every`` iterations, a snapshot
with its metric on the held-out *val* split (OMGD's CycleGAN student phases pick the best snapshot so
far; OMGD's own code picks on the test set - we do not).
"""

from __future__ import annotations

import copy
import itertools
import time

import torch
import torch.nn.functional as F

from .losses import gan_loss
from .models import NLayerDiscriminator, build_generator
from .train import ImagePool, TaskData, ValScorer, check_finite, linear_decay
from .utils import progress, seed_all


def generator_kwargs(t: dict, spec, ngf: int | None = None, arch: str | None = None) -> dict:
    return {"arch": arch or t["arch"], "in_nc": spec.in_channels, "out_nc": spec.out_channels,
            "ngf": ngf or t["ngf"], "norm": t["norm"], "num_downs": t["num_downs"], "n_blocks": t["n_blocks"]}


def train_teacher(cfg: dict, role: str, data: TaskData, evalnet_path, seed: int) -> tuple[dict, list]:
    seed_all(seed)
    t = cfg["teachers"][role]
    spec = data.spec
    gkw = generator_kwargs(t, spec)
    if spec.kind == "paired":
        return _pix2pix(t, gkw, data, evalnet_path, seed)
    if spec.in_channels != spec.out_channels:
        raise ValueError(f"CycleGAN needs equal channels on both sides, task {spec.id} has "
                         f"{spec.in_channels} -> {spec.out_channels}")
    return _cyclegan(t, gkw, data, evalnet_path, seed)


def _snapshot(gen, it, scorer, curve, snapshots, t0):
    score = scorer(gen)
    curve.append({"iter": it, "val": score, "seconds": time.time() - t0})
    snapshots.append({"iter": it, "val": score, "state_dict": copy.deepcopy(gen.state_dict())})


def _pix2pix(t, gkw, data, evalnet_path, seed):
    spec = data.spec
    G = build_generator(**gkw)
    D = NLayerDiscriminator(spec.in_channels + spec.out_channels, t["ndf"], t["n_layers_d"], "batch")
    opt_g = torch.optim.Adam(G.parameters(), lr=t["lr"], betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=t["lr"], betas=(0.5, 0.999))
    scheds = [linear_decay(o, t["iters"], t["decay_from"]) for o in (opt_g, opt_d)]
    xa, xb = data.tensor("train", "A"), data.tensor("train", "B")
    gen = torch.Generator().manual_seed(seed)
    scorer = ValScorer(data, evalnet_path)
    curve, snapshots, t0 = [], [], time.time()
    for it in progress(range(1, t["iters"] + 1), f"pix2pix teacher {spec.id}"):
        idx = data.batch_indices(gen, t["batch"])
        a, b = xa[idx], xb[idx]
        fake = G(a)
        loss_d = 0.5 * (gan_loss(D(torch.cat([a, fake.detach()], 1)), False, t["gan_mode"])
                        + gan_loss(D(torch.cat([a, b], 1)), True, t["gan_mode"]))
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        loss_g = (gan_loss(D(torch.cat([a, fake], 1)), True, t["gan_mode"], for_discriminator=False)
                  + t["lambda_rec"] * F.l1_loss(fake, b))
        check_finite(loss_g, "pix2pix generator loss", it)
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        for s in scheds:
            s.step()
        if it % t["snapshot_every"] == 0 or it == t["iters"]:
            _snapshot(G, it, scorer, curve, snapshots, t0)
    return {"generator": gkw, "state_dict": G.state_dict(), "snapshots": snapshots}, curve


def _cyclegan(t, gkw, data, evalnet_path, seed):
    G_A, G_B = build_generator(**gkw), build_generator(**gkw)
    nc = data.spec.out_channels
    D_A = NLayerDiscriminator(nc, t["ndf"], t["n_layers_d"], "instance")
    D_B = NLayerDiscriminator(nc, t["ndf"], t["n_layers_d"], "instance")
    opt_g = torch.optim.Adam(itertools.chain(G_A.parameters(), G_B.parameters()), lr=t["lr"], betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(itertools.chain(D_A.parameters(), D_B.parameters()), lr=t["lr"], betas=(0.5, 0.999))
    scheds = [linear_decay(o, t["iters"], t["decay_from"]) for o in (opt_g, opt_d)]
    xa, xb = data.tensor("train", "A"), data.tensor("train", "B")
    gen = torch.Generator().manual_seed(seed)
    pool_a, pool_b = ImagePool(t["pool_size"], seed), ImagePool(t["pool_size"], seed + 1)
    scorer = ValScorer(data, evalnet_path)
    lam, lam_idt, mode = t["lambda_rec"], t["lambda_idt"], t["gan_mode"]
    curve, snapshots, t0 = [], [], time.time()
    for it in progress(range(1, t["iters"] + 1), f"CycleGAN teacher {data.spec.id}"):
        a = xa[data.batch_indices(gen, t["batch"], side="A")]
        b = xb[data.batch_indices(gen, t["batch"], side="B")]
        fake_b, fake_a = G_A(a), G_B(b)
        rec_a, rec_b = G_B(fake_b), G_A(fake_a)
        loss_g = (gan_loss(D_A(fake_b), True, mode, False) + gan_loss(D_B(fake_a), True, mode, False)
                  + lam * (F.l1_loss(rec_a, a) + F.l1_loss(rec_b, b)))
        if lam_idt > 0:
            loss_g = loss_g + lam * lam_idt * (F.l1_loss(G_A(b), b) + F.l1_loss(G_B(a), a))
        check_finite(loss_g, "CycleGAN generator loss", it)
        for p in itertools.chain(D_A.parameters(), D_B.parameters()):
            p.requires_grad_(False)
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        for p in itertools.chain(D_A.parameters(), D_B.parameters()):
            p.requires_grad_(True)
        fb, fa = pool_b.query(fake_b), pool_a.query(fake_a)
        loss_d = 0.5 * (gan_loss(D_A(b), True, mode) + gan_loss(D_A(fb.detach()), False, mode)
                        + gan_loss(D_B(a), True, mode) + gan_loss(D_B(fa.detach()), False, mode))
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        for s in scheds:
            s.step()
        if it % t["snapshot_every"] == 0 or it == t["iters"]:
            _snapshot(G_A, it, scorer, curve, snapshots, t0)
    return {"generator": gkw, "state_dict": G_A.state_dict(), "snapshots": snapshots}, curve


def load_generator(ck: dict, state_dict=None):
    G = build_generator(**ck["generator"])
    G.load_state_dict(ck["state_dict"] if state_dict is None else state_dict)
    return G
