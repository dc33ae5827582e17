"""Command line: ``python -m vem <command> --help``. Every workflow rule is one of these commands.

Errors in input (unknown ids, bad config values or arguments, missing or corrupt files, non-finite
training) end the command with one line ``vem: error: ...`` and exit status 2; set ``VEM_DEBUG=1`` for a
traceback. Outputs are written atomically at the end, so a failed command leaves nothing that looks done.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time


class _ArgumentError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line (``vem: error: argument --threads: ...``), no usage block."""

    def error(self, message):
        raise _ArgumentError(message)


def _int(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value
    return parse


def _nonneg_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"is not valid JSON ({e}): {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object of dotted config keys, got {text!r}")
    return value


def _arms(text: str) -> list[str]:
    import re

    from .plan import ARMS, ARMS_RE, arm_list

    if not re.fullmatch(ARMS_RE, text):
        raise _ArgumentError(f"--arms: {text!r} is not a sequence of +<arm> with arm in {sorted(ARMS)}")
    return arm_list(text)


def _key_value(text: str) -> tuple[str, str]:
    if "=" not in text or not text.split("=", 1)[0]:
        raise argparse.ArgumentTypeError(f"expects KEY=VALUE, got {text!r}")
    k, v = text.split("=", 1)
    return k, v


def _overrides(args) -> dict:
    from .config import override_value

    ov = dict(getattr(args, "overrides", None) or {})
    for k, v in getattr(args, "set", None) or []:
        ov[k] = override_value(v)
    return ov


def _cfg(args, method: str | None = None):
    from .config import resolve

    return resolve(args.task, _overrides(args), method=method)


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


def _device_name(device: str) -> str:
    """What a checkpoint and a metrics file record of the device: ``cpu`` or ``cuda (<the GPU's name>)``."""
    import torch

    return f"cuda ({torch.cuda.get_device_name()})" if device == "cuda" else "cpu"


def _write_table(path, rows):
    import pandas as pd

    from .utils import atomic_write_text

    atomic_write_text(path, pd.DataFrame(rows).to_csv(index=False))


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
    from .utils import atomic_save_torch, atomic_write_json, config_hash, file_sha256, versions

    _threads(args)
    task = args.task or "fmnist_edges2shoes"
    cfg = resolve(task, _overrides(args))["evalnets"][args.kind]
    t0 = time.time()
    if args.kind == "segmenter":
        from .data.taskdata import TaskData

        if not args.data:
            raise ValueError("train-evalnet --kind segmenter needs --data (the fmnist_scenes npz)")
        ck, quality = train_segmenter(cfg, TaskData(args.data, "fmnist_scenes"), args.seed)
    else:
        ck, quality = train_classifier(args.kind, cfg, args.seed, args.fmnist)
    quality.update(seed=args.seed, config=cfg, config_hash=config_hash(cfg), versions=versions(),
                   wall_seconds=time.time() - t0)
    atomic_save_torch(args.out, ck)
    quality["evalnet_sha256"] = file_sha256(args.out)   # the network every metric's protocol names by this hash
    atomic_write_json(args.quality, quality)
    print(json.dumps({k: v for k, v in quality.items() if k not in ("config", "versions")}))


def cmd_real_stats(args):
    from .data.taskdata import open_task_data
    from .eval import real_stats
    from .utils import atomic_save_npz

    _threads(args)
    cfg = _cfg(args)
    _device(args)
    data = open_task_data(args.data, args.task, cfg)
    st = real_stats(data, args.featnet, cfg, args.images)
    atomic_save_npz(args.out, **st)
    print(f"{args.task}: real statistics{' (' + st['mode'] + ')' if 'mode' in st else ''} from {st['description']}")


def teacher_identity(cfg: dict, task: str, role: str) -> dict:
    """What a teacher's training depends on (hashed into its config_hash and resume identity): its recipe, the
    task (its data and channels), the augmentation and the val images its snapshots are scored on."""
    return {"task": task, "role": role, "teacher": cfg["teachers"][role], "data": cfg.get("data"),
            "val_images": cfg["eval"]["val_images"]}


