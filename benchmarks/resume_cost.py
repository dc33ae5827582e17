"""Cost of resuming: one OMGD distill job run straight through vs the same job interrupted by SIGTERM at
about half-way and re-run (it resumes). Needs the default run's outputs (resources/data, results/).

    python benchmarks/resume_cost.py [--task fmnist_edges2shoes] [--addon vem] [--every 100]

Prints one JSON object: wall seconds of both, the time lost per interruption, the checkpoint saves'
count and cost, and whether the final weights are identical.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--task", default="fmnist_edges2shoes")
    ap.add_argument("--addon", default="vem")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--every", type=int, default=100)
    args = ap.parse_args()
    evalnet = "segmenter" if args.task == "fmnist_scenes" else "feature"
    traj = ROOT / f"results/runs/{args.task}/omgd/shared/seed{args.seed}/teachers.pt"
    tmp = Path(tempfile.mkdtemp(prefix="resume-cost-"))

    def cmd(out):
        c = [sys.executable, "-m", "vem", "stage", "--task", args.task, "--method", "omgd", "--addon", args.addon,
             "--seed", str(args.seed), "--data", str(ROOT / f"resources/data/{args.task}.npz"),
             "--input", f"perceptual={ROOT / 'results/evalnets/perceptual.pt'}",
             "--evalnet", str(ROOT / f"results/evalnets/{evalnet}.pt"), "--threads", "1",
             "--checkpoint-every", str(args.every), "--out", str(out / "student.pt"), "--table", str(out / "c.csv")]
        return c + (["--input", f"teachers={traj}"] if traj.is_file() else ["--set", "omgd.share_teachers=false"])

    t0 = time.time()
    subprocess.run(cmd(tmp / "a"), check=True, capture_output=True)
    straight = time.time() - t0
    ck_a = torch.load(tmp / "a/student.pt", weights_only=True)
    t0 = time.time()
    p = subprocess.Popen(cmd(tmp / "b"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(straight / 2)
    p.send_signal(signal.SIGTERM)
    p.wait()
    subprocess.run(cmd(tmp / "b"), check=True, capture_output=True)
    interrupted = time.time() - t0
    ck_b = torch.load(tmp / "b/student.pt", weights_only=True)
    same = all(torch.equal(ck_a["state_dict"][k], v) for k, v in ck_b["state_dict"].items())
    print(json.dumps({
        "task": args.task, "addon": args.addon, "iters": ck_a["iters"], "checkpoint_every": args.every,
        "straight_seconds": round(straight, 1), "interrupted_and_resumed_seconds": round(interrupted, 1),
        "lost_per_interruption_seconds": round(interrupted - straight, 1), "sigterm_exit_status": p.returncode,
        "resumed_from_iter": ck_b["resumed_from"], "saves_straight": ck_a["resume_saves"],
        "identical_weights": same}))


if __name__ == "__main__":
    main()
