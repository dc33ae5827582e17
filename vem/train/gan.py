"""GAN training recipes shared by the Original teachers and the methods' own teachers.

``train_teacher(t, data, seed, make_scorer, resumer)`` trains the generator a teacher section ``t`` of the
configuration describes (``arch`` + widths, ``init``, the recipe: iterations, batch, lr and its linear
decay, GAN mode, reconstruction / identity weights, discriminator, image pool, ``snapshot_every``):
pix2pix (G + conditional PatchGAN, GAN loss + L1 to the ground truth) on paired tasks, CycleGAN (G_A, G_B,
D_A, D_B, cycle + identity losses, image pools) on unpaired ones, SAGAN (G(z) + the SAGAN discriminator,
hinge loss, TTUR: ``lr`` for G, ``lr_d`` for D, Adam betas ``(beta1, beta2)``; optionally GCC's L1 on the
generator's BN scales, ``bn_l1``) or StyleGAN2 (``arch: stylegan2``: rosinality's recipe, see
``vem.train.stylegan``; the checkpoint holds the EMA generator) on unconditional ones. The checkpoint
holds the final generator (A -> B), a snapshot of it with its held-out val metric every
``snapshot_every`` iterations and the iteration of the best one (``best_iter``, see :func:`best_snapshot`); with
``keep_discriminator`` the snapshots (and the checkpoint) also hold the discriminator that judges its
outputs (D of pix2pix, D_A of CycleGAN), for methods that start their own from it (CAT).
"""

from __future__ import annotations

import itertools
import random

import torch
import torch.nn.functional as F

from ..losses import gan_loss
from ..models import NLayerDiscriminator, build, from_config, init_weights
from ..models.sagan import SAGANDiscriminator
from ..models.stylegan2 import StyleGAN2Discriminator
from ..utils import seed_all
from . import stylegan as sg
from .loop import Loop, check_finite, snapshot_weights


def linear_decay(opt, total: int, decay_from: float):
    """Constant lr for ``decay_from * total`` iterations, then linear decay to 0 (pix2pix 'linear')."""
    start = int(total * decay_from)

    def factor(it):
        if it < start or total <= start:
            return 1.0
        return max(0.0, 1.0 - (it - start) / max(1, total - start))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


class ImagePool:
    """CycleGAN's history of generated images (size 0 = pass-through), driven by a seeded RNG."""

    def __init__(self, size: int, seed: int):
        self.size, self.images, self.rng = size, [], random.Random(seed)

    def state_dict(self) -> dict:
        from ..resume import py_random_state

        return {"images": list(self.images), "rng": py_random_state(self.rng)}

    def load_state_dict(self, st: dict) -> None:
        from ..resume import set_py_random_state
        from ..utils import default_device

        self.images = [im.to(default_device()) for im in st["images"]]   # resume files load on the CPU
        set_py_random_state(st["rng"], self.rng)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for im in images.detach():
            im = im.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(im.clone())      # its own storage, not a view pinning the whole batch
                out.append(im)
            elif self.rng.random() > 0.5:
                j = self.rng.randrange(self.size)
                out.append(self.images[j].clone())
                self.images[j] = im.clone()
            else:
                out.append(im)
        return torch.cat(out)


def discriminator_record(t: dict, in_nc: int) -> dict:
    return {"in_nc": in_nc, "ndf": t["ndf"], "n_layers": t["n_layers_d"], "norm": t["norm_d"]}


def build_discriminator(rec: dict, init: str = "default") -> NLayerDiscriminator:
    return init_weights(NLayerDiscriminator(**rec), init)


def train_teacher(t: dict, data, seed: int, make_scorer, resumer=None, keep_discriminator: bool = False,
                  desc: str = "teacher") -> tuple[dict, list]:
    """``make_scorer()`` builds the val scorer (called where the recipe's RNG order expects it)."""
    seed_all(seed)
    spec = data.spec
    gen_rec = from_config(t, spec.in_channels, spec.out_channels, image_size=spec.size)
    if spec.kind == "unconditional":
        recipe = train_stylegan2 if gen_rec["backbone"] == "stylegan2" else train_sagan
        return recipe(t, gen_rec, data, seed, make_scorer, resumer, keep_discriminator, desc)
    if t.get("bn_l1"):
        raise ValueError(f"bn_l1 (GCC's sparsity pre-training) applies to SAGAN teachers only, not to {spec.kind} "
                         "tasks")
    if spec.kind == "paired":
        return _pix2pix(t, gen_rec, data, seed, make_scorer, resumer, keep_discriminator, desc)
    if spec.in_channels != spec.out_channels:
        raise ValueError(f"CycleGAN needs equal channels on both sides, task {spec.id} has "
                         f"{spec.in_channels} -> {spec.out_channels}")
    return _cyclegan(t, gen_rec, data, seed, make_scorer, resumer, keep_discriminator, desc)