def cmd_train_teacher(args):
    from .data.taskdata import open_task_data
    from .eval import ValScorer
    from .resume import Resumer
    from .train import train_teacher
    from .utils import atomic_save_torch, config_hash

    _threads(args)
    cfg = _cfg(args)
    if args.role not in cfg["teachers"]:
        raise ValueError(f"task {args.task} has no teacher role {args.role!r} (has {sorted(cfg['teachers'])})")
    t0 = time.time()
    t = cfg["teachers"][args.role]
    trained_by = teacher_identity(cfg, args.task, args.role)
    chash = config_hash(trained_by)
    resumer = Resumer(args.out, identity=f"{args.task}/{args.role}/{chash}/seed{args.seed}",
                      every=args.checkpoint_every)
    device = _device_name(_device(args))
    data = open_task_data(args.data, args.task, cfg, args.seed)
    ck, curve = train_teacher(t, data, args.seed, lambda: ValScorer(data, args.evalnet, cfg), resumer,
                              desc=f"{args.role} teacher")
    ck.update(role=args.role, seed=args.seed, config_hash=chash, config=json.dumps(trained_by, sort_keys=True),
              resume_saves=resumer.saves, device=device)
    _write_table(args.curve, curve)
    atomic_save_torch(args.out, ck)
    resumer.finish()
    print(f"teacher {args.task}/{args.role}: final val {curve[-1]['val']:.4f} in {time.time() - t0:.0f} s "
          f"({resumer.saves} resume saves, {resumer.save_seconds:.1f} s)")


def cmd_stage(args):
    from pathlib import Path

    from .methods import get_method
    from .methods.context import StageContext
    from .methods.registry import canonical as canonical_method
    from .mi.registry import canonical

    args.method = canonical_method(args.method)   # ids, or a user's module:Class (registered here)
    args.addon = canonical(args.addon)
    method = get_method(args.method)
    cfg = _cfg(args, method=args.method)
    stage = method.stage(cfg, args.stage) if args.stage else method.final(cfg)
    final = stage == method.final(cfg)
    if stage.scope != "run" and (args.addon != "none" or args.lambda_mi is not None):
        raise ValueError(f"stage {stage.name} of {method.id} runs per {stage.scope}: --addon and --lambda-mi belong "
                         f"to its run-scoped stages")
    if not final and args.keep_snapshots:
        raise ValueError(f"--keep-snapshots belongs to the last stage of {method.id} ({method.final(cfg).name})")
    inputs = dict(args.input or [])
    unknown = sorted(set(inputs) - set(stage.needs))
    from .plan import SHARED_WEIGHTS

    paper = cfg["scale"] == "paper"
    missing = sorted(n for n in set(stage.needs) - set(inputs) if paper or n not in SHARED_WEIGHTS)
    if unknown or missing:
        raise ValueError(f"stage {stage.name} of {method.id} needs --input for {list(stage.needs)}"
                         + (f"; missing {missing}" if missing else "") + (f"; not used: {unknown}" if unknown else ""))
    for path in [args.data, args.evalnet, *inputs.values()]:
        if not Path(path).is_file():
            raise FileNotFoundError(f"input {path} does not exist")
    lam = None if args.addon == "none" else (args.lambda_mi if args.lambda_mi is not None
                                             else cfg["addon"]["lambda_mi"])
    _threads(args)
    from .data.taskdata import open_task_data
    from .resume import Resumer
    from .utils import atomic_save_torch, config_hash, file_sha256

    t0 = time.time()
    chash = config_hash({"cfg": cfg, "method": method.id, "stage": stage.name, "addon": args.addon, "lambda_mi": lam})
    resumer = Resumer(args.out, identity=f"{args.task}/{chash}/seed{args.seed}", every=args.checkpoint_every)
    device = _device_name(_device(args))
    data = open_task_data(args.data, args.task, cfg, args.seed)
    ctx = StageContext(cfg=cfg, method=method.id, stage=stage, data=data, seed=args.seed,
                       inputs={k: Path(v) for k, v in inputs.items()}, evalnet=Path(args.evalnet), addon=args.addon,
                       lambda_mi=args.lambda_mi, resumer=resumer, keep_snapshots=args.keep_snapshots,
                       trains_addon=stage == method.addon_stage(cfg))
    ck, table = method.run_stage(stage.name, ctx)
    ck.update(method=method.id, stage=stage.name, seed=args.seed, addon=args.addon, lambda_mi=lam,
              config_hash=chash, config=json.dumps(cfg, sort_keys=True), resume_saves=resumer.saves, device=device,
              # what it was made from: the stage's inputs (earlier stages, teachers) and data, by content
              inputs_sha256={k: file_sha256(v) for k, v in sorted({**inputs, "data": args.data}.items())})
    _write_table(args.table, table)
    atomic_save_torch(args.out, ck)
    resumer.finish()
    last = {k: v for k, v in (table[-1] if table else {}).items() if k.startswith("val")}
    print(f"{method.id}/{stage.name}{'+' + args.addon if stage.scope == 'run' else ''} {args.task} seed {args.seed}: "
          f"{json.dumps(last)} in {time.time() - t0:.0f} s ({resumer.saves} resume saves, "
          f"{resumer.save_seconds:.1f} s)")


