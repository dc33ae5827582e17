"""OMGD: Online Multi-Granularity Distillation (Ren et al., ICCV 2021), as in bytedance/OMGD.

Paired (pix2pix) tasks: a wide teacher (student architecture, 4x width) and a deep teacher (student
width, extra residual bottlenecks) are trained *online* from scratch with the GAN loss + L1 x lambda_rec
to the ground truth, against one discriminator whose first ``n_share`` blocks both share; they are
updated every ``n_dis`` student iterations. Unpaired (CycleGAN) tasks: one teacher (a trained CycleGAN,
``teachers.omgd``) with periodic student phases: after every teacher snapshot the best snapshot so far
(by the val-split metric) teaches the student for ``n_dis x snapshot_every`` iterations.

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
no ground-truth loss. Nothing in this module is specific to an add-on: they enter through the
``vem.mi`` protocol only.

Shared online teachers. The paired teachers never see the student: their trajectory (weights, outputs,
batches) depends only on the task, the teacher configuration and the seed. :func:`record_trajectory`
therefore trains them once per (task, seed) and stores, per student iteration, the batch indices, both
teachers' outputs and the wide teacher's channel-mean features (all a student needs); every add-on's
student then replays it (``trajectory=``) instead of retraining the teachers. Teacher initialisation
draws from its own RNG stream, so a replayed student is the student the online loop trains (a test
checks equality with a float32 trajectory; float16 storage perturbs the targets by < 1e-3).
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn

from vem.config import addon_kwargs
from vem.losses import gan_loss, ssim, style_loss, tv_loss
from vem.mi import build_addon
from vem.mi.base import NonFiniteError
from vem.models import MultiNLayerDiscriminator, build_generator
from vem.models.evalnets import load_perceptual
from vem.resume import load_objects_state, objects_state, rng_state, set_rng_state
from vem.teachers import generator_kwargs, load_generator
from vem.train import TaskData, ValScorer, check_finite, linear_decay
from vem.utils import config_hash, load_checkpoint, progress, seed_all

TEACHER_SEED_OFFSET = 7919  # teachers' init stream: seed + offset, independent of the student's
# omgd keys that shape the online teachers' trajectory (the rest only affect the student)
TEACHER_KEYS = ("wide_ngf", "deep_ngf", "deep_block", "iters", "batch", "lr", "decay_from", "n_dis", "n_share", "ndf",
                "n_layers_d")


def _adapter(c_in: int, c_out: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())


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

    ``step(it, a, b)`` returns what the student needs at iteration ``it``: both teachers' outputs and the
    wide teacher's channel-mean features. Every ``n_dis``-th iteration is a teacher update (the outputs are
    those of the forward pass before the update); otherwise a no-grad forward pass in train mode.
    """

    def __init__(self, cfg: dict, spec, seed: int):
        o, base = cfg["omgd"], cfg["teachers"]["original"]
        self.o, self.rec = o, base["lambda_rec"]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + TEACHER_SEED_OFFSET)
            self.wide = build_generator(**generator_kwargs(base, spec, ngf=o["wide_ngf"]))
            deep_arch = "unet_deepest" if base["arch"].startswith("unet") else "mobile_deepest_resnet"
            self.deep = build_generator(**generator_kwargs(base, spec, ngf=o["deep_ngf"], arch=deep_arch),
                                        deep_block=o.get("deep_block", "expansion"))
            self.D = MultiNLayerDiscriminator(spec.in_channels + spec.out_channels, o["ndf"], o["n_layers_d"],
                                              "batch", o["n_share"], n_heads=2)
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
        if (it - 1) % self.o["n_dis"] == 0:
            out = self._update(it, a, b)
            for s in self.scheds:
                s.step()
            return out
        with torch.no_grad():
            t_w, f_w = self.wide.forward_features(a)
            return t_w, self.deep(a), [f.mean((2, 3)) for f in f_w]

    def _update(self, it, a, b):
        fake_w, feats_w = self.wide.forward_features(a)
        fake_d = self.deep(a)
        loss_d = sum(0.5 * (gan_loss(self.D(torch.cat([a, f.detach()], 1), h), False, "hinge")
                            + gan_loss(self.D(torch.cat([a, b], 1), h), True, "hinge"))
                     for h, f in enumerate((fake_w, fake_d)))
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d.step()
        self.D.requires_grad_(False)
        loss_t = sum(gan_loss(self.D(torch.cat([a, f], 1), h), True, "hinge", for_discriminator=False)
                     + self.rec * F.l1_loss(f, b) for h, f in enumerate((fake_w, fake_d)))
        check_finite(loss_t, "online teacher loss", it)
        self.opt_t.zero_grad(set_to_none=True)
        loss_t.backward()
        self.opt_t.step()
        self.D.requires_grad_(True)
        return fake_w.detach(), fake_d.detach(), [f.detach().mean((2, 3)) for f in feats_w]


