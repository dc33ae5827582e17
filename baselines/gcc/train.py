"""GCC's stages on SAGAN (``pretrain``, ``prune``, ``distill``; see ``baselines.gcc``), and Slimming's
(the same stages with the online teacher, the distillation and the selective-activation discriminator off).

Distillation losses (GCC's SAGANModel.backward_G): for a student map f_s (through a learnable 1x1 conv, no
bias, to the teacher's width) and the teacher's map f_t of the same tap, ``content = sqrt(MSE(f_s, f_t))`` and
``style = sqrt(MSE(Gram(f_s), Gram(f_t)))`` with ``Gram(f) = f f^T / (C H W)`` per sample; summed over the
generator taps and the teacher discriminator's taps (evaluated on the student image vs the teacher image).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vem.losses import gan_loss
from vem.metrics.cost import count_macs, count_macs_thop_legacy
from vem.models import build, init_weights, load_generator, record
from vem.models.sagan import SAGANDiscriminator, SelfAttention
from vem.train import best_snapshot, check_finite, snapshot_weights, train_teacher
from vem.utils import seed_all


def gram(f: torch.Tensor) -> torch.Tensor:
    b, c, h, w = f.shape
    f = f.reshape(b, c, h * w)
    return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)


def content_style(f_s: torch.Tensor, f_t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return F.mse_loss(f_s, f_t).sqrt(), F.mse_loss(gram(f_s), gram(f_t)).sqrt()


# ---- pretrain and prune ------------------------------------------------------------------------------
def pretrain(ctx) -> tuple[dict, list]:
    """SAGAN at the pre-training width with L1 on the generator's BN scales (plain D, no distillation)."""
    return train_teacher(ctx.section["pretrain"], ctx.data, ctx.seed, ctx.scorer, ctx.resumer,
                         desc=f"{ctx.method} pretrain (BN-L1)")


def widths_at(G, threshold: float) -> list[int]:
    """Channels kept per BN'd layer at a global threshold: gamma > threshold, signed as in GCC's ``scale_prune``
    (at least one: the bisection's upper bound, the smallest per-layer maximum, keeps one; this covers a threshold
    rounded onto it)."""
    return [max(1, int((bn.weight.detach() > threshold).sum())) for bn in G.bn_layers()]


def bisect_widths(G, macs, target: float, tol: float, max_steps: int) -> tuple[tuple, list[dict]]:
    """GCC's scale_prune bisection: a global (signed) gamma threshold between the global minimum and the smallest
    per-layer maximum (no layer is emptied), moved up while the rebuilt generator's MACs (``macs(widths)``)
    exceed ``target`` and down otherwise, until they are within ``tol`` of it (or no threshold is left in
    between). Returns (widths, MACs, threshold) of the closest width set not above target + tol, and the trace."""
    gammas = [bn.weight.detach() for bn in G.bn_layers()]
    lo, hi = float(torch.cat(gammas).min()), float(min(g.max() for g in gammas))
    trace, best = [], None
    for step in range(1, max_steps + 1):
        t = (lo + hi) / 2
        widths = widths_at(G, t)
        m = macs(widths)
        trace.append({"step": step, "threshold": t, "widths": "_".join(map(str, widths)), "macs_gcc": m,
                      "target": target})
        if m <= target + tol and (best is None or abs(m - target) < abs(best[1] - target)):
            best = (widths, m, t)
        if abs(m - target) <= tol:
            break
        if m > target:
            lo = t
        else:
            hi = t
        if hi - lo <= 1e-9 * max(1.0, abs(hi)):   # converged: no threshold left between two width sets
            break
    if best is None:
        raise ValueError(f"prune: no threshold brings the generator within {tol:.6g} MACs of target_macs "
                         f"{target:.6g} (smallest reached: {min(r['macs_gcc'] for r in trace)})")
    return best, trace