def cmd_methods(args):
    from .config import method_kinds, resolve
    from .data.tasks import TASKS
    from .methods import get_method, method_ids

    for mid in method_ids():
        m = get_method(mid)
        doc = (type(m).__doc__ or sys.modules[type(m).__module__].__doc__ or "").strip()
        first = " ".join(doc.split("\n\n")[0].split()).split(". ")[0].rstrip(".")   # the first sentence
        print(f"{mid} ({m.title}): {first}")
        for task, spec in TASKS.items():
            if spec.kind in method_kinds(mid, spec.scale) and m.compresses(
                    resolve(task)["teachers"]["original"].get("arch")):
                cfg = resolve(task, method=mid)
                addon = m.addon_stage(cfg) if m.combines_addons else None     # Slimming: runs without one
                stages = " -> ".join(f"{s.name} [{s.scope}{', add-on' if s == addon else ''}]"
                                     for s in m.checked_stages(cfg))
                print(f"  {task:22s} {stages}")


def cmd_evaluate(args):
    import pandas as pd

    from .data.taskdata import open_task_data
    from .data.tasks import get_task
    from .eval import evaluate, evaluate_best_on_test, evaluate_best_on_val, measure_latency, sample_grid
    from .mi.probe import summarise_curve
    from .utils import atomic_write_json, load_checkpoint, versions

    _threads(args)
    cfg = _cfg(args)
    spec = get_task(args.task)
    ck = load_checkpoint(args.generator)
    device = _device_name(_device(args))
    data = open_task_data(args.data, args.task, cfg)
    select = {"best_on_test": evaluate_best_on_test, "best_on_val": evaluate_best_on_val}.get(args.selection)
    if select is not None:
        res = select(ck, data, args.evalnet, cfg, args.images, args.real_stats, args.generator)
    else:
        res = evaluate(ck, data, args.evalnet, cfg, args.images, args.real_stats)
        res["protocol"]["checkpoint_selection"] = "final iteration (no selection on test)"
    res["latency"] = measure_latency(ck, spec, cfg, compare_original=args.method != "original")
    if args.samples:
        sample_grid(args.images, args.samples)
    curve = pd.read_csv(args.curve) if args.curve else None
    seconds = curve["seconds"].dropna() if curve is not None and "seconds" in curve else None
    train_seconds = float(seconds.iloc[-1]) if seconds is not None and len(seconds) else None
    record = {
        "schema": "vem-metrics/1", "task": spec.id, "scale": spec.scale, "paper_task": spec.paper_task,
        "method": args.method, "addon": args.addon, "arms": args.arms, "lambda_mi": ck.get("lambda_mi"),
        "seed": ck.get("seed"), "config_hash": ck.get("config_hash"),
        "train_seconds": train_seconds, "teacher_source": ck.get("source"),
        "teacher_sha256": ck.get("source_sha256"), "inputs_sha256": ck.get("inputs_sha256"),
        "generator": ck["generator"],
        # where it was trained (None: made elsewhere, e.g. a released teacher) and evaluated (latency: on the CPU)
        "devices": {"train": ck.get("device"), "evaluate": device},
        "versions": versions(), **res,
    }
    if curve is not None and (probe := summarise_curve(curve)):
        record["gradient_probe"] = probe
    atomic_write_json(args.out, record)
    m = res["metric"]
    lat = res["latency"]
    line = (f"{spec.id} {args.method}+{args.addon}: {m['name']} = {m['value']:.4f}, "
            f"MACs {res['cost']['macs'] / 1e6:.2f} M, params {res['cost']['params'] / 1e6:.4f} M")
    timed = [b for b in lat["backends"] if f"{b}_ms" in lat]
    if timed:
        b = timed[0]
        line += f", latency {lat[f'{b}_ms']:.2f} ms ({b}, batch 1)"
        if f"speedup_{b}" in lat:
            line += f", x{lat[f'speedup_{b}']:.2f} vs the Original"
    print(line)


