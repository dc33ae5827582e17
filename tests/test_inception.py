"""Inception FID plumbing: weights only from the given file, never downloaded; a missing file says how to
provide it. (The real weights cannot be fetched here, so a randomly initialised network with the same
architecture stands in; the numbers are meaningless, the plumbing is what is tested.)"""

import socket

import numpy as np
import pytest
import torch

from benchmarks.stand_ins import stand_in_inception
from vem.eval import write_png_zip
from vem.metrics.inception import MODES, inception_extractor, zip_inception_features


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)


def test_legacy_mode_uses_the_given_file_offline(tmp_path, no_network, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_torch_home"))
    w = tmp_path / MODES["legacy_pytorch"]
    stand_in_inception(w)
    rng = np.random.default_rng(0)
    write_png_zip(rng.integers(0, 256, (3, 32, 32), dtype=np.uint8), tmp_path / "g.zip")
    feats = zip_inception_features(tmp_path / "g.zip", "legacy_pytorch", w, batch_size=3)
    assert feats.shape == (3, 2048) and np.isfinite(feats).all()
    again = zip_inception_features(tmp_path / "g.zip", "legacy_pytorch", w, batch_size=3)
    np.testing.assert_array_equal(feats, again)
    assert not (tmp_path / "empty_torch_home").exists()   # nothing was put into the user's hub cache
    # the same numbers as clean-fid's own extractor with the file in its hub cache (reference implementation)
    import shutil
    import zipfile

    from cleanfid import fid
    from cleanfid.features import build_feature_extractor

    hub = tmp_path / "th" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    shutil.copy(w, hub / w.name)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    ref_model = build_feature_extractor("legacy_pytorch", device=torch.device("cpu"), use_dataparallel=False)
    with zipfile.ZipFile(tmp_path / "g.zip") as z:
        files = sorted(z.namelist())
    ref = fid.get_files_features(files, model=ref_model, num_workers=0, batch_size=3, device=torch.device("cpu"),
                                 mode="legacy_pytorch", fdir=str(tmp_path / "g.zip"), verbose=False)
    np.testing.assert_allclose(feats, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", ["legacy_pytorch", "clean"])
def test_missing_weights_say_how_to_provide_them(tmp_path, no_network, mode):
    with pytest.raises(FileNotFoundError) as e:
        inception_extractor(mode, tmp_path / "nope.pth")
    msg = str(e.value)
    assert "nope.pth" in msg and f"resources/weights/{MODES[mode]}" in msg and "weights.inception_" in msg


def test_unknown_mode_is_named(tmp_path):
    with pytest.raises(ValueError, match="'legacy_tf'"):
        inception_extractor("legacy_tf", tmp_path / "x")
