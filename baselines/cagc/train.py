"""CAGC's stages on StyleGAN2 (``prune``, ``distill``; see ``baselines.cagc``).

Channel groups: a StyleGAN2 generator's ``net_shape`` lists the width of every map of its synthesis chain.
Group 0 (the constant) is read by ``conv1``, group k (1 .. n - 2) by styled conv k - 1, the last group by the
last ToRGB; each group's channel score comes from the weight of the layer that reads it (per input channel).
Pruning a group removes those input channels of its reader (and their modulation rows) and the output
channels of the layer that writes it (with their biases); the rest is copied.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from vem.metrics.cost import count_macs, count_macs_cagc
from vem.models import build, load_generator, record
from vem.models.stylegan2 import StyleGAN2Discriminator
from vem.train import check_finite, snapshot_weights
from vem.train import stylegan as sg
from vem.utils import seed_all


# ---- content of interest and the content-aware score -----------------------------------------------------
def ink_mask(img: torch.Tensor, ink: int) -> torch.Tensor:
    """B x 1 x H x W in {0, 1}: the mini content of interest of images in [-1, 1] - a pixel whose value as
    uint8 exceeds ``ink`` in any channel (the rule by which the scenes' items are labelled)."""
    return (((img + 1) / 2 * 255) > ink).any(1, keepdim=True).to(img.dtype)


def content_of_interest(ctx, for_distillation: bool = False):
    """The content-mask function of the configured ``content``: ``ink`` (mini) or ``face`` (paper: BiSeNet's
    parse, every class but background and cloth; the ``face_parser`` input), its parse resized to the image as
    CAGC's pruning (antialiased, PIL) or, ``for_distillation``, as its KD masks (plain bilinear)."""
    c = ctx.section
    if c["content"] == "ink":
        return lambda img: ink_mask(img, c["ink"])
    from vem.models.faceparse import load_face_parser

    if "face_parser" not in ctx.inputs:
        raise ValueError(f"cagc content 'face' needs the face parser (--input face_parser=PATH) for {ctx.spec.id}")
    parser = load_face_parser(ctx.inputs["face_parser"])
    return lambda img: parser.content_mask(img, antialias=not for_distillation)


def salt_and_pepper_loss(img: torch.Tensor, mask: torch.Tensor, prob: float, gen: torch.Generator) -> torch.Tensor:
    """CAGC's score loss: inside ``mask`` each pixel with probability ``prob`` set to +-1 (random sign, every
    channel); sum |noisy - img| - only the noised pixels carry a gradient."""
    b, _, h, w = img.shape
    hit = (torch.rand(b, 1, h, w, generator=gen, device="cpu") < prob).to(img) * mask
    sign = torch.randint(0, 2, (b, 1, h, w), generator=gen, device="cpu").to(img) * 2 - 1
    noisy = torch.where(hit.bool().expand_as(img), sign.expand_as(img), img.detach())
    return (noisy - img).abs().sum()


def group_readers(G) -> list:
    """The modulated conv that reads each channel group, in ``net_shape`` order."""
    return [G.conv1.conv, *[c.conv for c in G.convs], G.to_rgbs[-1].conv]


def channel_scores(G, z: torch.Tensor, content, c: dict, gen: torch.Generator) -> list[torch.Tensor]:
    """Per group, the summed over batches mean |dL/dW| of its reader's weight over (out, k, k) (``content``:
    images -> their content mask)."""
    readers = group_readers(G)
    scores = [torch.zeros(r.weight.shape[1], dtype=torch.float64) for r in readers]
    for start in range(0, len(z), c["score_batch"]):
        G.zero_grad(set_to_none=True)
        img = G(z[start:start + c["score_batch"]], noise="random")
        loss = salt_and_pepper_loss(img, content(img.detach()), c["noise_prob"], gen)
        loss.backward()
        for s, r in zip(scores, readers):
            s += r.weight.grad.abs().mean((0, 2, 3)).double()
    G.zero_grad(set_to_none=True)
    return scores


def kept_channels(scores: list[torch.Tensor], ratio: float) -> list[list[int]]:
    """Per group, the indices (ascending) of the channels kept: all but the int(ratio x n) lowest-scoring."""
    keep = []
    for s in scores:
        n_keep = len(s) - int(ratio * len(s))
        keep.append(sorted(torch.argsort(s, descending=True, stable=True)[:n_keep].tolist()))
    return keep


def pruned_generator(G, kwargs: dict, keep: list[list[int]]):
    """A generator of widths ``len(keep[g])`` holding G's weights of the kept channels, and its record
    (``kwargs``: G's backbone arguments)."""
    rec = record("stylegan2", **{**kwargs, "net_shape": [len(k) for k in keep]})
    P = build(rec).to(G.const.dtype)
    idx = [torch.tensor(k, dtype=torch.long) for k in keep]
    sd = {k: v.clone() for k, v in G.state_dict().items()}
    out = dict(sd)
    out["const"] = sd["const"][:, idx[0]]

    def styled(prefix, i_in, i_out, rgb=False):
        w = sd[f"{prefix}.conv.weight"][:, idx[i_in]]
        out[f"{prefix}.conv.weight"] = w if rgb else w[idx[i_out]]
        out[f"{prefix}.conv.affine.weight"] = sd[f"{prefix}.conv.affine.weight"][idx[i_in]]
        out[f"{prefix}.conv.affine.bias"] = sd[f"{prefix}.conv.affine.bias"][idx[i_in]]
        if not rgb:
            out[f"{prefix}.bias"] = sd[f"{prefix}.bias"][idx[i_out]]

    styled("conv1", 0, 1)
    styled("to_rgb1", 1, None, rgb=True)
    for i in range(len(G.convs)):
        styled(f"convs.{i}", 1 + i, 2 + i)
    for j in range(len(G.to_rgbs)):
        styled(f"to_rgbs.{j}", 3 + 2 * j, None, rgb=True)
    P.load_state_dict(out, strict=True)
    return P, rec


def prune(ctx) -> tuple[dict, list]:
    """Content-aware scores of the Original's (EMA) generator, the lowest ``prune_ratio`` of each group removed."""
    c, spec = ctx.section, ctx.spec
    seed_all(ctx.seed)
    orig = ctx.load("original")
    G = load_generator(orig)
    gen = torch.Generator().manual_seed(ctx.seed)
    z = torch.randn(c["n_sample"], spec.in_channels, generator=gen, device="cpu").to(G.const.device)
    scores = channel_scores(G, z, content_of_interest(ctx), c, gen)
    keep = kept_channels(scores, c["prune_ratio"])
    P, rec = pruned_generator(G, orig["generator"]["kwargs"], keep)
    rows = []
    for g, (s, k) in enumerate(zip(scores, keep)):
        dropped = [i for i in range(len(s)) if i not in set(k)]
        rows.append({"group": g, "width": len(s), "kept": len(k), "score_kept_mean": float(s[k].mean()),
                     "score_dropped_mean": float(s[dropped].mean()) if dropped else float("nan")})
    ck = {"generator": rec, "state_dict": P.state_dict(), "keep": keep, "scores": [s.tolist() for s in scores],
          "macs_cagc": count_macs_cagc(P), "original_macs_cagc": count_macs_cagc(G),
          "macs_harness": count_macs(P, spec.in_channels, spec.input_size),
          "params": sum(p.numel() for p in P.parameters())}
    return ck, rows


# ---- distill --------------------------------------------------------------------------------------------
def distill(ctx) -> tuple[dict, list]:
    spec, c, seed, data = ctx.spec, ctx.section, ctx.seed, ctx.data
    seed_all(seed)
    orig = ctx.load("original")
    if "discriminator" not in orig:
        raise ValueError("cagc distill starts from the Original's discriminator; its checkpoint holds none "
                         "(a StyleGAN2 Original trained here keeps it; an imported one needs its 'd')")
    teacher = load_generator(orig).eval().requires_grad_(False)
    pruned = ctx.load("prune")
    student = load_generator(pruned).train()
    s_ema = copy.deepcopy(student).eval().requires_grad_(False)
    D = StyleGAN2Discriminator(**orig["discriminator"]["kwargs"])
    D.load_state_dict(orig["discriminator"]["state_dict"])
    distance = ctx.lpips()
    content = content_of_interest(ctx, for_distillation=True)
    scorer = ctx.scorer()
    addon = ctx.build_addon(spec.out_channels, ctx.image_size, data.n("train", "A"))
    opt_g = sg.lazy_adam(list(student.parameters()) + addon.student_parameters(), c["lr"], c["g_reg_every"])
    opt_d = sg.lazy_adam(D.parameters(), c["lr"], c["d_reg_every"])
    path = sg.PathLength(c["path_decay"])
    gen = torch.Generator().manual_seed(seed)
    za, xb = data.tensor("train", "A"), data.tensor("train", "B")

    def step(it):
        idx = data.batch_indices(gen, c["batch"], side="B")
        z, real = za[idx], xb[idx]
        # D (logistic, lazy R1): the Original's discriminator against the student
        with torch.no_grad():
            fake = student.synthesis(sg.mixed_latents(student, z, c["mixing"], gen)[0])
        stats = sg.d_step(D, opt_d, real, fake, c, it)
        # G: non-saturating + content-aware KD (+ the add-on), the same latents and mixing for the teacher
        D.requires_grad_(False)
        z2, index = sg.draw_mixing(z, c["mixing"], student.n_latent, gen)
        s_img = student.synthesis(sg.styles(student, z, z2, index))
        with torch.no_grad():
            t_img = teacher.synthesis(sg.styles(teacher, z, z2, index), noise="random")
            mask = content(t_img)
        adv = sg.g_nonsaturating(D(s_img))
        l1 = F.l1_loss(s_img * mask, t_img * mask)
        lp = distance(s_img * mask, t_img * mask).mean()
        loss = adv + c["lambda_l1"] * l1 + c["lambda_lpips"] * lp
        mi, mi_stats = ctx.mi_term(addon, t_img, s_img, idx, it, loss, student.parameters())
        stats.update(mi_stats)
        total = loss + mi
        check_finite(total, "student loss", it)
        opt_g.zero_grad(set_to_none=True)
        total.backward()
        opt_g.step()
        stats.update(sg.path_step(student, path, opt_g, z, c, it, gen))
        D.requires_grad_(True)
        sg.ema_update(s_ema, student, c["ema_decay"])
        stats.update(gan_loss=adv.item(), kd_l1=l1.item(), kd_lpips=lp.item(),
                     content_fraction=float(mask.mean()), distill_loss=loss.item(), mi_loss=float(mi.detach()))
        return stats

    state = {"student": student, "s_ema": s_ema, "D": D, "addon": addon, "opt_g": opt_g, "opt_d": opt_d,
             "path": path}
    loop = ctx.loop(f"{ctx.method}+{ctx.addon} {spec.id} seed {seed}", c["iters"], state, gen,
                    eval_every=c["eval_every"], score=lambda: {"val": scorer(s_ema)},
                    snapshot=snapshot_weights(state_dict=s_ema) if ctx.keep_snapshots else None)
    res = loop.run(step)
    ck = {"generator": pruned["generator"], "state_dict": s_ema.state_dict(), "iters": c["iters"],
          "macs_cagc": count_macs_cagc(s_ema), "net_shape": list(s_ema.net_shape), "resumed_from": res.resumed_from}
    if ctx.keep_snapshots:
        ck["snapshots"] = res.snapshots
    return ck, res.curve