def prune(ctx) -> tuple[dict, list]:
    """The pruned widths of the pre-trained generator's best snapshot at the MAC budget (GCC's convention);
    the student is re-initialised later (GCC inherits no weights)."""
    c, spec = ctx.section, ctx.spec
    ck = ctx.load("pretrain")
    G = load_generator(ck, best_snapshot(ck)["state_dict"])
    rec = ck["generator"]
    target, tol = float(c["target_macs"]), float(c["tolerance"])

    def macs(widths) -> int:
        return count_macs_thop_legacy(build(record("sagan", **{**rec["kwargs"], "widths": widths})),
                                      spec.in_channels, spec.input_size)

    (widths, m, t), trace = bisect_widths(G, macs, target, tol, c["max_bisection_steps"])
    student = build(record("sagan", **{**rec["kwargs"], "widths": widths}))
    out = {"widths": widths, "threshold": t, "macs_gcc": m, "target_macs": target, "tolerance": tol,
           "within_tolerance": abs(m - target) <= tol,
           "macs_harness": count_macs(student, spec.in_channels, spec.input_size),
           "params": sum(p.numel() for p in student.parameters()), "pretrain_widths": G.widths,
           "pretrain_macs_gcc": macs(G.widths), "pretrain_best_iter": ck["best_iter"], "bisection_steps": len(trace)}
    return out, trace


# ---- distill -----------------------------------------------------------------------------------------
class _Aux(nn.Module):
    """The 1x1 transforms of the student's generator taps and the smoothed teacher gap (resumable state)."""

    def __init__(self, s_widths: dict, t_widths: dict):
        super().__init__()
        self.transforms = nn.ModuleDict({k: nn.Conv2d(s_widths[k], t_widths[k], 1, bias=False) for k in s_widths})
        self.register_buffer("d_t_ema", torch.zeros(()))
        self.register_buffer("ema_started", torch.zeros((), dtype=torch.bool))


def _tap_widths(G, z_dim: int, taps) -> dict:
    with torch.no_grad():
        _, t = G.forward_taps(torch.zeros(2, z_dim, 1, 1))
    return {k: t[k].shape[1] for k in taps}


def architecture_step(D, D_t, G_s, G_t, z, real, aux, opt_arch, beta: float) -> dict:
    """GCC's architecture step: the gates clipped to [0, 1]; on a second batch, loss = |d_s - d_t| + L_real +
    L_fake of the student's D (hinge terms), with the student's gap d_s = |L_Gfake - L_fake| and the
    teacher's gap d_t (its D on its images) smoothed as ``beta * d_t + (1 - beta) * previous``; only the
    gates are updated (every weight frozen, the generators under no_grad)."""
    gates = [g.alpha for g in D.gates()]
    with torch.no_grad():
        for g in gates:
            g.clamp_(0.0, 1.0)
        fs, ft = G_s(z), G_t(z)
        pt = D_t(ft)
        d_t = (-pt.mean() - F.relu(1 + pt).mean()).abs()
        if not bool(aux.ema_started):
            aux.d_t_ema.copy_(d_t)
            aux.ema_started.fill_(True)
        else:
            aux.d_t_ema.copy_(beta * d_t + (1 - beta) * aux.d_t_ema)
    weights = D.weight_parameters()
    for w in weights:
        w.requires_grad_(False)
    for g in gates:
        g.requires_grad_(True)
    try:
        pf, pr = D(fs), D(real)
        l_fake, l_real = F.relu(1 + pf).mean(), F.relu(1 - pr).mean()
        d_s = (-pf.mean() - l_fake).abs()
        loss = (d_s - aux.d_t_ema).abs() + l_real + l_fake
        opt_arch.zero_grad(set_to_none=True)
        loss.backward()
        opt_arch.step()
    finally:
        for g in gates:
            g.requires_grad_(False)
        for w in weights:
            w.requires_grad_(True)
    active = sum(int((g.detach() >= gate.threshold).sum()) for g, gate in zip(gates, D.gates()))
    return {"arch_loss": loss.item(), "gap_student": d_s.item(), "gap_teacher": float(aux.d_t_ema),
            "active_channels": active}


def listed_twice(net: nn.Module) -> list[nn.Parameter]:
    """The parameters GCC's code hands its optimiser twice: its SAGANModel builds the online-distilling student's
    (and the gated discriminator's) parameter list from ``named_modules()``, adding those of every SpectralNorm
    and Self_Attn module *and* of the convolutions inside them; Adam then updates each twice per ``step()``
    with the same gradient. Here: the spectrally normalised convolutions' and the attention's q/k/v
    convolutions' parameters (BatchNorm, the last layer and the attention's gamma are listed once)."""
    out = []
    for m in net.modules():
        if isinstance(m, SelfAttention):
            out += [*m.query_conv.parameters(), *m.key_conv.parameters(), *m.value_conv.parameters()]
        elif isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) and getattr(m, "parametrizations", None) is not None:
            out += list(m.parameters())
    return out


