"""CAT's stages: ``teacher``, ``prune`` and ``distill`` (see ``baselines.cat``).

Kernel alignment (CAT's ``KA``): with X, Y the batch-flattened maps (B x CHW) of a student and a teacher
layer, ``KA = <X X^T, Y Y^T>_F / (|X X^T|_F |Y Y^T|_F)`` (uncentred, as CAT's code); the loss is
``-lambda_distill * sum over the four layers``. No adaptor is needed (the Gram matrices are B x B).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vem.losses import gan_loss
from vem.metrics.cost import count_macs
from vem.models import build, init_weights, load_generator, record
from vem.train import best_snapshot, build_discriminator, check_finite, linear_decay, snapshot_weights, train_teacher
from vem.utils import seed_all

from .macs import cat_macs

MAX_BISECTION_STEPS = 200


def kernel_alignment(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    x, y = x.reshape(x.shape[0], -1), y.reshape(y.shape[0], -1)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"kernel alignment needs the same batch, got {x.shape[0]} and {y.shape[0]}")
    kx, ky = x @ x.T, y @ y.T
    return (kx * ky).sum() / ((kx**2).sum() * (ky**2).sum()).sqrt()


# ---- stages ------------------------------------------------------------------------------------------
def teacher(ctx) -> tuple[dict, list]:
    return train_teacher(ctx.section["teacher"], ctx.data, ctx.seed, ctx.scorer, ctx.resumer,
                         keep_discriminator=True, desc="CAT teacher")


def _teacher_generator(teacher_ck: dict):
    return load_generator(teacher_ck, best_snapshot(teacher_ck)["state_dict"])


def widths_at(G, threshold: float, lower_bound: int) -> dict:
    """The widths CAT's shrink keeps at a global |gamma| threshold: channels whose norm scale exceeds it;
    down/up-sampling layers keep at least ``lower_bound``; a branch may lose all its channels (deleted)."""
    def count(norm):
        return int((norm.weight.detach().abs() > threshold).sum())

    return {"down": [max(count(n), lower_bound) for n in G.down_norms()],
            "blocks": [{kind: _by_kernel(b, kind, [count(n) for n in norms])
                        for kind, norms in b.first_norms().items()} for b in G.features],
            "up": [max(count(n), lower_bound) for n in G.up_norms()]}


def _by_kernel(block, kind: str, counts: list[int]) -> list[int]:
    """Branch widths per kernel size of the block's layout (absent branches 0)."""
    present = dict(zip(block.res_kernels if kind == "res" else block.dw_kernels, counts))
    return [present.get(k, 0) for k in block.kernel_sizes]


def prune(ctx) -> tuple[dict, list]:
    """Bisection on a global |gamma| threshold until the rebuilt generator fits ``target_macs`` (CAT's
    profiler convention) and the threshold interval is within 1e-3 of its lower end (CAT's stop rule)."""
    c, spec = ctx.section, ctx.spec
    teacher_ck = ctx.load("teacher")
    rec = teacher_ck["generator"]
    if rec["backbone"] != "inception":
        raise ValueError(f"CAT prunes an inception generator; the teacher checkpoint holds {rec['backbone']!r}")
    G = _teacher_generator(teacher_ck)
    gammas = torch.cat([n.weight.detach().abs() for n in G.down_norms() + G.up_norms()]
                       + [n.weight.detach().abs() for b in G.features for ns in b.first_norms().values() for n in ns])
    target, lb = float(c["target_macs"]), c["prune_cin_lb"]

    def macs(widths) -> int:
        return cat_macs(build(record("inception", **{**rec["kwargs"], "widths": widths})), spec.in_channels, spec.size)

    teacher_macs = cat_macs(G, spec.in_channels, spec.size)
    lo, hi = float(gammas.min()), float(gammas.max())
    smallest = macs(widths_at(G, hi, lb))
    if smallest > target:
        raise ValueError(f"cat.target_macs {target:.6g} is below the smallest network the threshold can reach "
                         f"({smallest} MACs with prune_cin_lb {lb}); raise the target or lower the bound")
    trace, found = [], None
    for step in range(1, MAX_BISECTION_STEPS + 1):
        t = (lo + hi) / 2
        widths = widths_at(G, t, lb)
        m = macs(widths)
        trace.append({"step": step, "threshold": t, "macs_cat": m, "fits": m <= target, "lo": lo, "hi": hi})
        if m > target:
            lo = t
        else:
            hi, found = t, (t, widths, m)
        if hi - lo <= 1e-3 * lo and m <= target:
            break
    if found is None:   # every midpoint was over budget: the upper end is the feasible threshold
        found = (hi, widths_at(G, hi, lb), smallest)
    t, widths, m = found
    student = build(record("inception", **{**rec["kwargs"], "widths": widths}))
    ck = {"widths": widths, "threshold": t, "target_macs": target, "macs_cat": m,
          "macs_harness": count_macs(student, spec.in_channels, spec.size),
          "params": sum(p.numel() for p in student.parameters()), "teacher_macs_cat": teacher_macs,
          "teacher_macs_harness": count_macs(G, spec.in_channels, spec.size),
          "teacher_best_iter": teacher_ck["best_iter"], "bisection_steps": len(trace),
          "profile_input": [1, spec.in_channels, spec.size, spec.size]}
    return ck, trace


