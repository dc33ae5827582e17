"""OMGD's stages: ``teacher`` (unpaired), ``teachers`` (paired, shared online teachers) and ``distill``.

Paired (pix2pix) tasks: a wide teacher (student architecture, wider) and a deep teacher (student width,
extra residual blocks) are trained *online* from scratch with the GAN loss + L1 x lambda_rec to the ground
truth, against one discriminator whose first ``n_share`` blocks both share; they are updated every
``n_dis`` student iterations. Unpaired (CycleGAN) tasks: one teacher (a trained CycleGAN, stage
``teacher``) with periodic student phases: after every teacher snapshot the best snapshot so far (by the
val-split metric) teaches the student for ``n_dis x teacher.snapshot_every`` iterations.

Student loss, per teacher output T (detached), summed over the teachers::

    l_ssim (1 - SSIM(S, T)) + l_style sum_k |Gram(P_k(S)) - Gram(P_k(T))|_1 + l_feature |P_2(S) - P_2(T)|_1
    + l_tv TV(S)  (a sum)
    + l_cd sum_k MSE(mean_hw(adapter_k(F_k^S)), mean_hw(F_k^T))      (wide teacher; channel distillation)
    + addon.loss(positive, S, idx)                                   (none / VID / CRD / VEM)

SSIM on [-1, 1] images (OMGD's code; ``ssim_unit_range: false``) is blind to polarity: luminance and
contrast-structure terms both flip sign for S = -T, so SSIM(-T, T) ~ +1 and an inverted student is a
minimum of that term. ``ssim_unit_range: true`` maps both to [0, 1] (the range SSIM's constants are for).
P is the perceptual network (the VGG16 role), F_k four intermediate generator maps, adapter_k a 1x1
conv + BN + ReLU from student to teacher width (trained with the student). The student has no GAN and
no ground-truth loss. Nothing here is specific to an add-on: they enter through the ``vem.mi`` protocol.

Shared online teachers. The paired teachers never see the student: their trajectory (weights, outputs,
batches) depends only on the task, the teacher configuration and the seed. Stage ``teachers`` therefore
trains them once per (task, seed) and stores, per student iteration, the batch indices, both teachers'
outputs and the wide teacher's channel-mean features (all a student needs); every add-on's ``distill``
then replays it instead of retraining the teachers. Teacher initialisation draws from its own RNG stream,
so a replayed student is the student the online loop trains (a test checks equality with a float32
trajectory; float16 storage perturbs the targets by < 1e-3).
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn

from vem.losses import gan_loss, ssim, style_loss, tv_loss
from vem.models import MultiNLayerDiscriminator, build, from_config, init_weights, load_generator
from vem.resume import load_objects_state, objects_state
from vem.train import check_finite, linear_decay, snapshot_weights, train_teacher
from vem.utils import config_hash, rng_devices, seed_all

TEACHER_SEED_OFFSET = 7919  # teachers' init stream: seed + offset, independent of the student's
# omgd keys that shape the online teachers' trajectory (the rest only affect the student)
TEACHER_KEYS = ("wide_ngf", "deep_ngf", "iters", "batch", "lr", "decay_from", "n_dis", "n_share", "ndf",
                "n_layers_d", "init")
TRAJECTORY_KIND = "omgd-online-teachers/3"   # bumped whenever the code changes what a trajectory holds


def adapters(s_ch: list[int], t_ch: list[int], init: str) -> nn.ModuleList:
    """OMGD's channel-distillation connectors: per tap a 1x1 conv (no bias) + BN + ReLU from the student's
    width to the teacher's, initialised by ``init_net`` (``init``)."""
    return init_weights(nn.ModuleList(nn.Sequential(nn.Conv2d(a, b, 1, bias=False), nn.BatchNorm2d(b), nn.ReLU())
                                      for a, b in zip(s_ch, t_ch)), init)


def _feature_channels(gen: nn.Module, in_nc: int, size: int) -> list[int]:
    was = gen.training
    gen.eval()
    with torch.no_grad():
        _, feats = gen.forward_features(torch.zeros(1, in_nc, size, size))
    gen.train(was)
    return [f.shape[1] for f in feats]


def teacher_config_hash(cfg: dict, task: str, seed: int) -> str:
    """Identity of a paired online-teacher trajectory: everything that shapes it, nothing else."""
    return config_hash({"task": task, "seed": seed, "original": cfg["teachers"]["original"],
                        "omgd": {k: cfg["omgd"].get(k) for k in TEACHER_KEYS}})


