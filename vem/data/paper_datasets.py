"""The paper preset's real datasets and weight files: where they live today, how they are checked.

Every entry lists mirrors in order of preference (the URLs in the original scripts are partly dead,
see the README's "Paper preset" section). ``sha256`` is pinned where the file's digest is known; where it
is not, the first download computes and records it (``<file>.sha256``) with a warning - pin it here.
``http`` mirrors are used only because the host offers nothing else; they are allowed per entry.

Nothing here is ever downloaded implicitly: only ``python -m vem dataset`` / ``python -m vem weights``
(the workflow's data and weight rules) fetch files, or take them from a path the user gives.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .download import download, safe_extract, sha256_file

# paper task -> the dataset (folder under resources/datasets/) it is built from
DATASET_OF = {"edges2shoes": "edges2shoes-r", "cityscapes": "cityscapes", "horse2zebra": "horse2zebra",
              "summer2winter": "summer2winter_yosemite", "celeba": "celeba", "ffhq": "ffhq"}

EFROS = "efrosgans.eecs.berkeley.edu/cyclegan/datasets"
HF = "https://huggingface.co/mit-han-lab/gan-compression/resolve/main"

def _cyclegan_dataset(name: str, task: str) -> dict:
    """CycleGAN's copy (moved from people.eecs.berkeley.edu to efrosgans, which may serve HTTP only)."""
    return {"task": task, "archive": f"{name}.zip", "strip": name,
            "urls": [f"https://{EFROS}/{name}.zip", f"http://{EFROS}/{name}.zip",
                     f"https://people.eecs.berkeley.edu/~taesung_park/CycleGAN/datasets/{name}.zip"],
            "allow_http": True, "sha256": None, "layout": ["trainA", "trainB", "testA", "testB"],
            "note": "CycleGAN's copy (moved from people.eecs.berkeley.edu to efrosgans)"}


DATASETS: dict[str, dict] = {
    "edges2shoes-r": {
        "task": "edges2shoes", "archive": "edges2shoes-r.tar.gz", "strip": "edges2shoes-r",
        "urls": [f"{HF}/datasets/edges2shoes-r.tar.gz"],
        "sha256": None, "layout": ["train", "val"],
        "note": "GAN-Compression's resized 256x256 copy (its hanlab.mit.edu URL is dead; HuggingFace now)",
    },
    "horse2zebra": _cyclegan_dataset("horse2zebra", "horse2zebra"),
    "summer2winter_yosemite": _cyclegan_dataset("summer2winter_yosemite", "summer2winter"),
    "cityscapes": {
        "task": "cityscapes", "manual": ["gtFine_trainvaltest.zip", "leftImg8bit_trainvaltest.zip"],
        "layout": ["gtFine", "leftImg8bit"],
        "note": "licence-gated: register and log in at https://www.cityscapes-dataset.com/downloads/",
    },
    "celeba": {
        "task": "celeba", "manual": ["img_align_celeba.zip"], "layout": ["img_align_celeba"],
        "note": ("CelebA's Google Drive download breaks (quota, login; torchvision #1920 #2262 #5705 #8268): get "
                 "img_align_celeba.zip (202,599 aligned JPEGs, 178x218) from the CelebA site "
                 "(mmlab.ie.cuhk.edu.hk/projects/CelebA.html; non-commercial research licence)"),
    },
    "ffhq": {
        "task": "ffhq", "manual_one_of": ["images1024x1024.zip", "thumbnails128x128.zip"],
        "layout_of": {"images1024x1024.zip": "images1024x1024", "thumbnails128x128.zip": "thumbnails128x128"},
        "note": ("FFHQ is on Google Drive only (NVlabs/ffhq-dataset; CC BY-NC-SA 4.0): get images1024x1024.zip "
                 "(70,000 PNGs, 89 GB; the paper's data, resized to 256 here) or thumbnails128x128.zip (1.95 GB; "
                 "upsampled to 256: not the paper's data)"),
    },
}

WEIGHTS: dict[str, dict] = {
    # pytorch-fid's Inception (what the original repos' FID used: clean-fid mode "legacy_pytorch");
    # torch-hub file names carry the first hex digits of the file's sha256
    "inception_legacy": {
        "file": "pt_inception-2015-12-05-6726825d.pth", "sha256_prefix": "6726825d",
        "urls": ["https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
                 "pt_inception-2015-12-05-6726825d.pth"],
        "config_key": "weights.inception_legacy",
    },
    # clean-fid's own TorchScript Inception (mode "clean")
    "inception_clean": {
        "file": "inception-2015-12-05.pt", "sha256_prefix": None,
        "urls": ["https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt"],
        "config_key": "weights.inception_clean",
    },
    # torchvision's ImageNet VGG16 (OMGD's perceptual/style network; torch-hub name carries its sha256 prefix)
    "vgg16": {
        "file": "vgg16-397923af.pth", "sha256_prefix": "397923af",
        "urls": ["https://download.pytorch.org/models/vgg16-397923af.pth"],
        "config_key": "weights.vgg16",
    },
    # DRN-D-105 trained on Cityscapes (fyu/drn); its go.yf.io link is dead: user-provided
    "drn_d_105_cityscapes": {
        "file": "drn-d-105_ms_cityscapes.pth", "sha256_prefix": None, "urls": [],
        "config_key": "weights.drn_d_105_cityscapes",
        "where": "fyu/drn's release drn-d-105_ms_cityscapes.pth (mirrored in OMGD's README Google Drive folder)",
    },
    # LPIPS v0.1 VGG linear heads (CAGC's KD); shipped inside the `lpips` package (BSD-2), taken from an
    # installed copy when there is one
    "lpips_vgg": {
        "file": "lpips-vgg-v0.1.pth",
        "sha256_prefix": "a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868",
        "urls": ["https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/vgg.pth"],
        "package": ("lpips", "weights/v0.1/vgg.pth"),
        "config_key": "weights.lpips_vgg",
    },
    # BiSeNet face parsing (CAGC's content of interest); only on Google Drive: user-provided
    "bisenet_face": {
        "file": "79999_iter.pth", "sha256_prefix": None, "urls": [],
        "config_key": "weights.bisenet_face",
        "where": ("79999_iter.pth of zllrunning/face-parsing.PyTorch (its README's Google Drive link; also "
                  "committed in lychenyoko/content-aware-gan-compression)"),
    },
}


