"""VEM on a non-GAN dense-prediction student: distil a small Fashion-MNIST denoiser from a bigger one.

    python examples/denoiser_vem.py [--iters 300] [--lambda-mi 0.1]

The teacher is a 4-layer CNN trained first; the student (4x narrower) is trained with L1 to the
teacher output (the "algorithm-specific" loss) plus the VEM term. The glue VEM needs is marked.
Prints test PSNR (against clean images) of teacher, student and student + VEM.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch import nn

from vem.data import fmnist
from vem.mi import build_addon


def cnn(width):
    return nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, width, 3, padding=1),
                         nn.ReLU(), nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(width, 1, 3, padding=1), nn.Tanh())


def psnr(x, y):
    return float(10 * torch.log10(4.0 / F.mse_loss(x, y)))


def train(model, data, iters, target_fn, addon=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    params = list(model.parameters()) + (addon.student_parameters() if addon else [])  # VEM glue
    opt = torch.optim.Adam(params, lr=2e-3)
    for _ in range(iters):
        clean = data[torch.randint(0, len(data), (32,), generator=g)]
        noisy = (clean + 0.3 * torch.randn(clean.shape, generator=g)).clamp(-1, 1)
        s = model(noisy)
        t = target_fn(noisy, clean)
        loss = F.l1_loss(s, t)
        if addon is not None:                          # VEM glue: 2 lines
            addon.fit_step(t, s.detach())
            loss = loss + addon.loss(t, s)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iters", type=int, default=300)
    ap.add_argument("--lambda-mi", type=float, default=0.1)
    args = ap.parse_args()
    torch.manual_seed(0)
    fm = fmnist.load()
    tr = torch.from_numpy(fm["train_images"][:20000]).float().unsqueeze(1) / 127.5 - 1
    te = torch.from_numpy(fm["test_images"][:1000]).float().unsqueeze(1) / 127.5 - 1
    noisy_te = (te + 0.3 * torch.randn(te.shape, generator=torch.Generator().manual_seed(1))).clamp(-1, 1)
    teacher = train(cnn(32), tr, args.iters, lambda noisy, clean: clean).eval().requires_grad_(False)
    kd = lambda noisy, clean: teacher(noisy)  # noqa: E731
    torch.manual_seed(1)
    student = train(cnn(8), tr, args.iters, kd)
    torch.manual_seed(1)
    vem = build_addon("vem", channels=1, image_size=28, width=8, n_blocks=2, lambda_mi=args.lambda_mi)  # VEM glue
    student_vem = train(cnn(8), tr, args.iters, kd, addon=vem)
    with torch.no_grad():
        for name, m in (("teacher", teacher), ("student (L1 to teacher)", student),
                        ("student + VEM", student_vem)):
            print(f"{name:24s} test PSNR {psnr(m.eval()(noisy_te), te):.2f} dB")


if __name__ == "__main__":
    main()