class OnlineTeachers:
    """OMGD's paired teachers: wide + deep generators trained online against one two-headed D.

    ``step(it, a, b)`` returns what the student needs at iteration ``it`` (counted from 1): both teachers'
    outputs and the wide teacher's channel-mean features. Iterations n_dis, 2 n_dis, ... are teacher updates
    (the outputs are those of the forward pass before the update); the others a no-grad forward pass in
    train mode.
    """

    def __init__(self, cfg: dict, spec, seed: int):
        o, base = cfg["omgd"], cfg["teachers"]["original"]
        self.o, self.rec = o, base["lambda_rec"]
        io = (spec.in_channels, spec.out_channels)
        with torch.random.fork_rng(devices=rng_devices()):
            torch.manual_seed(seed + TEACHER_SEED_OFFSET)
            self.wide = init_weights(build(from_config(base, *io, ngf=o["wide_ngf"])), o["init"])
            deep_arch = "unet_deepest" if base["arch"].startswith("unet") else "mobile_deepest_resnet"
            self.deep = init_weights(build(from_config(base, *io, ngf=o["deep_ngf"], arch=deep_arch)),
                                     o["init"])
            D = MultiNLayerDiscriminator(spec.in_channels + spec.out_channels, o["ndf"], o["n_layers_d"], "batch",
                                         o["n_share"], n_heads=2)
            self.D = init_weights(D, o["init"])
        teachers = list(self.wide.parameters()) + list(self.deep.parameters())
        self.opt_t = torch.optim.Adam(teachers, lr=o["lr"], betas=(0.5, 0.999))
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=o["lr"], betas=(0.5, 0.999))
        self.scheds = [linear_decay(opt, o["iters"], o["decay_from"]) for opt in (self.opt_t, self.opt_d)]

    def _objects(self) -> dict:
        return {"wide": self.wide, "deep": self.deep, "D": self.D, "opt_t": self.opt_t, "opt_d": self.opt_d,
                "sched_t": self.scheds[0], "sched_d": self.scheds[1]}

    def state_dict(self) -> dict:
        return objects_state(self._objects())

    def load_state_dict(self, st: dict) -> None:
        load_objects_state(self._objects(), st)

    def step(self, it: int, a: torch.Tensor, b: torch.Tensor):
        if it % self.o["n_dis"] == 0:    # OMGD: `steps % n_dis == 0`, steps counted from 1
            out = self._update(it, a, b)
        else:
            with torch.no_grad():
                t_w, f_w = self.wide.forward_features(a)
                out = t_w, self.deep(a), [f.mean((2, 3)) for f in f_w]
        with warnings.catch_warnings():  # the lr follows the iteration clock (OMGD: epochs), whatever n_dis;
            warnings.filterwarnings("ignore", "Detected call of `lr_scheduler.step")   # before a 1st update
            for s in self.scheds:
                s.step()
        return out

    def _update(self, it, a, b):
        """OMGD's order: D's loss and gradients, then the teachers' loss through the *same* (not yet
        stepped) D, then both steps."""
        fake_w, feats_w = self.wide.forward_features(a)
        fake_d = self.deep(a)
        loss_d = sum(0.5 * (gan_loss(self.D(torch.cat([a, f.detach()], 1), h), False, "hinge")
                            + gan_loss(self.D(torch.cat([a, b], 1), h), True, "hinge"))
                     for h, f in enumerate((fake_w, fake_d)))
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.D.requires_grad_(False)
        loss_t = sum(gan_loss(self.D(torch.cat([a, f], 1), h), True, "hinge", for_discriminator=False)
                     + self.rec * F.l1_loss(f, b) for h, f in enumerate((fake_w, fake_d)))
        check_finite(loss_t, "online teacher loss", it)
        self.opt_t.zero_grad(set_to_none=True)
        loss_t.backward()
        self.D.requires_grad_(True)
        self.opt_d.step()
        self.opt_t.step()
        return fake_w.detach(), fake_d.detach(), [f.detach().mean((2, 3)) for f in feats_w]


class _Recorder:
    """The trajectory being recorded (part of the resume state)."""

    def __init__(self, dtype: torch.dtype):
        self.dtype, self.idx, self.out_wide, self.out_deep, self.feats = dtype, [], [], [], []

    def add(self, idx, t_w, t_d, f_w):
        self.idx.append(idx)
        self.out_wide.append(t_w.to(self.dtype))
        self.out_deep.append(t_d.to(self.dtype))
        self.feats = self.feats or [[] for _ in f_w]
        for lst, f in zip(self.feats, f_w):
            lst.append(f)

    def state_dict(self) -> dict:
        return {"idx": self.idx, "out_wide": self.out_wide, "out_deep": self.out_deep, "feats": self.feats}

    def load_state_dict(self, st: dict) -> None:
        self.idx, self.out_wide, self.out_deep = list(st["idx"]), list(st["out_wide"]), list(st["out_deep"])
        self.feats = [list(f) for f in st["feats"]]