def distill(ctx) -> tuple[dict, list]:
    spec, c, seed, data = ctx.spec, ctx.section, ctx.seed, ctx.data
    seed_all(seed)
    teacher_ck, pruned = ctx.load("teacher"), ctx.load("prune")
    snap = best_snapshot(teacher_ck)
    teacher_g = load_generator(teacher_ck, snap["state_dict"]).eval().requires_grad_(False)
    student_rec = record("inception", **{**teacher_ck["generator"]["kwargs"], "widths": pruned["widths"]})
    student = init_weights(build(student_rec), "normal")     # CAT re-initialises the pruned architecture
    D = build_discriminator(teacher_ck["discriminator"]["kwargs"])
    D.load_state_dict(snap["d_state_dict"])                  # ... and starts its D from the teacher's D_A
    scorer = ctx.scorer()
    addon = ctx.build_addon(spec.out_channels, ctx.image_size, data.n("train", "A"))
    opt_g = torch.optim.Adam(list(student.parameters()) + addon.student_parameters(), lr=c["lr"], betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=c["lr"], betas=(0.5, 0.999))
    scheds = [linear_decay(o, c["iters"], c["decay_from"]) for o in (opt_g, opt_d)]
    gen = torch.Generator().manual_seed(seed)
    xa, xb = data.tensor("train", "A"), data.tensor("train", "B")
    mode = c["gan_mode"]

    def step(it):
        idx = data.batch_indices(gen, c["batch"], side="A")
        a, b = xa[idx], xb[data.batch_indices(gen, c["batch"], side="B")]
        with torch.no_grad():
            t_out, t_feats = teacher_g.forward_features(a)
        s, s_feats = student.forward_features(a)
        loss_d = 0.5 * (gan_loss(D(s.detach()), False, mode) + gan_loss(D(b), True, mode))
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        D.requires_grad_(False)
        recon = F.l1_loss(s, t_out)
        adv = gan_loss(D(s), True, mode, for_discriminator=False)
        ka = sum(kernel_alignment(fs, ft) for fs, ft in zip(s_feats, t_feats))
        loss = c["lambda_recon"] * recon + c["lambda_gan"] * adv - c["lambda_distill"] * ka
        # unpaired: the teacher output is the add-on's positive
        mi, stats = ctx.mi_term(addon, t_out, s, idx, it, loss, student.parameters())
        total = loss + mi
        check_finite(total, "student loss", it)
        opt_g.zero_grad(set_to_none=True)
        total.backward()
        opt_g.step()
        D.requires_grad_(True)
        for sch in scheds:
            sch.step()
        stats.update(recon_loss=recon.item(), gan_loss=adv.item(), ka=float(ka.detach()) / len(s_feats),
                     d_loss=loss_d.item(), distill_loss=loss.item(), mi_loss=float(mi.detach()))
        return stats

    state = {"student": student, "D": D, "opt_g": opt_g, "opt_d": opt_d, "sched_g": scheds[0], "sched_d": scheds[1],
             "addon": addon}
    loop = ctx.loop(f"CAT+{ctx.addon} {spec.id} seed {seed}", c["iters"], state, gen, eval_every=c["eval_every"],
                    score=lambda: {"val": scorer(student)},
                    snapshot=snapshot_weights(state_dict=student) if ctx.keep_snapshots else None)
    res = loop.run(step)
    ck = {"generator": student_rec, "state_dict": student.state_dict(), "iters": c["iters"],
          "teacher_best_iter": teacher_ck["best_iter"], "macs_cat": pruned["macs_cat"],
          "resumed_from": res.resumed_from}
    if ctx.keep_snapshots:
        ck["snapshots"] = res.snapshots
    return ck, res.curve
