"""Measured CPU latency of the paper's Originals and compressed students at their paper resolution (batch 1),
each pair timed interleaved in one process (vem.metrics.latency), beside the MACs ratio.

    python benchmarks/paper_latency.py [--runs 5] [--threads 1] [--backends eager torchscript onnx] [--out F.csv]

Random weights: latency does not depend on their values. Pairs (Original -> student, as the paper's tables):
pix2pix unet_256 ngf 64 -> OMGD's unet_256 ngf 16 (Table 1); CycleGAN resnet_9blocks ngf 64 -> OMGD's
mobile_resnet_9blocks ngf 16 (Table 2) and GAN-Compression's searched 16_16_24_16_32_64_16_24 (Table 4);
StyleGAN2-256 -> CAGC's 70 %-pruned widths (Table 3). CAT's and GCC's students are the outcome of their pruning
(their released widths are not known here) and are left out.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def pairs():
    from vem.metrics.slimmable import parse_config
    from vem.models import build, record
    from vem.models.stylegan2 import default_net_shape

    full = default_net_shape(256)
    cagc = [n - int(0.7 * n) for n in full]
    unet = lambda ngf: record("unet", in_nc=3, out_nc=3, ngf=ngf, num_downs=8, norm="batch")  # noqa: E731
    yield "Table 1: pix2pix -> OMGD", build(unet(64)), build(unet(16)), 3, 256
    resnet = build(record("resnet", in_nc=3, out_nc=3, ngf=64, n_blocks=9, norm="instance"))
    yield "Table 2: CycleGAN -> OMGD", resnet, build(record("mobile_resnet", in_nc=3, out_nc=3, ngf=16,
                                                           n_blocks=9, norm="instance")), 3, 256
    yield "Table 4: CycleGAN -> GAN-Compression 16_16_24_16_32_64_16_24", resnet, build(record(
        "slimmable_mobile_resnet", in_nc=3, out_nc=3, n_blocks=9, channels=parse_config("16_16_24_16_32_64_16_24"))), \
        3, 256
    yield "Table 3: StyleGAN2-256 -> CAGC (70 % pruned)", build(record("stylegan2", image_size=256)), \
        build(record("stylegan2", image_size=256, net_shape=cagc)), 512, 1


def main(argv=None) -> int:
    from vem.metrics.latency import latency

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--backends", nargs="+", default=["eager", "torchscript", "onnx"])
    p.add_argument("--out", default=None, help="CSV (default: print)")
    a = p.parse_args(argv)
    rows = []
    for name, original, student, in_nc, size in pairs():
        with torch.no_grad():
            r = latency(student, in_nc, size, original=original, runs=a.runs, warmup=a.warmup, threads=a.threads,
                        backends=a.backends)
        row = {"pair": name, "macs_original": int(r["original_macs"]), "macs_student": int(r["macs"]),
               "macs_ratio": r["macs_ratio"]}
        for b in a.backends:
            row.update({f"{b}_original_ms": r.get(f"original_{b}_ms"), f"{b}_student_ms": r.get(f"{b}_ms"),
                        f"speedup_{b}": r.get(f"speedup_{b}")})
        row.update(threads=r["threads"], runs=r["runs"], cpu=r["cpu"], torch=r["torch"],
                   exports=f"torchscript {r.get('torchscript', '-')}, onnx {r.get('onnx', '-')}")
        rows.append(row)
        print(row, flush=True)
    if a.out:
        with open(a.out, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