# ---- stages ------------------------------------------------------------------------------------------
def teacher(ctx) -> tuple[dict, list]:
    """Unpaired: OMGD's CycleGAN teacher (``omgd.teacher``), snapshots scored on the val split."""
    return train_teacher(ctx.section["teacher"], ctx.data, ctx.seed, ctx.scorer, ctx.resumer, desc="OMGD teacher")


def teachers(ctx, dtype: torch.dtype = torch.float16, score: bool = True) -> tuple[dict, list]:
    """Paired: train the online teachers once; return the trajectory a student replays and both teachers'
    val curves (``score=False``: none)."""
    cfg, spec, o, seed, data = ctx.cfg, ctx.spec, ctx.section, ctx.seed, ctx.data
    seed_all(seed)
    onl = OnlineTeachers(cfg, spec, seed)
    gen = torch.Generator().manual_seed(seed)
    xa, xb = data.tensor("train", "A"), data.tensor("train", "B")
    scorer = ctx.scorer() if score else None
    rec = _Recorder(dtype)

    def step(it):
        idx = data.batch_indices(gen, o["batch"])
        rec.add(idx, *onl.step(it, xa[idx], xb[idx]))

    loop = ctx.loop(f"OMGD online teachers {spec.id} seed {seed}", o["iters"], {"teachers": onl, "recorder": rec},
                    gen, eval_every=o["eval_every"],
                    score=(lambda: {"val_wide": scorer(onl.wide), "val_deep": scorer(onl.deep)}) if scorer else None)
    res = loop.run(step)
    traj = {"kind": TRAJECTORY_KIND, "task": spec.id, "seed": seed, "iters": o["iters"],
            "teacher_config_hash": teacher_config_hash(cfg, spec.id, seed), "dtype": str(dtype),
            "idx": torch.stack(rec.idx), "out_wide": torch.stack(rec.out_wide), "out_deep": torch.stack(rec.out_deep),
            "feat_means": [torch.stack(f) for f in rec.feats], "resumed_from": res.resumed_from}
    return traj, res.curve


class _Replay:
    """A recorded trajectory, checked against the student's configuration, served per iteration."""

    def __init__(self, traj: dict, cfg: dict, spec, seed: int, path):
        if not isinstance(traj, dict) or not str(traj.get("kind", "")).startswith("omgd-online-teachers/"):
            raise ValueError(f"{path} is not an OMGD online-teacher trajectory")
        if traj["kind"] != TRAJECTORY_KIND:
            raise ValueError(f"trajectory {path} was recorded by another version of OMGD's teachers "
                             f"({traj['kind']}, this code replays {TRAJECTORY_KIND}); re-record it")
        want = teacher_config_hash(cfg, spec.id, seed)
        if traj["teacher_config_hash"] != want:
            raise ValueError(f"trajectory {path} was recorded for another task/seed/teacher config "
                             f"(hash {traj['teacher_config_hash']}, this run needs {want}); re-record it")
        self.t = traj

    def channels(self) -> list[int]:
        return [f.shape[-1] for f in self.t["feat_means"]]

    def step(self, it: int):
        i = it - 1
        return (self.t["idx"][i], self.t["out_wide"][i].float(), self.t["out_deep"][i].float(),
                [f[i] for f in self.t["feat_means"]])


