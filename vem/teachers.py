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
from .resume import load_objects_state, objects_state, rng_state, set_rng_state
from .train import ImagePool, TaskData, ValScorer, check_finite, linear_decay
from .utils import progress, seed_all


def generator_kwargs(t: dict, spec, ngf: int | None = None, arch: str | None = None) -> dict:
    return {"arch": arch or t["arch"], "in_nc": spec.in_channels, "out_nc": spec.out_channels,
            "ngf": ngf or t["ngf"], "norm": t["norm"], "num_downs": t["num_downs"], "n_blocks": t["n_blocks"]}


def train_teacher(cfg: dict, role: str, data: TaskData, evalnet_path, seed: int, resumer=None) -> tuple[dict, list]:
    """``resumer`` (vem.resume.Resumer): continue a saved run and save this one (periodically/on signals)."""
    seed_all(seed)
    t = cfg["teachers"][role]
    spec = data.spec
    gkw = generator_kwargs(t, spec)
    if spec.kind == "paired":
        return _pix2pix(t, gkw, data, evalnet_path, seed, resumer)
    if spec.in_channels != spec.out_channels:
        raise ValueError(f"CycleGAN needs equal channels on both sides, task {spec.id} has "
                         f"{spec.in_channels} -> {spec.out_channels}")
    return _cyclegan(t, gkw, data, evalnet_path, seed, resumer)


class _State:
    """Named modules/optimisers/schedulers (+ the batch generator, pools, curve, snapshots) as one
    weights-only state for vem.resume."""

    def __init__(self, objs: dict, gen: torch.Generator, pools: dict | None = None):
        self.objs, self.gen, self.pools = objs, gen, pools or {}

    def state(self, curve, snapshots) -> dict:
        return dict(objects_state(self.objs), rng=rng_state(self.gen), curve=list(curve),
                    snapshots=list(snapshots), pools=objects_state(self.pools))

    def restore(self, st: dict) -> tuple[int, list, list]:
        load_objects_state(self.objs, st)
        load_objects_state(self.pools, st["pools"])
        set_rng_state(st["rng"], self.gen)
        return int(st["iter"]), list(st["curve"]), list(st["snapshots"])


def _resume(resumer, holder: _State):
    saved = resumer.load() if resumer is not None else None
    return holder.restore(saved) if saved is not None else (0, [], [])


def _snapshot(gen, it, scorer, curve, snapshots, t0):
    score = scorer(gen)
    curve.append({"iter": it, "val": score, "seconds": time.time() - t0})
    snapshots.append({"iter": it, "val": score, "state_dict": copy.deepcopy(gen.state_dict())})


def _pix2pix(t, gkw, data, evalnet_path, seed, resumer=None):
    spec = data.spec
    G = build_generator(**gkw)
    D = NLayerDiscriminator(spec.in_channels + spec.out_channels, t["ndf"], t["n_layers_d"], "batch")
    opt_g = torch.optim.Adam(G.parameters(), lr=t["lr"], betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=t["lr"], betas=(0.5, 0.999))
    scheds = [linear_decay(o, t["iters"], t["decay_from"]) for o in (opt_g, opt_d)]
    xa, xb = data.tensor("train", "A"), data.tensor("train", "B")
    gen = torch.Generator().manual_seed(seed)
    scorer = ValScorer(data, evalnet_path)
    holder = _State({"G": G, "D": D, "opt_g": opt_g, "opt_d": opt_d, "sched_g": scheds[0], "sched_d": scheds[1]},
                    gen)
    start, curve, snapshots = _resume(resumer, holder)
    t0 = time.time()
    for it in progress(range(start + 1, t["iters"] + 1), f"pix2pix teacher {spec.id}", initial=start,
                       total=t["iters"]):
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
        if resumer is not None:
            resumer.tick(it, lambda: holder.state(curve, snapshots))
    return {"generator": gkw, "state_dict": G.state_dict(), "snapshots": snapshots, "resumed_from": start}, curve


def _cyclegan(t, gkw, data, evalnet_path, seed, resumer=None):
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
    holder = _State({"G_A": G_A, "G_B": G_B, "D_A": D_A, "D_B": D_B, "opt_g": opt_g, "opt_d": opt_d,
                     "sched_g": scheds[0], "sched_d": scheds[1]}, gen, {"a": pool_a, "b": pool_b})
    start, curve, snapshots = _resume(resumer, holder)
    t0 = time.time()
    for it in progress(range(start + 1, t["iters"] + 1), f"CycleGAN teacher {data.spec.id}", initial=start,
                       total=t["iters"]):
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
        if resumer is not None:
            resumer.tick(it, lambda: holder.state(curve, snapshots))
    return {"generator": gkw, "state_dict": G_A.state_dict(), "snapshots": snapshots, "resumed_from": start}, curve


def load_generator(ck: dict, state_dict=None):
    G = build_generator(**ck["generator"])
    G.load_state_dict(ck["state_dict"] if state_dict is None else state_dict)
    return G
