"""Fashion-MNIST IDX reading/fetching and the mini task builders, on small synthetic data.

Every check has an answer known independently of the code: bytes written by hand in the IDX layout,
hashlib digests, and synthetic images whose origin (train / test, index, class) can be looked up from
their content, so a split leak, a wrong class or a wrong label map shows up as a failed lookup.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import sys

import numpy as np
import pytest
import torch

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

from vem.data import fmnist  # noqa: E402
from vem.data import tasks as T  # noqa: E402

INK = 40


# --------------------------------------------------------------------------------------------------
# IDX files


def idx_bytes(arr: np.ndarray) -> bytes:
    """The IDX layout written independently: magic 0x0000 08 <ndim>, big-endian uint32 dims, data."""
    arr = np.asarray(arr, dtype=np.uint8)
    magic = {1: 0x00000801, 3: 0x00000803}[arr.ndim]
    head = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return head + arr.tobytes()


def write_idx(path, arr: np.ndarray, gz: bool):
    data = idx_bytes(arr)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def write_fmnist_dir(d, images_tr, labels_tr, images_te, labels_te, gz=(True, True, True, True)):
    d.mkdir(parents=True, exist_ok=True)
    arrays = {"train_images": images_tr, "train_labels": labels_tr, "test_images": images_te,
              "test_labels": labels_te}
    for (key, arr), g in zip(arrays.items(), gz):
        write_idx(d / (fmnist.FILES[key] + (".gz" if g else "")), arr, g)
    return d


@pytest.fixture
def no_default_dirs(monkeypatch, tmp_path):
    """No $FMNIST_DIR and no Debian folder: only what a test passes explicitly can be found."""
    monkeypatch.delenv("FMNIST_DIR", raising=False)
    monkeypatch.setattr(fmnist, "DEBIAN_DIR", tmp_path / "no_such_debian_dir")


@pytest.mark.parametrize("gz", [True, False])
def test_read_idx_round_trip(tmp_path, gz):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (7, 28, 5), dtype=np.uint8)  # non-square: dims must not be swapped
    labels = rng.integers(0, 10, 7, dtype=np.uint8)
    pi = write_idx(tmp_path / "img", images, gz)
    pl = write_idx(tmp_path / "lab", labels, gz)
    got_i, got_l = fmnist.read_idx(pi), fmnist.read_idx(pl)
    assert got_i.dtype == np.uint8 and got_i.shape == (7, 28, 5)
    np.testing.assert_array_equal(got_i, images)
    np.testing.assert_array_equal(got_l, labels)
    assert got_l.shape == (7,)


@pytest.mark.parametrize("gz", [True, False])
def test_read_idx_truncated(tmp_path, gz):
    images = np.arange(3 * 4 * 4, dtype=np.uint8).reshape(3, 4, 4)
    data = idx_bytes(images)[:-1]
    p = tmp_path / "short-images-idx3-ubyte"
    p.write_bytes(gzip.compress(data) if gz else data)
    with pytest.raises(ValueError, match="truncated") as e:
        fmnist.read_idx(p)
    assert p.name in str(e.value)


def test_read_idx_bad_magic_and_tiny(tmp_path):
    p = tmp_path / "bad"
    p.write_bytes((0x00000C03).to_bytes(4, "big") + (0).to_bytes(12, "big"))
    with pytest.raises(ValueError, match="magic"):
        fmnist.read_idx(p)
    p.write_bytes(b"\x00\x00\x08")
    with pytest.raises(ValueError, match="not an IDX"):
        fmnist.read_idx(p)


@pytest.mark.parametrize("how", ["bad_crc", "cut_stream", "bad_deflate"])
def test_read_idx_corrupt_gzip(tmp_path, how):
    good = gzip.compress(idx_bytes(np.zeros((2, 4, 4), np.uint8)))
    bad = {"bad_crc": good[:-8] + b"\0" * 8,             # BadGzipFile (OSError)
           "cut_stream": good[:-12],                     # EOFError
           "bad_deflate": good[:10] + b"\xff" * 40}[how]  # zlib.error
    p = tmp_path / "corrupt.gz"
    p.write_bytes(bad)
    with pytest.raises(ValueError, match="corrupt gzip") as e:
        fmnist.read_idx(p)
    assert str(p) in str(e.value)


def test_missing_data_names_file_and_fix(tmp_path, monkeypatch, no_default_dirs):
    empty, env_empty = tmp_path / "empty", tmp_path / "env_empty"
    empty.mkdir()
    env_empty.mkdir()
    monkeypatch.setenv("FMNIST_DIR", str(env_empty))
    for call in (lambda: fmnist.find_file("train_images", empty), lambda: fmnist.load(empty)):
        with pytest.raises(fmnist.DataMissingError) as e:
            call()
        msg = str(e.value)
        assert "train-images-idx3-ubyte.gz" in msg
        assert "apt-get install dataset-fashion-mnist" in msg
        assert str(empty) in msg and str(env_empty) in msg  # every place looked in is named
        assert isinstance(e.value, FileNotFoundError)


def test_find_file_lookup_order_and_layouts(tmp_path, monkeypatch, no_default_dirs):
    rng = np.random.default_rng(1)
    tr, te = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8), rng.integers(0, 256, (3, 28, 28), dtype=np.uint8)
    ltr, lte = np.arange(5, dtype=np.uint8), np.arange(3, dtype=np.uint8)
    # torchvision's layout: plain files under FashionMNIST/raw/, found through $FMNIST_DIR
    tv = write_fmnist_dir(tmp_path / "tv" / "FashionMNIST" / "raw", tr, ltr, te, lte, gz=(False,) * 4)
    monkeypatch.setenv("FMNIST_DIR", str(tmp_path / "tv"))
    assert fmnist.find_file("test_labels") == tv / "t10k-labels-idx1-ubyte"
    fm = fmnist.load()
    np.testing.assert_array_equal(fm["train_images"], tr)
    np.testing.assert_array_equal(fm["test_labels"], lte)
    # an explicit directory wins over $FMNIST_DIR
    other = write_fmnist_dir(tmp_path / "explicit", tr[::-1], ltr, te, lte)
    assert fmnist.find_file("train_images", other) == other / "train-images-idx3-ubyte.gz"
    np.testing.assert_array_equal(fmnist.load(other)["train_images"], tr[::-1])


def test_load_rejects_count_mismatch(tmp_path, no_default_dirs):
    im = np.zeros((4, 28, 28), np.uint8)
    d = write_fmnist_dir(tmp_path / "d", im, np.zeros(3, np.uint8), im, np.zeros(4, np.uint8))
    with pytest.raises(ValueError, match="4 images but 3 labels"):
        fmnist.load(d)


def test_fetch_copies_atomically_with_digests(tmp_path, no_default_dirs):
    rng = np.random.default_rng(2)
    tr, te = rng.integers(0, 256, (6, 28, 28), dtype=np.uint8), rng.integers(0, 256, (2, 28, 28), dtype=np.uint8)
    ltr, lte = rng.integers(0, 10, 6, dtype=np.uint8), rng.integers(0, 10, 2, dtype=np.uint8)
    # mixed source: two gzipped, two plain (the plain ones must come out gzipped)
    src = write_fmnist_dir(tmp_path / "src", tr, ltr, te, lte, gz=(True, False, True, False))
    out = tmp_path / "out" / "fmnist"
    digests = fmnist.fetch(out, src)
    names = sorted(f + ".gz" for f in fmnist.FILES.values())
    assert sorted(digests) == names
    assert sorted(p.name for p in out.iterdir()) == names  # no *.tmp, no _download left behind
    for name, digest in digests.items():
        assert digest == hashlib.sha256((out / name).read_bytes()).hexdigest()
    assert (out / "train-images-idx3-ubyte.gz").read_bytes() == (src / "train-images-idx3-ubyte.gz").read_bytes()
    fm = fmnist.load(out)
    for key, arr in (("train_images", tr), ("train_labels", ltr), ("test_images", te), ("test_labels", lte)):
        np.testing.assert_array_equal(fm[key], arr)
    # idempotent: fetching again gives the same digests
    assert fmnist.fetch(out, src) == digests


def test_fetch_missing_without_download_raises(tmp_path, no_default_dirs):
    (tmp_path / "src").mkdir()
    with pytest.raises(fmnist.DataMissingError):
        fmnist.fetch(tmp_path / "out", tmp_path / "src", download=False)


def test_fetch_rejects_corrupt_source_and_leaves_nothing(tmp_path, no_default_dirs):
    im = np.zeros((2, 28, 28), np.uint8)
    lab = np.zeros(2, np.uint8)
    src = write_fmnist_dir(tmp_path / "src", im, lab, im, lab)
    p = src / "train-images-idx3-ubyte.gz"
    p.write_bytes(gzip.compress(idx_bytes(im)[:-5]))
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="truncated"):
        fmnist.fetch(out, src)
    assert not (out / "train-images-idx3-ubyte.gz").exists()


# --------------------------------------------------------------------------------------------------
# task builders

N_TR, N_TE = 600, 200


def _synthetic_images(rng, n):
    """Dark noise (< INK) with a bright rectangle: canny finds edges, the ink threshold is exercised,
    and the noise makes every image (and its 16x16 shrink) unique."""
    x = rng.integers(0, 30, (n, 28, 28)).astype(np.uint8)
    for i in range(n):
        r0, c0 = rng.integers(2, 10, 2)
        r1, c1 = r0 + rng.integers(8, 16), c0 + rng.integers(8, 16)
        x[i, r0:r1, c0:c1] = rng.integers(60, 256)
    return x


@pytest.fixture(scope="module")
def fm():
    rng = np.random.default_rng(123)
    return {"train_images": _synthetic_images(rng, N_TR), "train_labels": (np.arange(N_TR) % 10).astype(np.uint8),
            "test_images": _synthetic_images(rng, N_TE), "test_labels": (np.arange(N_TE) % 10).astype(np.uint8)}


def _pad(x):
    return np.pad(x, ((0, 0), (2, 2), (2, 2)))


def _keys(arr):
    return [a.tobytes() for a in arr]


def _check_common(out):
    assert sorted(out) == sorted(f"{s}_{side}" for s in ("train", "val", "test") for side in "AB")
    for k, v in out.items():
        assert v.dtype == np.uint8 and v.ndim == 3 and v.shape[1:] == (32, 32), k


def test_edges2shoes_sources_and_edges(fm):
    out = T.build_task("fmnist_edges2shoes", fm, seed=0)
    _check_common(out)
    foot_tr = np.isin(fm["train_labels"], [5, 7, 9])
    foot_te = np.isin(fm["test_labels"], [5, 7, 9])
    n_foot = int(foot_tr.sum())
    n_val = int(round(n_foot / 12))
    assert len(out["val_B"]) == n_val and len(out["train_B"]) == n_foot - n_val
    # train and val partition the padded train footwear; test is the padded test footwear, in order
    tr_keys, val_keys = set(_keys(out["train_B"])), set(_keys(out["val_B"]))
    assert len(tr_keys) == len(out["train_B"]) and not tr_keys & val_keys
    assert tr_keys | val_keys == set(_keys(_pad(fm["train_images"][foot_tr])))
    np.testing.assert_array_equal(out["test_B"], _pad(fm["test_images"][foot_te]))
    assert not set(_keys(_pad(fm["test_images"]))) & (tr_keys | val_keys)
    # padding: a 2-pixel zero border around the 28x28 item
    for k in ("train_B", "test_B"):
        assert not out[k][:, :2].any() and not out[k][:, -2:].any()
        assert not out[k][:, :, :2].any() and not out[k][:, :, -2:].any()
    # A = Canny edges of B: binary, present in every image, and exactly skimage's canny
    from skimage.feature import canny

    for split in ("train", "val", "test"):
        a, b = out[f"{split}_A"], out[f"{split}_B"]
        assert a.shape == b.shape
        assert set(np.unique(a)) <= {0, 255}
        assert (a.reshape(len(a), -1).max(1) == 255).all()
    for i in (0, 5):
        ref = canny(out["test_B"][i].astype(np.float32) / 255.0, sigma=1.0)
        np.testing.assert_array_equal(out["test_A"][i] == 255, ref)


def _origin_table(fm):
    """16x16 shrink (bytes) -> ('train'|'test', index), from an independent area average."""
    table = {}
    for split in ("train", "test"):
        x = torch.from_numpy(fm[f"{split}_images"].astype(np.float32)).unsqueeze(1)
        small = torch.nn.functional.adaptive_avg_pool2d(x, 16).squeeze(1).round().clamp(0, 255)
        for i, s in enumerate(small.numpy().astype(np.uint8)):
            table[s.tobytes()] = (split, i)
    return table


def test_scenes_labels_sources_and_splits(fm):
    out = T.build_task("fmnist_scenes", fm, seed=0)
    _check_common(out)
    assert {k: len(v) for k, v in out.items()} == {"train_A": 12000, "train_B": 12000, "val_A": 1000,
                                                   "val_B": 1000, "test_A": 2000, "test_B": 2000}
    table = _origin_table(fm)
    used: dict[str, set] = {"train": set(), "val": set(), "test": set()}
    n_empty = n_quadrants = 0
    for split in ("train", "val", "test"):
        maps, scenes = out[f"{split}_A"], out[f"{split}_B"]
        assert maps.max() <= 5
        # label > 0 exactly where the scene has ink
        np.testing.assert_array_equal(maps > 0, scenes > INK)
        for i in range(0, len(maps), 7 if split == "train" else 1):  # a subset of train keeps it fast
            for cy in range(2):
                for cx in range(2):
                    q = (i, slice(16 * cy, 16 * cy + 16), slice(16 * cx, 16 * cx + 16))
                    patch, m = scenes[q], maps[q]
                    n_quadrants += 1
                    if not patch.any():
                        n_empty += 1
                        assert not m.any()
                        continue
                    src, j = table[patch.tobytes()]  # KeyError: the patch is no shrunk input item
                    assert src == ("test" if split == "test" else "train"), (split, src)
                    used[split].add(j)
                    sup = T.FMNIST_TO_SUPER[fm[f"{src}_labels"][j]]
                    np.testing.assert_array_equal(m, np.where(patch > INK, sup, 0))
    # val items are held out of train; 1/12 of the train items are val
    assert not used["train"] & used["val"]
    assert len(used["val"]) == round(N_TR / 12)
    assert len(used["train"]) == N_TR - round(N_TR / 12)
    # about 15 % of the quadrants are empty (p_item = 0.85)
    assert 0.12 < n_empty / n_quadrants < 0.18
    # the mapping itself: tops merged, footwear merged
    assert T.FMNIST_TO_SUPER.tolist() == [1, 2, 1, 3, 1, 4, 1, 4, 5, 4]
    assert [T.SUPER_CLASSES[s] for s in T.FMNIST_TO_SUPER[[0, 1, 3, 7, 8, 9]]] == \
        ["top", "trouser", "dress", "footwear", "bag", "footwear"]


@pytest.mark.parametrize("task,a_cls,b_cls", [("fmnist_sneaker2boot", 7, 9), ("fmnist_pullover2coat", 2, 4)])
def test_unpaired_classes_and_splits(fm, task, a_cls, b_cls):
    out = T.build_task(task, fm, seed=0)
    _check_common(out)
    for side, cls in (("A", a_cls), ("B", b_cls)):
        tr_cls = _pad(fm["train_images"][fm["train_labels"] == cls])
        te_cls = _pad(fm["test_images"][fm["test_labels"] == cls])
        tr, val = set(_keys(out[f"train_{side}"])), set(_keys(out[f"val_{side}"]))
        assert not tr & val
        assert tr | val == set(_keys(tr_cls))
        assert len(out[f"val_{side}"]) == round(len(tr_cls) / 12)
        np.testing.assert_array_equal(out[f"test_{side}"], te_cls)
    # nothing of the other domain leaks into a side
    assert not set(_keys(out["train_A"])) & set(_keys(out["train_B"]))


@pytest.mark.parametrize("task", ["fmnist_edges2shoes", "fmnist_sneaker2boot"])
def test_same_seed_same_arrays(fm, task):
    a, b, c = (T.build_task(task, fm, seed=s) for s in (3, 3, 4))
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    # another seed draws another val split (test is fixed)
    assert not np.array_equal(a["val_B"], c["val_B"])
    np.testing.assert_array_equal(a["test_B"], c["test_B"])


def test_task_ids(fm):
    with pytest.raises(ValueError, match="paper-scale"):
        T.build_task("horse2zebra", fm)
    with pytest.raises(ValueError) as e:
        T.get_task("nope")
    for tid in T.TASKS:
        assert tid in str(e.value)
    assert "'nope'" in str(e.value)
    assert T.MINI_TASKS == ["fmnist_edges2shoes", "fmnist_scenes", "fmnist_sneaker2boot", "fmnist_pullover2coat",
                            "fmnist_uncond", "fmnist_uncond_sg2"]


def test_mini_tasks_train_inputs_are_what_build_task_makes_of_fashion_mnist(monkeypatch):
    """TaskSpec.train_inputs (what the dry run checks CRD's nce_k against) = the training inputs build_task
    makes of Fashion-MNIST's 60,000 train images (6,000 per class); blank images, edges skipped."""
    monkeypatch.setattr(T, "canny_edges", lambda x: x)
    fm = {"train_images": np.zeros((60000, 28, 28), np.uint8), "train_labels": np.repeat(np.arange(10), 6000),
          "test_images": np.zeros((10000, 28, 28), np.uint8), "test_labels": np.repeat(np.arange(10), 1000)}
    for tid in T.MINI_TASKS:
        out = T.build_task(tid, fm)
        side = "A" if "train_A" in out else "B"       # an unconditional task: one latent per train image
        assert len(out[f"train_{side}"]) == T.get_task(tid).train_inputs, tid
    assert all(T.TASKS[t].train_inputs > 0 for t in T.TASKS)


# --------------------------------------------------------------------------------------------------
# tensors


def test_image_tensor_round_trip_within_one_level():
    """uint8 -> [-1, 1] -> uint8: to_uint8 truncates (tensor2im), so a level whose float32 image lands a hair
    below it comes back one lower; never more, never higher; the extremes are exact."""
    spec = T.get_task("fmnist_sneaker2boot")
    x = np.arange(256, dtype=np.uint8).reshape(1, 16, 16).repeat(3, 0)
    for side in "AB":
        t = T.to_tensor(x, spec, side)
        assert t.shape == (3, 1, 16, 16) and t.dtype == torch.float32
        assert t.min().item() == -1.0 and t.max().item() == 1.0
        back = T.to_uint8(t).astype(int)
        assert back.shape == x.shape and set(np.unique(x - back)) <= {0, 1}
        assert back.min() == 0 and back.max() == 255
    # out-of-range generator outputs saturate
    np.testing.assert_array_equal(T.to_uint8(torch.tensor([[[[-3.0, 7.0]]]])), np.array([[[0, 255]]], np.uint8))


def test_scene_label_maps_one_hot():
    spec = T.get_task("fmnist_scenes")
    rng = np.random.default_rng(0)
    maps = rng.integers(0, 6, (4, 32, 32)).astype(np.uint8)
    t = T.to_tensor(maps, spec, "A")
    assert t.shape == (4, 6, 32, 32)
    assert set(t.unique().tolist()) == {-1.0, 1.0}
    assert ((t > 0).sum(1) == 1).all()  # exactly one class "on" per pixel
    np.testing.assert_array_equal(t.argmax(1).numpy(), maps)
    # the scene side is an image, not a label map
    assert T.to_tensor(maps * 40, spec, "B").shape == (4, 1, 32, 32)


@pytest.mark.parametrize("task", ["fmnist_scenes", "fmnist_sneaker2boot", "fmnist_uncond"])
def test_task_data_rows_convert_when_indexed_as_the_whole_split_would(fm, task, tmp_path):
    """``TaskData.tensor(split, side)[idx]`` converts only the indexed rows; every kind of index gives the values,
    dtype and strides (the one-hot maps' channels-last layout included: convolutions sum in layout order) of
    converting the whole split first."""
    from vem.data.taskdata import open_task_data
    from vem.utils import atomic_save_npz

    atomic_save_npz(tmp_path / "d.npz", **T.build_task(task, fm, seed=0), task=np.array(task))
    data = open_task_data(tmp_path / "d.npz", task)
    other = "fmnist_edges2shoes"         # another task's file is refused in one line (it would train on it)
    with pytest.raises(ValueError, match=f"d.npz is task {task}'s, not {other}'s"):
        open_task_data(tmp_path / "d.npz", other)
    for split in ("train", "test"):
        for side in ("B",) if task == "fmnist_uncond" else "AB":
            rows, whole = data.tensor(split, side), T.to_tensor(data.raw[f"{split}_{side}"], data.spec, side)
            assert len(rows) == len(whole) == data.n(split, side)
            for idx in (torch.randint(0, len(rows), (7,), generator=torch.Generator().manual_seed(0)),
                        np.arange(3), slice(1, 4), torch.tensor(2), 5, torch.arange(len(rows))):
                a, b = rows[idx], whole[idx]
                assert torch.equal(a, b) and a.dtype == b.dtype and a.stride() == b.stride(), (split, side, idx)