def distill(ctx) -> tuple[dict, list]:
    """The student, with the add-on."""
    cfg, spec, o, seed, data = ctx.cfg, ctx.spec, ctx.section, ctx.seed, ctx.data
    seed_all(seed)
    paired = spec.kind == "paired"
    base = cfg["teachers"]["original"] if paired else o["teacher"]
    student_rec = from_config(base, spec.in_channels, spec.out_channels, ngf=o["student_ngf"])
    student = init_weights(build(student_rec), o["init"])
    perceptual = ctx.perceptual()
    scorer = ctx.scorer()
    online = replay = wide = teacher_ck = None
    if paired:
        if "teachers" in ctx.stage.needs:
            replay = _Replay(ctx.load("teachers"), cfg, spec, seed, ctx.inputs["teachers"])
            t_ch = replay.channels()
        else:
            online = OnlineTeachers(cfg, spec, seed)
            t_ch = _feature_channels(online.wide, spec.in_channels, spec.size)
        total = o["iters"]
    else:
        teacher_ck = ctx.load("teacher")
        wide = load_generator(teacher_ck)
        wide.eval().requires_grad_(False)
        per_phase = o["n_dis"] * o["teacher"]["snapshot_every"]
        total = len(teacher_ck["snapshots"]) * per_phase
        t_ch = _feature_channels(wide, spec.in_channels, spec.size)
    s_ch = _feature_channels(student, spec.in_channels, spec.size)
    cd_adapters = adapters(s_ch, t_ch, o["init"])
    addon = ctx.build_addon(spec.out_channels, ctx.image_size, data.n("train", "A"))
    params = list(student.parameters()) + list(cd_adapters.parameters())
    opt_s = torch.optim.Adam(params + addon.student_parameters(), lr=o["lr"], betas=(0.5, 0.999))
    sched_s = linear_decay(opt_s, total, o["decay_from"])
    gen = torch.Generator().manual_seed(seed)

    def loss_distill(s, s_feats, t_outs, t_feat_means):
        """OMGD's student loss; ``t_feat_means`` are the wide teacher's channel means (B, C_k). A term whose
        weight is 0 is not computed (the positive control's 'nodistill' arm); with every weight > 0 the sum is
        formed in the same order as before, term by term."""
        perceptual_terms = o["lambda_style"] > 0 or o["lambda_feature"] > 0
        ps = perceptual.taps(s) if perceptual_terms else None
        loss = s.new_zeros(())
        for t in t_outs:
            pt = perceptual.taps(t) if perceptual_terms else None
            if o["lambda_ssim"] > 0:
                sim = ssim((s + 1) / 2, (t + 1) / 2) if o["ssim_unit_range"] else ssim(s, t)
                loss = loss + o["lambda_ssim"] * (1 - sim)
            if o["lambda_style"] > 0:
                loss = loss + o["lambda_style"] * style_loss(ps, pt)
            if o["lambda_feature"] > 0:
                loss = loss + o["lambda_feature"] * F.l1_loss(ps[1], pt[1].detach())
            if o["lambda_tv"] > 0:
                loss = loss + o["lambda_tv"] * tv_loss(s)
        if o["lambda_cd"] > 0:
            cd = sum(F.mse_loss(ad(fs).mean((2, 3)), ft.detach())
                     for ad, fs, ft in zip(cd_adapters, s_feats, t_feat_means))
            loss = loss + o["lambda_cd"] * cd
        return loss

    def student_step(it, a, idx, t_outs, t_feat_means, positive):
        s, s_feats = student.forward_features(a)
        loss = loss_distill(s, s_feats, t_outs, t_feat_means)
        mi, stats = ctx.mi_term(addon, positive, s, idx, it, loss, student.parameters())
        total_loss = loss + mi
        check_finite(total_loss, "student loss", it)
        opt_s.zero_grad(set_to_none=True)
        if total_loss.requires_grad:        # no term at all (the positive control's baseline): no update
            total_loss.backward()
        opt_s.step()
        sched_s.step()
        stats.update(distill_loss=loss.item(), mi_loss=float(mi.detach()))
        return stats

    xa = data.tensor("train", "A")
    xb = data.tensor("train", "B") if paired else None
    phase = {"loaded": None}   # the unpaired teacher snapshot in use (not resume state: reloaded on resume)

    def best_snapshot(k: int) -> dict:
        """The teacher of unpaired phase ``k``: the best snapshot so far on the val split."""
        best = None
        for snap in teacher_ck["snapshots"][:k + 1]:
            if best is None or scorer.better(snap["val"], best["val"]):
                best = snap
        return best

    def step(it):
        if paired:
            if replay is not None:
                idx, t_w, t_d, f_w = replay.step(it)
                a, b = xa[idx], xb[idx]
            else:
                idx = data.batch_indices(gen, o["batch"])
                a, b = xa[idx], xb[idx]
                t_w, t_d, f_w = online.step(it, a, b)
            positive = b if cfg["addon"]["positive"] == "gt" else t_w
            return student_step(it, a, idx, [t_w, t_d], f_w, positive)
        k = (it - 1) // per_phase
        if phase["loaded"] != k:
            wide.load_state_dict(best_snapshot(k)["state_dict"])
            phase["loaded"] = k
        idx = data.batch_indices(gen, o["batch"])
        a = xa[idx]
        with torch.no_grad():
            t_out, t_feats = wide.forward_features(a)
        return student_step(it, a, idx, [t_out], [f.mean((2, 3)) for f in t_feats], t_out)

    state = {"student": student, "adapters": cd_adapters, "opt_s": opt_s, "sched_s": sched_s, "addon": addon}
    if online is not None:
        state["teachers"] = online
    loop = ctx.loop(f"OMGD+{ctx.addon} {spec.id} seed {seed}", total, state, gen, eval_every=o["eval_every"],
                    score=lambda: {"val": scorer(student)},
                    snapshot=snapshot_weights(state_dict=student) if ctx.keep_snapshots else None)
    res = loop.run(step)
    ck = {"generator": student_rec, "state_dict": student.state_dict(), "iters": total,
          "teachers": "replayed trajectory" if replay is not None else ("online" if paired else "CycleGAN teacher"),
          "resumed_from": res.resumed_from}
    if ctx.keep_snapshots:
        ck["snapshots"] = res.snapshots
    return ck, res.curve
