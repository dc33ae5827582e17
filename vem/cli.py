"""Command line: ``python -m vem <command> --help``. Every workflow rule is one of these commands.

Errors in input (unknown ids, bad config values, missing or corrupt files, non-finite training) end
the command with one line ``vem: error: ...`` and exit status 2; set ``VEM_DEBUG=1`` for a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def _overrides(args) -> dict:
    ov = json.loads(args.overrides) if getattr(args, "overrides", None) else {}
    if not isinstance(ov, dict):
        raise ValueError(f"--overrides must be a JSON object, got {args.overrides!r}")
    import yaml

    for item in getattr(args, "set", None) or []:
        if "=" not in item:
            raise ValueError(f"--set expects key=value, got {item!r}")
        k, v = item.split("=", 1)
        val = yaml.safe_load(v)
        if isinstance(val, str):  # YAML 1.1 reads "1e38" as a string; a number was meant
            try:
                val = float(val)
            except ValueError:
                pass
        ov[k] = val
    return ov


def _cfg(args):
    from .config import resolve

    return resolve(args.task, _overrides(args))


def _threads(args):
    import torch

    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)


def _device(args):
    """--device auto|cpu|cuda: the default device for models and batches. auto = cuda for paper-scale tasks
    when a GPU is visible; mini tasks always run on CPU (their determinism guarantee is a CPU one)."""
    import torch

    from .data.tasks import get_task

    want = getattr(args, "device", None) or "auto"
    if want not in ("auto", "cpu", "cuda"):
        raise ValueError(f"--device must be auto, cpu or cuda, got {want!r}")
    paper = get_task(args.task).scale == "paper"
    if want == "cuda" and not paper:
        raise ValueError(f"--device cuda: the mini task {args.task} runs on CPU only")
    if want == "auto":
        want = "cuda" if paper and torch.cuda.is_available() else "cpu"
    if want == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda, but no CUDA device is visible")
    if want == "cuda":
        torch.set_default_device("cuda")
    return want


def _write_curve(path, curve):
    import pandas as pd

    from .utils import atomic_write_text

    atomic_write_text(path, pd.DataFrame(curve).to_csv(index=False))


# --------------------------------------------------------------------------------------------------
def cmd_fetch_fmnist(args):
    from .data import fmnist

    digests = fmnist.fetch(args.out, args.source, args.download)
    for name, d in sorted(digests.items()):
        print(f"{name}  sha256 {d}")


def cmd_prepare_data(args):
    import numpy as np

    from .data import fmnist
    from .data.tasks import build_task, get_task
    from .utils import atomic_save_npz

    spec = get_task(args.task)
    fm = fmnist.load(args.fmnist)
    arrays = build_task(args.task, fm, seed=args.seed)
    atomic_save_npz(args.out, **arrays, task=np.array(spec.id))
    for k, v in sorted(arrays.items()):
        print(f"{args.task} {k}: {v.shape}")


def cmd_train_evalnet(args):
    from .config import resolve
    from .evalnets import train_classifier, train_segmenter
    from .utils import atomic_save_torch, atomic_write_json, config_hash, versions

    _threads(args)
    task = args.task or "fmnist_edges2shoes"
    cfg = resolve(task, _overrides(args))["evalnets"][args.kind]
    t0 = time.time()
    if args.kind == "segmenter":
        from .train import TaskData

        if not args.data:
            raise ValueError("train-evalnet --kind segmenter needs --data (the fmnist_scenes npz)")
        ck, quality = train_segmenter(cfg, TaskData(args.data, "fmnist_scenes"), args.seed)
    else:
        ck, quality = train_classifier(args.kind, cfg, args.seed, args.fmnist)
    quality.update(seed=args.seed, config=cfg, config_hash=config_hash(cfg), versions=versions(),
                   wall_seconds=time.time() - t0)
    atomic_save_torch(args.out, ck)
    atomic_write_json(args.quality, quality)
    print(json.dumps({k: v for k, v in quality.items() if k not in ("config", "versions")}))


def cmd_real_stats(args):
    from .evaluate import real_stats
    from .train import TaskData
    from .utils import atomic_save_npz

    _threads(args)
    from .data.tasks import get_task

    if get_task(args.task).scale == "paper":
        from .paper_eval import real_stats_paper
        from .train import open_task_data

        cfg = _cfg(args)
        _device(args)
        data = open_task_data(args.data, args.task, cfg)
        if data.spec.metric != "fd":
            raise ValueError(f"task {args.task} is scored by {data.spec.metric}, not FID")
        mode = args.fid_mode or cfg["eval"]["fid_mode"]
        from .metrics.inception import require_weights

        require_weights(mode, args.featnet)  # before any image is read
        st = real_stats_paper(data, mode, args.featnet, args.images)
        atomic_save_npz(args.out, **st)
        print(f"{args.task}: real Inception statistics ({mode}) from {st['description']}")
        return
    data = TaskData(args.data, args.task)
    if data.spec.metric != "fd":
        raise ValueError(f"task {args.task} is scored by {data.spec.metric}, not FD")
    st = real_stats(data, args.featnet, args.images)
    atomic_save_npz(args.out, **st)
    print(f"{args.task}: real statistics from {st['description']}")


def cmd_train_teacher(args):
    from .teachers import train_teacher
    from .train import open_task_data
    from .utils import atomic_save_torch, config_hash

    _threads(args)
    cfg = _cfg(args)
    if args.role not in cfg["teachers"]:
        raise ValueError(f"task {args.task} has no teacher role {args.role!r} (has {sorted(cfg['teachers'])})")
    from .resume import Resumer

    t0 = time.time()
    chash = config_hash(cfg["teachers"][args.role])
    resumer = Resumer(args.out, identity=f"{args.task}/{args.role}/{chash}/seed{args.seed}",
                      every=args.checkpoint_every)
    _device(args)
    ck, curve = train_teacher(cfg, args.role, open_task_data(args.data, args.task, cfg, args.seed), args.evalnet,
                              args.seed, resumer)
    ck.update(role=args.role, seed=args.seed, config_hash=chash, train_seconds=time.time() - t0)
    _write_curve(args.curve, curve)
    atomic_save_torch(args.out, ck)
    resumer.finish()
    print(f"teacher {args.task}/{args.role}: final val {curve[-1]['val']:.4f} in {time.time() - t0:.0f} s")


def cmd_omgd_teachers(args):
    from baselines.omgd import record_trajectory, teacher_config_hash

    from .resume import Resumer
    from .train import open_task_data
    from .utils import atomic_save_torch

    _threads(args)
    cfg = _cfg(args)
    t0 = time.time()
    resumer = Resumer(args.out, identity=f"{args.task}/omgd-online/{teacher_config_hash(cfg, args.task, args.seed)}",
                      every=args.checkpoint_every)
    traj, curve = record_trajectory(cfg, open_task_data(args.data, args.task, cfg, args.seed), args.seed, args.evalnet,
                                    resumer=resumer)
    traj["train_seconds"] = time.time() - t0
    _write_curve(args.curve, curve)
    atomic_save_torch(args.out, traj)
    resumer.finish()
    last = curve[-1]
    print(f"OMGD online teachers {args.task} seed {args.seed}: final val wide {last['val_wide']:.4f}, "
          f"deep {last['val_deep']:.4f} in {time.time() - t0:.0f} s")


def cmd_compress(args):
    from baselines import METHODS

    from .train import open_task_data
    from .utils import atomic_save_torch, config_hash

    _threads(args)
    cfg = _cfg(args)
    if args.method not in METHODS:
        raise ValueError(f"unknown method {args.method!r}; choose one of {sorted(METHODS)}")
    from .mi import ADDONS

    if args.addon not in ADDONS:
        raise ValueError(f"unknown add-on {args.addon!r}; choose one of {sorted(ADDONS)}")
    from .resume import Resumer

    t0 = time.time()
    lam = None if args.addon == "none" else (args.lambda_mi if args.lambda_mi is not None
                                             else cfg["addon"]["lambda_mi"])
    chash = config_hash({"cfg": cfg, "method": args.method, "addon": args.addon, "lambda_mi": lam})
    resumer = Resumer(args.out, identity=f"{args.task}/{chash}/seed{args.seed}", every=args.checkpoint_every)
    _device(args)
    method = METHODS[args.method](cfg, open_task_data(args.data, args.task, cfg, args.seed), args.addon, args.seed,
                                  args.perceptual, args.evalnet, args.teacher, args.lambda_mi,
                                  **({"trajectory": args.trajectory} if args.trajectory else {}))
    ck, curve = method.run(resumer, keep_snapshots=args.keep_snapshots)
    ck.update(method=args.method, seed=args.seed, lambda_mi=lam, train_seconds=time.time() - t0,
              config_hash=chash, config=json.dumps(cfg, sort_keys=True),
              resume_saves=resumer.saves, resume_save_seconds=resumer.save_seconds)
    _write_curve(args.curve, curve)
    atomic_save_torch(args.out, ck)
    resumer.finish()
    print(f"{args.method}+{args.addon} {args.task} seed {args.seed}: final val {curve[-1]['val']:.4f} "
          f"in {time.time() - t0:.0f} s")


def cmd_evaluate(args):
    from .data.tasks import get_task
    from .evaluate import evaluate, evaluate_best_on_test, sample_grid
    from .train import open_task_data
    from .utils import atomic_write_json, load_checkpoint, versions

    _threads(args)
    spec = get_task(args.task)
    cfg = _cfg(args)
    ck = load_checkpoint(args.generator)
    _device(args)
    data = open_task_data(args.data, args.task, cfg)
    if args.selection == "best_on_test":
        res = evaluate_best_on_test(spec, ck, data, args.evalnet, args.images, args.real_stats, args.generator)
    else:
        res = evaluate(spec, ck, data, args.evalnet, args.images, args.real_stats)
        res["protocol"]["checkpoint_selection"] = "final iteration (no selection on test)"
    if args.samples:
        sample_grid(args.images, args.samples)
    record = {
        "schema": "vem-metrics/1", "task": spec.id, "scale": spec.scale, "paper_task": spec.paper_task,
        "method": args.method, "addon": args.addon, "lambda_mi": ck.get("lambda_mi"),
        "seed": ck.get("seed"), "config_hash": ck.get("config_hash"),
        "train_seconds": ck.get("train_seconds"), "teacher_source": ck.get("source"),
        "teacher_sha256": ck.get("source_sha256"),
        "versions": versions(), **res,
    }
    atomic_write_json(args.out, record)
    m = res["metric"]
    print(f"{spec.id} {args.method}+{args.addon}: {m['name']} = {m['value']:.4f}, "
          f"MACs {res['cost']['macs'] / 1e6:.2f} M, params {res['cost']['params'] / 1e6:.4f} M")


def cmd_tables(args):
    from .tables import render

    paths = render(args.table, args.metrics, args.out, quality=args.quality, curves=args.curves)
    for p in paths:
        print(f"wrote {p}")


def cmd_dataset(args):
    from pathlib import Path

    from .data.paper_datasets import fetch_dataset

    out = fetch_dataset(args.name, Path(args.out), Path(args.cache), args.manual_dir)
    print(f"dataset {args.name}: ready in {out}")


def cmd_weights(args):
    from pathlib import Path

    from .data.paper_datasets import fetch_weights

    out = fetch_weights(args.name, Path(args.out), args.path or None)
    print(f"weights {args.name}: ready at {out}")


def cmd_prepare_paper_data(args):
    from .data.folders import prepare_paper_task

    prepare_paper_task(args.task, args.dataset, args.out, seed=args.seed)


def cmd_import_teacher(args):
    from .pretrained import import_teacher

    import_teacher(args.name, args.out, args.path or None, args.cache)


def cmd_profile(args):
    from .metrics.cost import profile
    from .models.generators import PAPER_MODELS, build_generator

    if args.size < 8:
        raise ValueError(f"--size must be >= 8, got {args.size}")
    kw = dict(PAPER_MODELS.get(args.model, {"arch": args.model, "num_downs": args.num_downs}))
    G = build_generator(in_nc=args.in_nc, out_nc=args.in_nc, ngf=args.ngf, norm=args.norm, **kw)
    res = profile(G, args.in_nc, args.size)
    res.update(model=args.model, ngf=args.ngf)
    print(json.dumps(res))


# --------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m vem", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    def add(name, fn, help_):
        sp = sub.add_parser(name, help=help_, description=help_)
        sp.set_defaults(fn=fn)
        return sp

    def checkpoint_every(sp):
        sp.add_argument("--checkpoint-every", type=int, default=0, metavar="N",
                        help="save <out>.resume every N iterations (always on SIGTERM/SIGUSR1); a re-run resumes")

    def common(sp, task=True, seed=True):
        if task:
            sp.add_argument("--task", required=True)
        if seed:
            sp.add_argument("--seed", type=int, default=0)
        sp.add_argument("--threads", type=int, default=None)
        sp.add_argument("--overrides", default=None, help="JSON object of dotted config keys")
        sp.add_argument("--set", action="append", metavar="KEY=VALUE", help="one config override (YAML value)")
        sp.add_argument("--device", default="auto", help="auto (cuda if visible), cpu or cuda")

    sp = add("fetch-fmnist", cmd_fetch_fmnist, "copy Fashion-MNIST's IDX files into a folder")
    sp.add_argument("--out", required=True)
    sp.add_argument("--source", default=None, help="folder with the IDX files (default: $FMNIST_DIR, Debian's)")
    sp.add_argument("--download", action="store_true", help="fall back to torchvision's download")

    sp = add("prepare-data", cmd_prepare_data, "build a mini task's npz from Fashion-MNIST")
    sp.add_argument("--task", required=True)
    sp.add_argument("--fmnist", default=None)
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--out", required=True)

    sp = add("prepare-paper-data", cmd_prepare_paper_data, "index a paper task's images from its extracted dataset "
             "(held-out val split from train; cityscapes: 256x256 AB pairs + gtFine labelIds for mIoU)")
    sp.add_argument("--task", required=True)
    sp.add_argument("--dataset", required=True, help="resources/datasets/<dataset> (with its .complete marker)")
    sp.add_argument("--seed", type=int, default=0, help="seed of the held-out val split")
    sp.add_argument("--out", required=True, help="resources/data/<task>.json")

    sp = add("import-teacher", cmd_import_teacher, "import a released full generator (GAN-Compression) as a "
             "teacher checkpoint, checksum-verified")
    sp.add_argument("--name", required=True, help="e.g. gan_compression/cycle_gan/horse2zebra")
    sp.add_argument("--out", required=True)
    sp.add_argument("--path", default=None, help="an existing copy of latest_net_G.pth (offline nodes)")
    sp.add_argument("--cache", default="resources/downloads")

    sp = add("train-evalnet", cmd_train_evalnet, "train the FD feature net, the perceptual net or the segmenter")
    sp.add_argument("--kind", required=True, choices=["feature", "perceptual", "segmenter"])
    sp.add_argument("--task", default=None)
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--fmnist", default=None)
    sp.add_argument("--data", default=None)
    sp.add_argument("--threads", type=int, default=None)
    sp.add_argument("--overrides", default=None)
    sp.add_argument("--set", action="append")
    sp.add_argument("--out", required=True)
    sp.add_argument("--quality", required=True)

    sp = add("real-stats", cmd_real_stats, "real reference statistics for FD")
    common(sp, seed=False)
    sp.add_argument("--data", required=True)
    sp.add_argument("--featnet", required=True, help="mini: the FeatureNet checkpoint; paper: the Inception weights")
    sp.add_argument("--fid-mode", default=None,
                    help="paper: legacy_pytorch | clean (default: the preset's eval.fid_mode)")
    sp.add_argument("--images", required=True, help="zip of the real PNGs used")
    sp.add_argument("--out", required=True)

    sp = add("train-teacher", cmd_train_teacher, "train a teacher / Original model")
    common(sp)
    sp.add_argument("--role", required=True)
    sp.add_argument("--data", required=True)
    sp.add_argument("--evalnet", required=True)
    checkpoint_every(sp)
    sp.add_argument("--out", required=True)
    sp.add_argument("--curve", required=True)

    sp = add("omgd-teachers", cmd_omgd_teachers, "OMGD paired tasks: train the online teachers once and record "
                                                 "the trajectory every add-on's student replays")
    common(sp)
    sp.add_argument("--data", required=True)
    sp.add_argument("--evalnet", required=True, help="scores the teachers' val curve")
    checkpoint_every(sp)
    sp.add_argument("--out", required=True)
    sp.add_argument("--curve", required=True)

    sp = add("compress", cmd_compress, "compress a student with a method and an MI add-on")
    common(sp)
    sp.add_argument("--method", required=True)
    sp.add_argument("--addon", required=True)
    sp.add_argument("--lambda-mi", type=float, default=None)
    sp.add_argument("--data", required=True)
    sp.add_argument("--perceptual", required=True)
    sp.add_argument("--evalnet", required=True)
    sp.add_argument("--teacher", default=None)
    sp.add_argument("--trajectory", default=None, help="OMGD paired: replay recorded online teachers "
                                                         "(python -m vem omgd-teachers) instead of training them")
    sp.add_argument("--keep-snapshots", action="store_true",
                    help="keep the student at every val-curve point (evaluate --selection best_on_test)")
    checkpoint_every(sp)
    sp.add_argument("--out", required=True)
    sp.add_argument("--curve", required=True)

    sp = add("evaluate", cmd_evaluate, "evaluate a generator on the test split -> metrics.json")
    common(sp, seed=False)
    sp.add_argument("--generator", required=True)
    sp.add_argument("--method", required=True, help="method label (e.g. original, omgd)")
    sp.add_argument("--addon", default="none")
    sp.add_argument("--data", required=True)
    sp.add_argument("--evalnet", required=True)
    sp.add_argument("--real-stats", default=None)
    sp.add_argument("--images", required=True)
    sp.add_argument("--samples", default=None)
    sp.add_argument("--selection", choices=["final", "best_on_test"], default="final",
                    help="final iteration (default), or the best of the training snapshots ON THE TEST SET "
                         "(the anchors' protocol; optimistic; needs compress --keep-snapshots)")
    sp.add_argument("--out", required=True)

    sp = add("tables", cmd_tables, "render a paper table from metrics files")
    sp.add_argument("--table", type=int, required=True, choices=[1, 2, 4, 5])
    sp.add_argument("--metrics", nargs="+", required=True)
    sp.add_argument("--quality", nargs="*", default=[])
    sp.add_argument("--curves", nargs="*", default=[])
    sp.add_argument("--out", required=True)

    sp = add("dataset", cmd_dataset, "download (or take the manual downloads of), verify and extract a paper "
                                     "dataset: edges2shoes-r, horse2zebra, summer2winter_yosemite, cityscapes")
    sp.add_argument("--name", required=True)
    sp.add_argument("--out", required=True, help="folder to create (a .complete marker is written last)")
    sp.add_argument("--cache", default="resources/downloads", help="where archives are kept (resumable)")
    sp.add_argument("--manual-dir", default=None, help="folder with licence-gated manual downloads (cityscapes)")

    sp = add("weights", cmd_weights, "put a metric network's weights in place: inception_legacy (pytorch-fid), "
                                     "inception_clean (clean-fid), drn_d_105_cityscapes; downloaded or --path")
    sp.add_argument("--name", required=True)
    sp.add_argument("--out", required=True)
    sp.add_argument("--path", default=None, help="an existing copy (offline cluster nodes)")

    sp = add("profile", cmd_profile, "MACs/params of a generator (torchprofile convention: a ConvTranspose "
                                     "is counted per OUTPUT pixel, as GAN-Compression/OMGD/CAT report)")
    sp.add_argument("--model", required=True, help="unet_256, unet_deepest_256, resnet_9blocks, "
                                                   "mobile_resnet_9blocks, mobile_deepest_resnet, unet, resnet, ...")
    sp.add_argument("--ngf", type=int, default=64)
    sp.add_argument("--size", type=int, default=256)
    sp.add_argument("--in-nc", type=int, default=3)
    sp.add_argument("--num-downs", type=int, default=8)
    sp.add_argument("--norm", default=None)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.fn(args)
    except (ValueError, TypeError, FileNotFoundError, FloatingPointError, KeyError, OSError) as e:
        if os.environ.get("VEM_DEBUG"):
            raise
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"vem: error: {msg}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