class _Adam:
    """Adam over ``params`` in which the parameters in ``twice`` take two updates per ``step()`` (GCC's
    duplicated list, ``listed_twice``): each repeated update uses the same gradient and the moments and step
    count the first one left, as torch's Adam does for a parameter listed twice. Two optimisers underneath."""

    def __init__(self, params: list, twice: list, **kw):
        ids = {id(p) for p in twice}
        self.once = torch.optim.Adam([p for p in params if id(p) not in ids], **kw)
        self.twice = torch.optim.Adam(list(twice), **kw) if twice else None

    def named(self, name: str) -> dict:
        """The optimisers under their names in the loop's resume state."""
        return {name: self.once, **({f"{name}_twice": self.twice} if self.twice else {})}

    def zero_grad(self, set_to_none: bool = True) -> None:
        for o in (self.once, self.twice):
            if o is not None:
                o.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        self.once.step()
        if self.twice is not None:
            self.twice.step()
            self.twice.step()


def distill(ctx) -> tuple[dict, list]:
    spec, c, seed, data = ctx.spec, ctx.section, ctx.seed, ctx.data
    seed_all(seed)
    pruned = ctx.load("prune")
    p = c["pretrain"]
    s_rec = record("sagan", in_nc=spec.in_channels, out_nc=spec.out_channels, ngf=p["ngf"], image_size=spec.size,
                   widths=pruned["widths"])
    init = p["init"]                                       # the SAGAN recipe's (GCC's init_weights: "gcc")
    student = init_weights(build(s_rec), init)            # re-initialised: GCC inherits no weights
    D = init_weights(SAGANDiscriminator(spec.out_channels, c["ndf"], spec.size, gated=c["gated_d"],
                                        threshold=c["gate_threshold"]), init)
    online = c["online_teacher"]
    state = {"student": student, "D": D}
    if online:     # GCC: the teacher trains from scratch beside the student, on the same batches
        t_rec = record("sagan", in_nc=spec.in_channels, out_nc=spec.out_channels, ngf=c["teacher"]["ngf"],
                       image_size=spec.size)
        G_t = init_weights(build(t_rec), init)
        D_t = init_weights(SAGANDiscriminator(spec.out_channels, c["teacher"]["ndf"], spec.size), init)
        state.update(G_t=G_t, D_t=D_t)
    else:          # Slimming: no teacher, no add-on
        if ctx.addon != "none":
            raise ValueError(f"{ctx.method} has no teacher: it runs without an MI add-on, not {ctx.addon!r}")
        G_t = D_t = None
    g_taps, d_taps = list(c["g_taps"]), list(c["d_taps"]) if online else []
    if online:
        aux = _Aux(_tap_widths(student, spec.in_channels, g_taps), _tap_widths(G_t, spec.in_channels, g_taps))
    else:
        g_taps, aux = [], _Aux({}, {})
    # the 1x1 transforms keep PyTorch's default initialisation: GCC builds them outside netG's init_weights
    scorer = ctx.scorer()
    addon = ctx.build_addon(spec.out_channels, ctx.image_size, data.n("train", "A"))
    betas = (c["beta1"], c["beta2"])
    twice = c["duplicate_params"]
    opt_g = _Adam(list(student.parameters()) + list(aux.parameters()) + addon.student_parameters(),
                  listed_twice(student) if twice and online else [], lr=c["lr"], betas=betas)
    opt_d = _Adam(D.weight_parameters(), listed_twice(D) if twice and c["gated_d"] else [], lr=c["lr_d"], betas=betas)
    gates = [g.alpha for g in D.gates()]
    state.update(aux=aux, addon=addon, **opt_g.named("opt_g"), **opt_d.named("opt_d"))
    if gates:
        opt_arch = torch.optim.Adam(gates, lr=c["arch_lr"])
        state["opt_arch"] = opt_arch
    if online:
        opt_gt = torch.optim.Adam(G_t.parameters(), lr=c["lr"], betas=betas)
        opt_dt = torch.optim.Adam(D_t.parameters(), lr=c["lr_d"], betas=betas)
        state.update(opt_gt=opt_gt, opt_dt=opt_dt)
    gen = torch.Generator().manual_seed(seed)
    za, xb = data.tensor("train", "A"), data.tensor("train", "B")
    per_epoch = max(1, data.n("train", "B") // c["batch"])
    epochs = max(1, c["iters"] // per_epoch)
    for g in gates:
        g.requires_grad_(False)

    def d_hinge(net, real, fake):
        return gan_loss(net(real), True, "hinge") + gan_loss(net(fake), False, "hinge")

    def step(it):
        idx = data.batch_indices(gen, c["batch"], side="B")
        z, real = za[idx], xb[idx]
        stats, t_img = {}, None      # Slimming: no teacher image (and no add-on)
        # (a) the online teacher's own D and G steps on the same batch; its maps are snapshotted
        if online:
            t_img, t_gtaps = G_t.forward_taps(z)
            loss_dt = d_hinge(D_t, real, t_img.detach())
            opt_dt.zero_grad(set_to_none=True)
            loss_dt.backward()
            opt_dt.step()
            t_pred, t_dtaps = D_t.forward_taps(t_img)
            loss_gt = -t_pred.mean()
            opt_gt.zero_grad(set_to_none=True)
            loss_gt.backward()
            opt_gt.step()
            t_img = t_img.detach()
            t_gtaps = {k: t_gtaps[k].detach() for k in g_taps}
            t_dtaps = {k: t_dtaps[k].detach() for k in d_taps}
            stats.update(teacher_d_loss=loss_dt.item(), teacher_g_loss=loss_gt.item())
        # (b) the student's D step (gates applied, frozen)
        s_img, s_taps = student.forward_taps(z)
        loss_d = d_hinge(D, real, s_img.detach())
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        # (c) the student's G step
        D.requires_grad_(False)
        adv = gan_loss(D(s_img), True, "hinge", for_discriminator=False)
        content = style = s_img.new_zeros(())
        for k in g_taps:
            cs, st = content_style(aux.transforms[k](s_taps[k]), t_gtaps[k])
            content, style = content + cs, style + st
        if d_taps:
            D_t.requires_grad_(False)
            _, sd = D_t.forward_taps(s_img)
            for k in d_taps:
                cs, st = content_style(sd[k], t_dtaps[k])
                content, style = content + cs, style + st
            D_t.requires_grad_(True)
        loss = adv + c["lambda_content"] * content + c["lambda_gram"] * style
        if c["lambda_l1"]:
            loss = loss + c["lambda_l1"] * F.l1_loss(s_img, t_img)
        mi, mi_stats = ctx.mi_term(addon, t_img, s_img, idx, it, loss, student.parameters())
        stats.update(mi_stats)
        total = loss + mi
        check_finite(total, "student loss", it)
        opt_g.zero_grad(set_to_none=True)
        total.backward()
        opt_g.step()
        D.requires_grad_(True)
        for g in gates:
            g.requires_grad_(False)
        stats.update(d_loss=loss_d.item(), gan_loss=adv.item(), content=float(content.detach()),
                     style=float(style.detach()),
                     distill_loss=loss.item(), mi_loss=float(mi.detach()))
        # (d) the architecture step on a second batch: only the gates move
        if gates:
            idx2 = data.batch_indices(gen, c["batch"], side="B")
            beta = 1.0 - min((it - 1) // per_epoch, epochs) / epochs     # GCC: 1 - epoch / total epochs
            stats.update(architecture_step(D, D_t, student, G_t, za[idx2], xb[idx2], aux, opt_arch, beta))
        return stats

    loop = ctx.loop(f"{ctx.method}+{ctx.addon} {spec.id} seed {seed}", c["iters"], state, gen,
                    eval_every=c["eval_every"], score=lambda: {"val": scorer(student)},
                    snapshot=snapshot_weights(state_dict=student) if ctx.keep_snapshots else None)
    res = loop.run(step)
    ck = {"generator": s_rec, "state_dict": student.state_dict(), "iters": c["iters"],
          "macs_gcc": count_macs_thop_legacy(student, spec.in_channels, spec.input_size),
          "widths": pruned["widths"], "resumed_from": res.resumed_from}
    if gates:
        ck["active_d_channels"] = [int((g >= c["gate_threshold"]).sum()) for g in gates]
    if ctx.keep_snapshots:
        ck["snapshots"] = res.snapshots
    return ck, res.curve