# clean-fid FID mode -> the WEIGHTS entry of its Inception network
FID_WEIGHTS = {"legacy_pytorch": "inception_legacy", "clean": "inception_clean"}


def weights_file(name: str) -> str:
    """resources/weights/<file> of a WEIGHTS entry (what the metric_weights rule writes)."""
    return f"resources/weights/{WEIGHTS[name]['file']}"


def _get(table: dict, name: str, what: str) -> dict:
    if name not in table:
        raise ValueError(f"unknown {what} {name!r}; choose one of {sorted(table)}")
    return table[name]


def check_layout(root: Path, layout: list[str], name: str) -> None:
    missing = [d for d in layout if not (root / d).is_dir() or not any((root / d).iterdir())]
    if missing:
        raise ValueError(f"dataset {name} at {root} lacks the folders {missing} (expected {layout})")


def fetch_dataset(name: str, out: Path, cache: Path, manual_dir: Path | None = None, log=print) -> Path:
    """Download (or take from ``manual_dir``), verify and extract a paper dataset into ``out``."""
    d = _get(DATASETS, name, "dataset")
    out, cache = Path(out), Path(cache)
    if "manual_one_of" in d:                      # any one of several archives (the first present)
        manual_dir = Path(manual_dir or cache)
        present = [f for f in d["manual_one_of"] if (manual_dir / f).is_file()]
        if not present:
            raise FileNotFoundError(f"{name} cannot be downloaded automatically ({d['note']}): put one of "
                                    f"{', '.join(d['manual_one_of'])} in {manual_dir}/, then re-run")
        d = {**d, "manual": present[:1], "layout": [d["layout_of"][present[0]]]}
    if "manual" in d:
        manual_dir = Path(manual_dir or cache)
        missing = [f for f in d["manual"] if not (manual_dir / f).is_file()]
        if missing:
            raise FileNotFoundError(
                f"{name} cannot be downloaded automatically ({d['note']}): download "
                f"{' and '.join(d['manual'])} and put them in {manual_dir}/ (missing: {', '.join(missing)}), "
                "then re-run")
        tmp = out.with_name(f".{out.name}.parts")
        for f in d["manual"]:
            safe_extract(manual_dir / f, tmp / Path(f).stem)
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.exists():
            shutil.rmtree(out)
        out.mkdir()
        for f in d["manual"]:
            for child in (tmp / Path(f).stem).iterdir():
                if child.name != ".complete":
                    os.replace(child, out / child.name)
        shutil.rmtree(tmp, ignore_errors=True)
        check_layout(out, d["layout"], name)
        (out / ".complete").write_text(" ".join(d["manual"]) + "\n")
        return out
    archive = cache / d["archive"]
    digest = download(d["urls"], archive, sha256=d.get("sha256"), allow_http=d.get("allow_http", False), log=log)
    log(f"{archive.name}: sha256 {digest}")
    safe_extract(archive, out, strip=d.get("strip"))
    try:
        check_layout(out, d["layout"], name)
    except ValueError:
        (out / ".complete").unlink(missing_ok=True)
        raise
    return out


def _package_file(w: dict) -> Path | None:
    """The copy of a weights file an installed package ships (``package``: (module, relative path))."""
    if "package" not in w:
        return None
    import importlib.util

    module, rel = w["package"]
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin:
        return None
    f = Path(spec.origin).parent / rel
    return f if f.is_file() else None


def fetch_weights(name: str, out: Path, user_path: str | None = None, log=print) -> Path:
    """Put weight file ``name`` at ``out``: copied from ``user_path`` (offline nodes) or downloaded."""
    w = _get(WEIGHTS, name, "weights")
    out = Path(out)
    how = (f"either let this rule download it (needs network; {w['urls'][0]}) or set "
           if w["urls"] else f"get {w.get('where', w['file'])} and set ")
    how += f"the config key {w['config_key']}: /path/to/{w['file']} (for offline cluster nodes)"
    src = Path(user_path) if user_path else _package_file(w)   # the user's copy, else an installed package's
    if user_path and not src.is_file():
        raise FileNotFoundError(f"{w['config_key']} points to {src}, which does not exist; {how}")
    if src is not None:
        tmp = out.with_name(out.name + ".part")
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, tmp)
        os.replace(tmp, out)
        if not user_path:
            log(f"{w['file']}: copied from the installed package ({src})")
    elif not w["urls"]:
        raise FileNotFoundError(f"weights file {out} ({w['file']}) is missing: {how}")
    else:
        try:
            download(w["urls"], out, log=log)
        except OSError as e:
            raise FileNotFoundError(f"weights file {out} ({w['file']}) is missing and could not be downloaded "
                                    f"({type(e).__name__}): {how}") from None
    prefix = w.get("sha256_prefix")
    if prefix:
        digest = sha256_file(out)
        if not digest.startswith(prefix):
            out.unlink()
            raise ValueError(f"{w['file']}: sha256 {digest} does not start with {prefix} (its name's checksum); "
                             "deleted - wrong or corrupt file")
    return out