def cmd_figure(args):
    from . import figures

    spec = args.spec
    fn = {"figure2": lambda: figures.figure2(spec["panels"], args.out, spec.get("n", 4), spec.get("overrides")),
          "figure3": lambda: figures.figure2(spec["panels"], args.out, spec.get("n", 4), spec.get("overrides"),
                                             unconditional=True),
          "curves": lambda: figures.curves(spec["task"], spec["metric"], spec["cells"], args.out),
          "vem_diagnostics": lambda: figures.vem_diagnostics(spec["rows"], args.out),
          "addon_effects": lambda: figures.addon_effects(spec["table"], args.out)}[args.kind]
    try:
        paths = fn()
    except KeyError as e:
        raise ValueError(f"--spec for {args.kind} lacks the key {e.args[0]!r}") from None
    for p in paths:
        print(f"wrote {p}")


def cmd_render_table(args):
    """dose-response / control / latency: ``vem.tables.render_<name>(metrics, out)`` (``args.render``)."""
    from . import tables

    for p in getattr(tables, args.render)(args.metrics, args.out):
        print(f"wrote {p}")


def cmd_leaderboard(args):
    from .leaderboard import render

    print(f"wrote {render(args.metrics, args.out, json.loads(args.meta) if args.meta else None)}")


def cmd_tune(args):
    from .tuning import render_tuning

    for p in render_tuning(args.spec, args.out):
        print(f"wrote {p}")