def record_trajectory(cfg: dict, data: TaskData, seed: int, evalnet_path=None,
                      dtype: torch.dtype = torch.float16, resumer=None) -> tuple[dict, list]:
    """Train the paired online teachers once; return the trajectory a student replays and the wide
    teacher's val curve (``evalnet_path`` None: no curve). ``resumer``: see vem.resume."""
    spec, o = data.spec, cfg["omgd"]
    if spec.kind != "paired":
        raise ValueError(f"online-teacher trajectories are for paired tasks; {spec.id} is {spec.kind}")
    if o["iters"] < 1:
        raise ValueError(f"omgd.iters must be >= 1 for a paired task, got {o['iters']}")
    teachers = OnlineTeachers(cfg, spec, seed)
    gen = torch.Generator().manual_seed(seed)
    xa, xb = data.tensor("train", "A"), data.tensor("train", "B")
    scorer = ValScorer(data, evalnet_path) if evalnet_path else None
    idx_all, outs_w, outs_d, feats, curve, t0 = [], [], [], None, [], time.time()
    start = 0
    saved = resumer.load() if resumer is not None else None
    if saved is not None:
        teachers.load_state_dict(saved["teachers"])
        set_rng_state(saved["rng"], gen)
        idx_all, outs_w, outs_d = list(saved["idx"]), list(saved["out_wide"]), list(saved["out_deep"])
        feats, curve, start = [list(f) for f in saved["feats"]] or None, list(saved["curve"]), int(saved["iter"])

    def state():
        return {"teachers": teachers.state_dict(), "rng": rng_state(gen), "idx": idx_all, "out_wide": outs_w,
                "out_deep": outs_d, "feats": feats or [], "curve": curve}

    for it in progress(range(start + 1, o["iters"] + 1), f"OMGD online teachers {spec.id} seed {seed}",
                       initial=start, total=o["iters"]):
        idx = data.batch_indices(gen, o["batch"])
        t_w, t_d, f_w = teachers.step(it, xa[idx], xb[idx])
        idx_all.append(idx)
        outs_w.append(t_w.to(dtype))
        outs_d.append(t_d.to(dtype))
        feats = [[] for _ in f_w] if feats is None else feats
        for lst, f in zip(feats, f_w):
            lst.append(f)
        if scorer and (it % o["eval_every"] == 0 or it == o["iters"]):
            curve.append({"iter": it, "val_wide": scorer(teachers.wide), "val_deep": scorer(teachers.deep),
                          "seconds": time.time() - t0})
        if resumer is not None:
            resumer.tick(it, state)
    traj = {"kind": "omgd-online-teachers/1", "task": spec.id, "seed": seed, "iters": o["iters"],
            "teacher_config_hash": teacher_config_hash(cfg, spec.id, seed), "dtype": str(dtype),
            "idx": torch.stack(idx_all), "out_wide": torch.stack(outs_w), "out_deep": torch.stack(outs_d),
            "feat_means": [torch.stack(f) for f in feats]}
    return traj, curve


class _Replay:
    """A recorded trajectory, checked against the student's configuration, served per iteration."""

    def __init__(self, traj: dict, cfg: dict, spec, seed: int, path):
        if not isinstance(traj, dict) or traj.get("kind") != "omgd-online-teachers/1":
            raise ValueError(f"{path} is not an OMGD online-teacher trajectory")
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