def best_snapshot(ck: dict) -> dict:
    """The snapshot of a teacher checkpoint with the best held-out val metric."""
    return next(s for s in ck["snapshots"] if s["iter"] == ck["best_iter"])


def _finish(G, gen_rec, D, d_rec, res, keep_discriminator, scorer) -> tuple[dict, list]:
    best = res.snapshots[0]
    for snap in res.snapshots[1:]:
        if scorer.better(snap["val"], best["val"]):
            best = snap
    ck = {"generator": gen_rec, "state_dict": G.state_dict(), "snapshots": res.snapshots,
          "best_iter": best["iter"], "resumed_from": res.resumed_from}
    if keep_discriminator:
        ck["discriminator"] = {"kwargs": d_rec, "state_dict": D.state_dict()}
    return ck, res.curve


def _pix2pix(t, gen_rec, data, seed, make_scorer, resumer, keep_d, desc):
    spec = data.spec
    G = init_weights(build(gen_rec), t["init"])
    d_rec = discriminator_record(t, spec.in_channels + spec.out_channels)
    D = build_discriminator(d_rec, t["init"])
    opt_g = torch.optim.Adam(G.parameters(), lr=t["lr"], betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=t["lr"], betas=(0.5, 0.999))
    scheds = [linear_decay(o, t["iters"], t["decay_from"]) for o in (opt_g, opt_d)]
    xa, xb = data.tensor("train", "A"), data.tensor("train", "B")
    gen = torch.Generator().manual_seed(seed)
    scorer = make_scorer()
    mode = t["gan_mode"]

    def step(it):
        idx = data.batch_indices(gen, t["batch"])
        a, b = xa[idx], xb[idx]
        fake = G(a)
        loss_d = 0.5 * (gan_loss(D(torch.cat([a, fake.detach()], 1)), False, mode)
                        + gan_loss(D(torch.cat([a, b], 1)), True, mode))
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        loss_g = (gan_loss(D(torch.cat([a, fake], 1)), True, mode, for_discriminator=False)
                  + t["lambda_rec"] * F.l1_loss(fake, b))
        check_finite(loss_g, "pix2pix generator loss", it)
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        for s in scheds:
            s.step()

    snap = snapshot_weights(state_dict=G, **({"d_state_dict": D} if keep_d else {}))
    loop = Loop(f"pix2pix {desc} {spec.id}", t["iters"], {"G": G, "D": D, "opt_g": opt_g, "opt_d": opt_d,
                "sched_g": scheds[0], "sched_d": scheds[1]}, gen, resumer=resumer, eval_every=t["snapshot_every"],
                score=lambda: {"val": scorer(G)}, snapshot=snap)
    return _finish(G, gen_rec, D, d_rec, loop.run(step), keep_d, scorer)