def cmd_summary(args):
    import datetime

    meta = dict(args.meta, date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    from .tables import render_summary

    print(f"wrote {render_summary(args.tables, args.extra, args.figures, meta, args.out)}")


def cmd_tables(args):
    from pathlib import Path

    from .tables import render

    metrics, curves = list(args.metrics), list(args.curves)
    for lst in args.tuned_runs:   # results/tuning/<method>.runs: the tuned runs' metrics.json, one per line
        tuned = [ln.strip() for ln in Path(lst).read_text().splitlines() if ln.strip()]
        metrics += tuned
        curves += [c for c in (str(Path(m).with_name("curve.csv")) for m in tuned) if Path(c).is_file()]
    paths = render(args.table, metrics, args.out, quality=args.quality, curves=curves)
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
    from .metrics.cost import PAPER_COUNTERS, count_macs_v001, profile
    from .models import PAPER_MODELS, build, record

    name, kw = PAPER_MODELS.get(args.model, (args.model, {}))
    if args.net_shape and name != "stylegan2":
        raise ValueError(f"--net-shape is a StyleGAN2's per-group widths (stylegan2_256), not of {args.model!r}")
    if name in ("sagan", "stylegan2"):          # unconditional: the input is a latent (its size: the model's)
        kw = dict(kw, out_nc=args.in_nc)
        if args.size is not None:
            kw["image_size"] = args.size
        if args.net_shape:
            kw["net_shape"] = [int(c) for c in args.net_shape.split("_")]
        elif name == "sagan":
            kw["ngf"] = args.ngf
        rec = record(name, **kw)
        G, z_dim = build(rec), rec["kwargs"]["in_nc"]
        res = profile(G, z_dim, 1)
        key, counter = PAPER_COUNTERS[name]
        res[key] = counter(G, z_dim, 1)
        res.update(model=args.model, **({"net_shape": G.net_shape} if name == "stylegan2" else {"ngf": args.ngf}))
        print(json.dumps(res))
        return
    args.size = 256 if args.size is None else args.size
    kw = dict(kw, in_nc=args.in_nc, out_nc=args.in_nc)
    if args.config:
        from .metrics.slimmable import parse_config

        if name != "slimmable_mobile_resnet":
            raise ValueError(f"--config is a configuration of the slimmable mobile ResNet "
                             f"(super_mobile_resnet_9blocks), not of {args.model!r}")
        kw["channels"] = parse_config(args.config)
    else:
        kw["ngf"] = args.ngf
    if name.startswith("unet") and "num_downs" not in kw:
        kw["num_downs"] = args.num_downs
    if args.norm:
        kw["norm"] = args.norm
    G = build(record(name, **kw))
    res = profile(G, args.in_nc, args.size)
    res["macs_torchprofile_0.0.1"] = count_macs_v001(G, args.in_nc, args.size)
    res.update(model=args.model, **({"config": args.config} if args.config else {"ngf": args.ngf}))
    print(json.dumps(res))


# --------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m vem", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    def add(name, fn, help_):
        sp = sub.add_parser(name, help=help_, description=help_)
        sp.set_defaults(fn=fn)
        return sp

    def checkpoint_every(sp):
        sp.add_argument("--checkpoint-every", type=_int(0), default=0, metavar="N",
                        help="save <out>.resume every N iterations (always on SIGTERM/SIGUSR1); a re-run resumes")

    def config_args(sp):
        sp.add_argument("--threads", type=_int(1), default=None)
        sp.add_argument("--overrides", type=_json_object, default=None, help="JSON object of dotted config keys")
        sp.add_argument("--set", type=_key_value, action="append", metavar="KEY=VALUE",
                        help="one config override (YAML value)")

    def common(sp, task=True, seed=True):
        if task:
            sp.add_argument("--task", required=True)
        if seed:
            sp.add_argument("--seed", type=_int(0), default=0)
        config_args(sp)
        sp.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                        help="auto (cuda if visible, paper tasks), cpu or cuda")

    sp = add("fetch-fmnist", cmd_fetch_fmnist, "copy Fashion-MNIST's IDX files into a folder")
    sp.add_argument("--out", required=True)
    sp.add_argument("--source", default=None, help="folder with the IDX files (default: $FMNIST_DIR, Debian's)")
    sp.add_argument("--download", action="store_true", help="fall back to torchvision's download")

    sp = add("prepare-data", cmd_prepare_data, "build a mini task's npz from Fashion-MNIST")
    sp.add_argument("--task", required=True)
    sp.add_argument("--fmnist", default=None)
    sp.add_argument("--seed", type=_int(0), default=0)
    sp.add_argument("--out", required=True)

    sp = add("prepare-paper-data", cmd_prepare_paper_data, "index a paper task's images from its extracted dataset "
             "(held-out val split from train; cityscapes: 256x256 AB pairs + gtFine labelIds for mIoU)")
    sp.add_argument("--task", required=True)
    sp.add_argument("--dataset", required=True, help="resources/datasets/<dataset> (with its .complete marker)")
    sp.add_argument("--seed", type=_int(0), default=0, help="seed of the held-out val split")
    sp.add_argument("--out", required=True, help="resources/data/<task>.json")

    sp = add("import-teacher", cmd_import_teacher, "import a released full generator (GAN-Compression; CAGC's "
             "StyleGAN2) as a teacher checkpoint, checksum-verified")
    sp.add_argument("--name", required=True, help="e.g. gan_compression/cycle_gan/horse2zebra")
    sp.add_argument("--out", required=True)
    sp.add_argument("--path", default=None,
                    help="an existing copy of the released file (latest_net_G.pth; a StyleGAN2 checkpoint)")
    sp.add_argument("--cache", default="resources/downloads")

    sp = add("train-evalnet", cmd_train_evalnet, "train the FD feature net, the perceptual net or the segmenter")
    sp.add_argument("--kind", required=True, choices=["feature", "perceptual", "segmenter"])
    sp.add_argument("--task", default=None)
    sp.add_argument("--seed", type=_int(0), default=0)
    sp.add_argument("--fmnist", default=None)
    sp.add_argument("--data", default=None)
    config_args(sp)
    sp.add_argument("--out", required=True)
    sp.add_argument("--quality", required=True)

    sp = add("real-stats", cmd_real_stats, "real reference statistics of a task scored by a Fréchet distance")
    common(sp, seed=False)
    sp.add_argument("--data", required=True)
    sp.add_argument("--featnet", required=True, help="mini: the FeatureNet checkpoint; paper: the Inception weights "
                                                     "of eval.fid_mode")
    sp.add_argument("--images", required=True, help="zip of the real PNGs used")
    sp.add_argument("--out", required=True)

    sp = add("train-teacher", cmd_train_teacher, "train a teacher / Original model (teachers.<role> of the preset)")
    common(sp)
    sp.add_argument("--role", required=True)
    sp.add_argument("--data", required=True)
    sp.add_argument("--evalnet", required=True)
    checkpoint_every(sp)
    sp.add_argument("--out", required=True)
    sp.add_argument("--curve", required=True)

    sp = add("stage", cmd_stage, "run one stage of a compression method (python -m vem methods lists them); the "
                                 "last stage trains the student with an MI add-on")
    common(sp)
    sp.add_argument("--method", required=True)
    sp.add_argument("--stage", default=None, help="default: the method's last stage (the student)")
    sp.add_argument("--addon", default="none", help="run-scoped stages: none, vid, crd, vem, a user add-on's id or "
                    "module:Class")
    sp.add_argument("--lambda-mi", type=_nonneg_float, default=None, help="last stage only (default: addon.lambda_mi)")
    sp.add_argument("--data", required=True)
    sp.add_argument("--evalnet", required=True, help="the task's metric network (val curves)")
    sp.add_argument("--input", type=_key_value, action="append", metavar="NAME=PATH",
                    help="a checkpoint the stage needs: an earlier stage's, or original / perceptual")
    sp.add_argument("--keep-snapshots", action="store_true",
                    help="keep the student at every val-curve point (evaluate --selection best_on_val / "
                         "best_on_test)")
    checkpoint_every(sp)
    sp.add_argument("--out", required=True, help="the stage's checkpoint (.pt)")
    sp.add_argument("--table", required=True, help="the stage's table (.csv): learning curve, trace, log")

    add("methods", cmd_methods, "list the registered compression methods and their stages per task")

    sp = add("evaluate", cmd_evaluate, "evaluate a generator on the test split -> metrics.json")
    common(sp, seed=False)
    sp.add_argument("--generator", required=True)
    sp.add_argument("--method", required=True, help="method label (e.g. original, omgd)")
    sp.add_argument("--addon", default="none")
    sp.add_argument("--arms", type=_arms, default=[], help="the run's arms, e.g. +nodistill+frozen (recorded)")
    sp.add_argument("--data", required=True)
    sp.add_argument("--evalnet", required=True)
    sp.add_argument("--real-stats", default=None)
    sp.add_argument("--curve", default=None, help="the generator's training curve (train_seconds in the record)")
    sp.add_argument("--images", required=True)
    sp.add_argument("--samples", default=None)
    sp.add_argument("--selection", choices=["final", "best_on_val", "best_on_test"], default="final",
                    help="final iteration (default); the training snapshot with the best val-curve score "
                         "(best_on_val: test read once); or the best of the snapshots ON THE TEST SET "
                         "(best_on_test: the anchors' protocol, optimistic); both need stage --keep-snapshots")
    sp.add_argument("--out", required=True)

    sp = add("tables", cmd_tables, "render a paper table from metrics files")
    sp.add_argument("--table", type=int, required=True, choices=[1, 2, 3, 4, 5])
    sp.add_argument("--metrics", nargs="+", required=True)
    sp.add_argument("--quality", nargs="*", default=[])
    sp.add_argument("--curves", nargs="*", default=[])
    sp.add_argument("--tuned-runs", nargs="*", default=[], help="list files of tuned runs' metrics.json")
    sp.add_argument("--out", required=True)

    def metrics_to_out(name, fn, help_, render=None):
        sp = add(name, fn, help_)
        sp.set_defaults(render=render)
        sp.add_argument("--metrics", nargs="+", required=True)
        sp.add_argument("--out", required=True)
        return sp

    metrics_to_out("dose-response", cmd_render_table, "render the lambda_MI dose-response table from metrics files",
                   "render_dose_response")
    metrics_to_out("control", cmd_render_table, "render the positive-control table from metrics files",
                   "render_control")
    metrics_to_out("latency", cmd_render_table, "gather every evaluated generator's measured CPU latency -> "
                   "latency.csv", "render_latency")
    sp = metrics_to_out("leaderboard", cmd_leaderboard, "render results/leaderboard.html (sortable, filterable) "
                        "from metrics")
    sp.add_argument("--meta", default=None, help="JSON shown at the foot of the page (commit, date, config hash)")

    sp = add("tune", cmd_tune, "score every add-on tuning trial on the val split and choose per task kind "
                               "(results/tuning/<method>.csv/.json/.md)")
    sp.add_argument("--spec", type=_json_object, required=True, help="JSON: the trials (the workflow writes it)")
    sp.add_argument("--out", required=True, help="the .csv (.json and .md twins beside it)")

    sp = add("summary", cmd_summary, "results/summary.md: the run's tables and figures with its commit and config")
    sp.add_argument("--tables", nargs="+", required=True)
    sp.add_argument("--extra", nargs="*", default=[])
    sp.add_argument("--figures", nargs="*", default=[])
    sp.add_argument("--meta", type=_json_object, required=True)
    sp.add_argument("--out", required=True)

    sp = add("figure", cmd_figure, "render a figure from run outputs (PNG + PDF): the Figure 2 analogue, val "
                                   "curves, VEM diagnostics, the add-on forest plot")
    sp.add_argument("--kind", required=True,
                    choices=["figure2", "figure3", "curves", "vem_diagnostics", "addon_effects"])
    sp.add_argument("--spec", type=_json_object, required=True, help="JSON: what to draw (the workflow writes it)")
    sp.add_argument("--out", required=True, help="the .png (a .pdf twin is written beside it)")

    sp = add("dataset", cmd_dataset, "download (or take the manual downloads of), verify and extract a paper "
                                     "dataset: edges2shoes-r, horse2zebra, summer2winter_yosemite, cityscapes, "
                                     "celeba, ffhq")
    sp.add_argument("--name", required=True)
    sp.add_argument("--out", required=True, help="folder to create (a .complete marker is written last)")
    sp.add_argument("--cache", default="resources/downloads", help="where archives are kept (resumable)")
    sp.add_argument("--manual-dir", default=None, help="folder with manual downloads (cityscapes, celeba, ffhq)")

    sp = add("weights", cmd_weights, "put a metric network's weights in place: inception_legacy (pytorch-fid), "
                                     "inception_clean (clean-fid), vgg16, drn_d_105_cityscapes, lpips_vgg, "
                                     "bisenet_face; downloaded or --path")
    sp.add_argument("--name", required=True)
    sp.add_argument("--out", required=True)
    sp.add_argument("--path", default=None, help="an existing copy (offline cluster nodes)")

    sp = add("profile", cmd_profile, "MACs/params of a generator (torchprofile convention: a ConvTranspose "
                                     "is counted per OUTPUT pixel, as GAN-Compression/OMGD/CAT report)")
    sp.add_argument("--model", required=True, help="a paper name (unet_256, unet_deepest_256, resnet_9blocks, "
                                                   "mobile_resnet_9blocks, mobile_deepest_resnet, "
                                                   "inception_9blocks, super_mobile_resnet_9blocks, sagan_64, "
                                                   "stylegan2_256) or a backbone id (unet, resnet, ...)")
    sp.add_argument("--ngf", type=_int(1), default=64)
    sp.add_argument("--size", type=_int(8), default=None, help="image size (default 256; an unconditional "
                                                               "paper model's own: sagan_64 64)")
    sp.add_argument("--in-nc", type=_int(1), default=3)
    sp.add_argument("--num-downs", type=_int(5), default=8)
    sp.add_argument("--norm", default=None)
    sp.add_argument("--config", default=None, help="GAN-Compression's configuration string c0_..._c7 of "
                                                   "super_mobile_resnet_9blocks, e.g. 16_16_24_16_32_64_16_24")
    sp.add_argument("--net-shape", default=None, help="a StyleGAN2's channel-group widths w0_..._w13 (stylegan2_256; "
                                                      "CAGC's generator_net_shape), e.g. CAGC's 70 %% pruning "
                                                      "154_..._39; prints CAGC's count beside ours")
    return p


def main(argv=None) -> int:
    try:
        args = build_parser().parse_args(argv)
        args.fn(args)
    except _ArgumentError as e:
        print(f"vem: error: {e}", file=sys.stderr)
        return 2
    except (ValueError, TypeError, FileNotFoundError, FloatingPointError, KeyError, OSError) as e:
        if os.environ.get("VEM_DEBUG"):
            raise
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"vem: error: {msg}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