class OMGD:
    name = "omgd"

    def __init__(self, cfg: dict, data: TaskData, addon: str, seed: int, perceptual_path, evalnet_path,
                 teacher_path=None, lambda_mi: float | None = None, trajectory=None):
        seed_all(seed)
        self.cfg, self.o, self.data, self.spec, self.seed = cfg, cfg["omgd"], data, data.spec, seed
        spec, o = self.spec, self.o
        base = cfg["teachers"]["original"] if spec.kind == "paired" else cfg["teachers"]["omgd"]
        self.student_kwargs = generator_kwargs(base, spec, ngf=o["student_ngf"])
        self.student = build_generator(**self.student_kwargs)
        self.perceptual = load_perceptual(perceptual_path, spec.scale)
        self.scorer = ValScorer(data, evalnet_path)
        self.teachers = self.replay = None
        if spec.kind == "paired":
            if o["iters"] < 1:
                raise ValueError(f"omgd.iters must be >= 1 for a paired task, got {o['iters']}")
            if trajectory is not None:
                self.replay = _Replay(load_checkpoint(trajectory), cfg, spec, seed, trajectory)
                t_ch = self.replay.channels()
            else:
                self.teachers = OnlineTeachers(cfg, spec, seed)
                t_ch = _feature_channels(self.teachers.wide, spec.in_channels, spec.size)
            self.total = o["iters"]
        else:
            if teacher_path is None:
                raise ValueError("OMGD on an unpaired task needs the trained CycleGAN teacher (teachers.omgd)")
            self.teacher_ck = load_checkpoint(teacher_path)
            self.wide = load_generator(self.teacher_ck)
            self.wide.eval().requires_grad_(False)
            snaps = self.teacher_ck["snapshots"]
            self.total = len(snaps) * o["n_dis"] * cfg["teachers"]["omgd"]["snapshot_every"]
            t_ch = _feature_channels(self.wide, spec.in_channels, spec.size)
        s_ch = _feature_channels(self.student, spec.in_channels, spec.size)
        self.adapters = nn.ModuleList([_adapter(a, b) for a, b in zip(s_ch, t_ch)])
        n_data = data.n("train", "A")
        self.addon_name = addon
        self.addon = build_addon(addon, channels=spec.out_channels, t_channels=spec.out_channels,
                                 image_size=spec.size, n_data=n_data, **addon_kwargs(cfg, addon, lambda_mi))
        params = list(self.student.parameters()) + list(self.adapters.parameters())
        self.opt_s = torch.optim.Adam(params + self.addon.student_parameters(), lr=o["lr"], betas=(0.5, 0.999))
        self.sched_s = linear_decay(self.opt_s, self.total, o["decay_from"])
        self.gen = torch.Generator().manual_seed(seed)

    # ----------------------------------------------------------------------------------------------
    def _distill(self, s, s_feats, t_outs, t_feat_means):
        """OMGD's student loss; ``t_feat_means`` are the wide teacher's channel means (B, C_k)."""
        o = self.o
        ps = self.perceptual.taps(s)
        loss = s.new_zeros(())
        for t in t_outs:
            pt = self.perceptual.taps(t)
            sim = ssim((s + 1) / 2, (t + 1) / 2) if o["ssim_unit_range"] else ssim(s, t)
            loss = loss + o["lambda_ssim"] * (1 - sim) + o["lambda_style"] * style_loss(ps, pt)
            loss = loss + o["lambda_feature"] * F.l1_loss(ps[1], pt[1].detach()) + o["lambda_tv"] * tv_loss(s)
        if o["lambda_cd"] > 0:
            cd = sum(F.mse_loss(ad(fs).mean((2, 3)), ft.detach())
                     for ad, fs, ft in zip(self.adapters, s_feats, t_feat_means))
            loss = loss + o["lambda_cd"] * cd
        return loss

    def _student_step(self, it, a, idx, t_outs, t_feat_means, positive):
        s, s_feats = self.student.forward_features(a)
        try:
            stats = self.addon.fit_step(positive, s.detach(), idx)
            loss = self._distill(s, s_feats, t_outs, t_feat_means)
            mi = self.addon.loss(positive, s, idx)
        except NonFiniteError as e:
            raise NonFiniteError(f"{e} (at student iteration {it}; the run is stopped, no metrics are "
                                 "written)") from None
        total = loss + mi
        check_finite(total, "student loss", it)
        self.opt_s.zero_grad(set_to_none=True)
        total.backward()
        self.opt_s.step()
        self.sched_s.step()
        stats.update(distill_loss=loss.item(), mi_loss=float(mi.detach()))
        return stats

    # ----------------------------------------------------------------------------------------------
    def _objects(self) -> dict:
        objs = {"student": self.student, "adapters": self.adapters, "opt_s": self.opt_s, "sched_s": self.sched_s,
                "addon": self.addon}
        if self.teachers is not None:
            objs["teachers"] = self.teachers
        return objs

    def state_dict(self, curve: list, agg: dict, snapshots: list) -> dict:
        """Everything a resumed run needs to continue exactly (see vem.resume)."""
        return dict(objects_state(self._objects()), rng=rng_state(self.gen), curve=list(curve),
                    agg={k: list(v) for k, v in agg.items()}, snapshots=list(snapshots))

    def load_state_dict(self, st: dict) -> tuple[list, dict, list]:
        load_objects_state(self._objects(), st)
        set_rng_state(st["rng"], self.gen)
        return list(st["curve"]), {k: tuple(v) for k, v in st["agg"].items()}, list(st["snapshots"])

    def _best_snapshot(self, phase: int) -> dict:
        """The teacher of unpaired phase ``phase``: the best snapshot so far on the val split."""
        best = None
        for snap in self.teacher_ck["snapshots"][:phase + 1]:
            if best is None or self.scorer.better(snap["val"], best["val"]):
                best = snap
        return best

    # ----------------------------------------------------------------------------------------------
    def run(self, resumer=None, keep_snapshots: bool = False) -> tuple[dict, list]:
        """Train the student; ``resumer`` (vem.resume.Resumer) continues a saved run and saves this one.
        ``keep_snapshots``: keep the student at every curve point (for best-during-training selection)."""
        curve, agg, start, snapshots = [], {}, 0, []
        saved = resumer.load() if resumer is not None else None
        if saved is not None:
            curve, agg, snapshots = self.load_state_dict(saved)
            start = int(saved["iter"])
        t0 = time.time() - (curve[-1]["seconds"] if curve else 0.0)
        every = self.o["eval_every"]

        def log_point(it):
            row = {"iter": it, "val": self.scorer(self.student), "seconds": time.time() - t0}
            row.update({k: v / n for k, (v, n) in agg.items()})
            curve.append(row)
            agg.clear()
            if keep_snapshots:
                weights = {k: v.clone() for k, v in self.student.state_dict().items()}
                snapshots.append({"iter": it, "state_dict": weights})

        def accumulate(stats):
            for k, v in stats.items():
                s, n = agg.get(k, (0.0, 0))
                agg[k] = (s + float(v), n + 1)

        paired = self.spec.kind == "paired"
        xa = self.data.tensor("train", "A")
        xb = self.data.tensor("train", "B") if paired else None
        per_phase = 0 if paired else self.o["n_dis"] * self.cfg["teachers"]["omgd"]["snapshot_every"]
        desc = f"OMGD+{self.addon_name} {self.spec.id} seed {self.seed}"
        for it in progress(range(start + 1, self.total + 1), desc, initial=start, total=self.total):
            if paired:
                if self.replay is not None:
                    idx, t_w, t_d, f_w = self.replay.step(it)
                    a, b = xa[idx], xb[idx]
                else:
                    idx = self.data.batch_indices(self.gen, self.o["batch"])
                    a, b = xa[idx], xb[idx]
                    t_w, t_d, f_w = self.teachers.step(it, a, b)
                positive = b if self.cfg["addon"]["positive"] == "gt" else t_w
                accumulate(self._student_step(it, a, idx, [t_w, t_d], f_w, positive))
            else:
                if it == start + 1 or (it - 1) % per_phase == 0:
                    self.wide.load_state_dict(self._best_snapshot((it - 1) // per_phase)["state_dict"])
                idx = self.data.batch_indices(self.gen, self.o["batch"])
                a = xa[idx]
                with torch.no_grad():
                    t_out, t_feats = self.wide.forward_features(a)
                accumulate(self._student_step(it, a, idx, [t_out], [f.mean((2, 3)) for f in t_feats], t_out))
            if it % every == 0 or it == self.total:
                log_point(it)
            if resumer is not None:
                resumer.tick(it, lambda: self.state_dict(curve, agg, snapshots))
        ck = {"generator": self.student_kwargs, "state_dict": self.student.state_dict(),
              "addon": self.addon_name, "iters": self.total,
              "teachers": "replayed trajectory" if self.replay is not None else "online",
              "resumed_from": start}
        if keep_snapshots:
            ck["snapshots"] = snapshots
        return ck, curve