def _cyclegan(t, gen_rec, data, seed, make_scorer, resumer, keep_d, desc):
    G_A, G_B = init_weights(build(gen_rec), t["init"]), init_weights(build(gen_rec), t["init"])
    d_rec = discriminator_record(t, data.spec.out_channels)
    D_A, D_B = build_discriminator(d_rec, t["init"]), build_discriminator(d_rec, t["init"])
    opt_g = torch.optim.Adam(itertools.chain(G_A.parameters(), G_B.parameters()), lr=t["lr"], betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(itertools.chain(D_A.parameters(), D_B.parameters()), lr=t["lr"], betas=(0.5, 0.999))
    scheds = [linear_decay(o, t["iters"], t["decay_from"]) for o in (opt_g, opt_d)]
    xa, xb = data.tensor("train", "A"), data.tensor("train", "B")
    gen = torch.Generator().manual_seed(seed)
    pool_a, pool_b = ImagePool(t["pool_size"], seed), ImagePool(t["pool_size"], seed + 1)
    scorer = make_scorer()
    lam, lam_idt, mode = t["lambda_rec"], t["lambda_idt"], t["gan_mode"]
    d_params = list(itertools.chain(D_A.parameters(), D_B.parameters()))

    micro = t.get("micro_batch") or t["batch"]

    def g_loss(a, b, it):
        fake_b, fake_a = G_A(a), G_B(b)
        rec_a, rec_b = G_B(fake_b), G_A(fake_a)
        loss = (gan_loss(D_A(fake_b), True, mode, False) + gan_loss(D_B(fake_a), True, mode, False)
                + lam * (F.l1_loss(rec_a, a) + F.l1_loss(rec_b, b)))
        if lam_idt > 0:
            loss = loss + lam * lam_idt * (F.l1_loss(G_A(b), b) + F.l1_loss(G_B(a), a))
        check_finite(loss, "CycleGAN generator loss", it)
        return loss, fake_b.detach(), fake_a.detach()

    def d_loss(a, b, fb, fa):
        return 0.5 * (gan_loss(D_A(b), True, mode) + gan_loss(D_A(fb), False, mode)
                      + gan_loss(D_B(a), True, mode) + gan_loss(D_B(fa), False, mode))

    def step(it):
        a = xa[data.batch_indices(gen, t["batch"], side="A")]
        b = xb[data.batch_indices(gen, t["batch"], side="B")]
        # micro-batches (t.micro_batch): each chunk's mean loss weighted by its share of the batch, gradients
        # summed before one step - the whole batch's gradient, as the original code's batch split over GPUs;
        # the pool sees the whole batch of fakes in order, as without them
        parts = [slice(i, min(i + micro, len(a))) for i in range(0, len(a), micro)]

        def backward(loss, sl):     # one chunk: the loss as it is (the whole batch's path, bit for bit)
            (loss if len(parts) == 1 else loss * ((sl.stop - sl.start) / len(a))).backward()

        for p in d_params:
            p.requires_grad_(False)
        opt_g.zero_grad()
        fakes_b, fakes_a = [], []
        for sl in parts:
            loss_g, fake_b, fake_a = g_loss(a[sl], b[sl], it)
            backward(loss_g, sl)
            fakes_b.append(fake_b)
            fakes_a.append(fake_a)
        opt_g.step()
        for p in d_params:
            p.requires_grad_(True)
        fb, fa = pool_b.query(torch.cat(fakes_b)), pool_a.query(torch.cat(fakes_a))
        opt_d.zero_grad()
        for sl in parts:
            backward(d_loss(a[sl], b[sl], fb[sl], fa[sl]), sl)
        opt_d.step()
        for s in scheds:
            s.step()

    snap = snapshot_weights(state_dict=G_A, **({"d_state_dict": D_A} if keep_d else {}))
    state = {"G_A": G_A, "G_B": G_B, "D_A": D_A, "D_B": D_B, "opt_g": opt_g, "opt_d": opt_d, "sched_g": scheds[0],
             "sched_d": scheds[1], "pool_a": pool_a, "pool_b": pool_b}
    loop = Loop(f"CycleGAN {desc} {data.spec.id}", t["iters"], state, gen, resumer=resumer,
                eval_every=t["snapshot_every"], score=lambda: {"val": scorer(G_A)}, snapshot=snap)
    return _finish(G_A, gen_rec, D_A, d_rec, loop.run(step), keep_d, scorer)


def bn_l1_subgradient(G, strength: float) -> None:
    """GCC's sparsity term (Slimming's): after backward, every generator BN weight's gradient += strength x sign."""
    for bn in G.bn_layers():
        if bn.weight.grad is not None:
            bn.weight.grad.add_(strength * torch.sign(bn.weight.detach()))


def sagan_discriminator_record(t: dict, spec) -> dict:
    return {"in_nc": spec.out_channels, "ndf": t["ndf"], "image_size": spec.size}


def train_sagan(t, gen_rec, data, seed, make_scorer, resumer, keep_d, desc):
    """GCC's SAGAN recipe (plain discriminator): per iteration one batch of (real image, its latent), one D
    step (hinge) then one G step (-D(G(z)), the D just updated); constant learning rates."""
    spec = data.spec
    if gen_rec["backbone"] != "sagan":
        raise ValueError(f"unconditional task {spec.id} trains a SAGAN generator; the teacher section says "
                         f"arch {gen_rec['backbone']!r}")
    G = init_weights(build(gen_rec), t["init"])
    d_rec = sagan_discriminator_record(t, spec)
    D = init_weights(SAGANDiscriminator(**d_rec), t["init"])
    betas = (t["beta1"], t["beta2"])
    opt_g = torch.optim.Adam(G.parameters(), lr=t["lr"], betas=betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=t["lr_d"], betas=betas)
    za, xb = data.tensor("train", "A"), data.tensor("train", "B")
    gen = torch.Generator().manual_seed(seed)
    scorer = make_scorer()
    mode, l1 = t["gan_mode"], t.get("bn_l1", 0.0)

    def step(it):
        idx = data.batch_indices(gen, t["batch"], side="B")
        z, real = za[idx], xb[idx]
        fake = G(z)
        loss_d = gan_loss(D(real), True, mode) + gan_loss(D(fake.detach()), False, mode)
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        loss_g = gan_loss(D(fake), True, mode, for_discriminator=False)
        check_finite(loss_g, "SAGAN generator loss", it)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        if l1:
            bn_l1_subgradient(G, l1)
        opt_g.step()
        return {"d_loss": loss_d.item(), "g_loss": loss_g.item()}

    snap = snapshot_weights(state_dict=G, **({"d_state_dict": D} if keep_d else {}))
    loop = Loop(f"SAGAN {desc} {spec.id}", t["iters"], {"G": G, "D": D, "opt_g": opt_g, "opt_d": opt_d}, gen,
                resumer=resumer, eval_every=t["snapshot_every"], score=lambda: {"val": scorer(G)}, snapshot=snap)
    return _finish(G, gen_rec, D, d_rec, loop.run(step), keep_d, scorer)


def stylegan2_discriminator_record(t: dict, spec) -> dict:
    return {"in_nc": spec.out_channels, "size": spec.size, "channel_multiplier": t["channel_multiplier"],
            "channel_max": t["channel_max"]}


def train_stylegan2(t, gen_rec, data, seed, make_scorer, resumer, keep_d, desc):
    """rosinality's StyleGAN2 recipe (CAGC's full model): per iteration one batch of (real image, its
    latent); a D step (logistic) with R1 every ``d_reg_every``, a G step (non-saturating) with the
    path-length term every ``g_reg_every``, each on freshly mixed styles (``mixing``) and fresh noise;
    the EMA generator (``ema_decay`` per iteration) is the one scored, snapshotted and kept, beside the final
    discriminator."""
    import copy

    spec = data.spec
    if t["init"] != "default":
        raise ValueError(f"StyleGAN2 keeps its own N(0, 1) init with equalised learning rate; init must be "
                         f"'default', got {t['init']!r}")
    G = build(gen_rec)
    g_ema = copy.deepcopy(G).eval().requires_grad_(False)
    d_rec = stylegan2_discriminator_record(t, spec)
    D = StyleGAN2Discriminator(**d_rec)
    opt_g = sg.lazy_adam(G.parameters(), t["lr"], t["g_reg_every"])
    opt_d = sg.lazy_adam(D.parameters(), t["lr"], t["d_reg_every"])
    path = sg.PathLength(t["path_decay"])
    za, xb = data.tensor("train", "A"), data.tensor("train", "B")
    gen = torch.Generator().manual_seed(seed)
    scorer = make_scorer()
    batch = t["batch"]
    if batch % min(batch, D.stddev_group):
        raise ValueError(f"StyleGAN2's minibatch-stddev layer needs a batch divisible by 4, got batch {batch}")

    def step(it):
        idx = data.batch_indices(gen, batch, side="B")
        z, real = za[idx], xb[idx]
        with torch.no_grad():
            fake = G.synthesis(sg.mixed_latents(G, z, t["mixing"], gen)[0])
        stats = sg.d_step(D, opt_d, real, fake, t, it)
        D.requires_grad_(False)
        fake = G.synthesis(sg.mixed_latents(G, z, t["mixing"], gen)[0])
        loss_g = sg.g_nonsaturating(D(fake))
        check_finite(loss_g, "StyleGAN2 generator loss", it)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        stats.update(sg.path_step(G, path, opt_g, z, t, it, gen))
        D.requires_grad_(True)
        sg.ema_update(g_ema, G, t["ema_decay"])
        return {"g_loss": loss_g.item(), **stats}

    snap = snapshot_weights(state_dict=g_ema, **({"d_state_dict": D} if keep_d else {}))
    state = {"G": G, "g_ema": g_ema, "D": D, "opt_g": opt_g, "opt_d": opt_d, "path": path}
    loop = Loop(f"StyleGAN2 {desc} {spec.id}", t["iters"], state, gen, resumer=resumer,
                eval_every=t["snapshot_every"], score=lambda: {"val": scorer(g_ema)}, snapshot=snap)
    # the discriminator is always kept: CAGC starts its own from the Original's (snapshots: on request)
    return _finish(g_ema, gen_rec, D, d_rec, loop.run(step), True, scorer)
