"""Cost of each MI add-on: iteration time with the add-on / without, measured alternately in one process.

    python benchmarks/addon_overhead.py [--iters 20] [--paper-iters 2] [--out benchmarks/addon_overhead.json]

Mini scale: a full OMGD iteration (online teachers, discriminator, distillation) on fmnist_edges2shoes and
on fmnist_sneaker2boot (needs the default workflow's outputs: resources/data, results/evalnets, the
sneaker2boot OMGD teacher). Paper scale: one 256x256 student iteration (unet_256 ngf16 student, unet_256
ngf64 teacher forward, L1 distillation) with the reference-size energy net (width 32, 7 blocks), batch 1.
Also reports the share of the VEM iteration spent in the energy model (Langevin + EBM step + term).
CPU timings are noisy: variants are interleaved and medians reported.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ADDONS = ["none", "vid", "crd", "vem"]


def _mini(task, iters, teacher=None):
    from baselines.omgd import OMGD
    from vem.config import resolve
    from vem.train import TaskData

    data = TaskData(f"resources/data/{task}.npz", task)
    cfg = resolve(task, {"omgd.eval_every": 10**6})
    methods = {a: OMGD(cfg, data, a, 0, "results/evalnets/perceptual.pt", "results/evalnets/feature.pt", teacher)
               for a in ADDONS}
    xa, xb = data.tensor("train", "A"), data.tensor("train", "B")
    times = {a: [] for a in ADDONS}
    ebm = []
    for it in range(1, iters + 1):
        idx = data.batch_indices(torch.Generator().manual_seed(it), cfg["omgd"]["batch"])
        a_, b_ = xa[idx], xb[idx]
        for name, m in methods.items():
            t0 = time.perf_counter()
            if data.spec.kind == "paired":
                t_w, t_d, f_w = m._teacher_step(it, a_, b_)
                pos, touts = b_, [t_w, t_d]
            else:
                with torch.no_grad():
                    t_w, f_w = m.wide.forward_features(a_)
                pos, touts = t_w, [t_w]
            s, sf = m.student.forward_features(a_)
            t1 = time.perf_counter()
            m.addon.fit_step(pos, s.detach(), idx)
            mi = m.addon.loss(pos, s, idx)
            t2 = time.perf_counter()
            loss = m._distill(s, sf, touts, f_w) + mi
            m.opt_s.zero_grad()
            loss.backward()
            m.opt_s.step()
            times[name].append(time.perf_counter() - t0)
            if name == "vem":
                ebm.append((t2 - t1) / times[name][-1])
    med = {a: statistics.median(v[2:]) for a, v in times.items()}
    return {"ms_per_iter": {a: 1e3 * v for a, v in med.items()},
            "ratio_vs_none": {a: med[a] / med["none"] for a in ADDONS},
            "vem_energy_share": statistics.median(ebm[2:])}


def _paper(iters):
    from vem.mi import build_addon
    from vem.models import build_generator

    torch.manual_seed(0)
    student = build_generator("unet_256", 3, 3, 16)
    teacher = build_generator("unet_256", 3, 3, 64).eval().requires_grad_(False)
    addons = {"none": build_addon("none"),
              "vid": build_addon("vid", channels=3),
              "crd": build_addon("crd", channels=3, n_data=1000, nce_k=512),
              "vem": build_addon("vem", channels=3, image_size=256, width=32)}
    opt = {a: torch.optim.Adam(list(student.parameters()) + ad.student_parameters(), lr=1e-4)
           for a, ad in addons.items()}
    times = {a: [] for a in ADDONS}
    x = torch.randn(1, 3, 256, 256)
    idx = torch.tensor([0])
    for _ in range(iters + 1):
        for a, ad in addons.items():
            t0 = time.perf_counter()
            with torch.no_grad():
                t = teacher(x)
            s = student(x)
            ad.fit_step(t, s.detach(), idx)
            loss = F.l1_loss(s, t) + ad.loss(t, s, idx)
            opt[a].zero_grad()
            loss.backward()
            opt[a].step()
            times[a].append(time.perf_counter() - t0)
    med = {a: statistics.median(v[1:]) for a, v in times.items()}
    return {"ms_per_iter": {a: 1e3 * v for a, v in med.items()},
            "ratio_vs_none": {a: med[a] / med["none"] for a in ADDONS}}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--paper-iters", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="benchmarks/addon_overhead.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    res = {"threads": args.threads,
           "mini_paired_fmnist_edges2shoes": _mini("fmnist_edges2shoes", args.iters),
           "mini_unpaired_fmnist_sneaker2boot": _mini("fmnist_sneaker2boot", args.iters,
                                                      "results/teachers/fmnist_sneaker2boot/omgd/generator.pt"),
           "paper_256_student_step": _paper(args.paper_iters)}
    Path(args.out).write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
