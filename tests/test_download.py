"""Downloads and extraction against a loopback HTTP server serving tiny synthetic archives (no network)."""

import hashlib
import io
import tarfile
import threading
import zipfile
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from vem.data.download import ChecksumError, DownloadError, UnsafeArchiveError, download, safe_extract


class _Handler(SimpleHTTPRequestHandler):
    """Serves a folder; honours Range; ``/cut/<name>`` sends half the file then drops the connection;
    ``/norange/<name>`` ignores Range."""

    requests: list = []

    def log_message(self, *a):
        pass

    def do_GET(self):  # noqa: N802
        type(self).requests.append((self.path, self.headers.get("Range")))
        mode, _, name = self.path.lstrip("/").partition("/")
        if mode not in ("ok", "cut", "norange"):
            self.send_error(404)
            return
        path = self.directory + "/" + name
        try:
            data = open(path, "rb").read()
        except OSError:
            self.send_error(404)
            return
        start = 0
        rng = self.headers.get("Range")
        if rng and mode != "norange":
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if mode == "cut":
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "srv"
    root.mkdir()
    _Handler.requests = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Handler, directory=str(root)))
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _zip_bytes(files: dict) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buf.getvalue()


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


ARCHIVE = _zip_bytes({"horse2zebra/trainA/a.jpg": b"A" * 3000, "horse2zebra/testB/b.jpg": b"B" * 5000})


def test_download_verifies_and_extracts(server, tmp_path):
    root, url = server
    (root / "h.zip").write_bytes(ARCHIVE)
    dest = tmp_path / "dl" / "h.zip"
    assert download([f"{url}/ok/h.zip"], dest, sha256=_sha(ARCHIVE)) == _sha(ARCHIVE)
    assert dest.read_bytes() == ARCHIVE and not (tmp_path / "dl" / "h.zip.part").exists()
    out = safe_extract(dest, tmp_path / "data" / "horse2zebra", strip="horse2zebra")
    assert (out / "trainA" / "a.jpg").read_bytes() == b"A" * 3000
    assert (out / ".complete").is_file()
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["horse2zebra"]  # no temp folder left


def test_corrupt_archive_is_rejected_naming_file_and_checksums(server, tmp_path):
    root, url = server
    corrupt = bytearray(ARCHIVE)
    corrupt[100] ^= 0xFF
    (root / "h.zip").write_bytes(bytes(corrupt))
    dest = tmp_path / "h.zip"
    with pytest.raises(ChecksumError) as e:
        download(f"{url}/ok/h.zip", dest, sha256=_sha(ARCHIVE))
    msg = str(e.value)
    assert "h.zip" in msg and _sha(ARCHIVE) in msg and _sha(bytes(corrupt)) in msg
    assert not dest.exists() and not (tmp_path / "h.zip.part").exists()


def test_interrupted_download_resumes_with_range(server, tmp_path):
    root, url = server
    (root / "h.zip").write_bytes(ARCHIVE)
    dest = tmp_path / "h.zip"
    with pytest.raises(DownloadError, match="re-run to resume"):
        download(f"{url}/cut/h.zip", dest, sha256=_sha(ARCHIVE))
    part = tmp_path / "h.zip.part"
    assert not dest.exists() and 0 < part.stat().st_size < len(ARCHIVE)
    have = part.stat().st_size
    download(f"{url}/ok/h.zip", dest, sha256=_sha(ARCHIVE))
    assert dest.read_bytes() == ARCHIVE
    assert _Handler.requests[-1] == ("/ok/h.zip", f"bytes={have}-")  # only the rest was fetched


def test_server_ignoring_range_restarts_the_file(server, tmp_path):
    root, url = server
    (root / "h.zip").write_bytes(ARCHIVE)
    (tmp_path / "h.zip.part").write_bytes(ARCHIVE[:1000])
    download(f"{url}/norange/h.zip", tmp_path / "h.zip", sha256=_sha(ARCHIVE))
    assert (tmp_path / "h.zip").read_bytes() == ARCHIVE


def test_mirrors_are_tried_in_order_and_unpinned_checksum_is_recorded(server, tmp_path):
    root, url = server
    (root / "h.zip").write_bytes(ARCHIVE)
    dest = tmp_path / "h.zip"
    with pytest.warns(UserWarning, match="no pinned checksum"):
        digest = download([f"{url}/ok/missing.zip", f"{url}/ok/h.zip"], dest)
    assert digest == _sha(ARCHIVE)
    assert (tmp_path / "h.zip.sha256").read_text().split()[0] == digest
    with pytest.raises(DownloadError, match="missing.zip.*404"):
        download([f"{url}/ok/missing.zip"], tmp_path / "other.zip")


def test_plain_http_is_refused_off_loopback(tmp_path):
    with pytest.raises(ValueError, match="only https"):
        download("http://example.org/x.zip", tmp_path / "x.zip", sha256="0" * 64)


@pytest.mark.parametrize("name", ["../evil.txt", "/etc/evil.txt", "a/../../evil.txt"])
def test_zip_path_traversal_is_refused(tmp_path, name):
    z = tmp_path / "bad.zip"
    z.write_bytes(_zip_bytes({"ok.txt": b"x", name: b"evil"}))
    with pytest.raises(UnsafeArchiveError, match="outside the target folder"):
        safe_extract(z, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "evil.txt").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["bad.zip"]


def test_tar_link_escaping_is_refused(tmp_path):
    t = tmp_path / "bad.tar.gz"
    with tarfile.open(t, "w:gz") as tf:
        info = tarfile.TarInfo("data/link")
        info.type = tarfile.SYMTYPE
        info.linkname = "../../etc/passwd"
        tf.addfile(info)
    with pytest.raises(UnsafeArchiveError):
        safe_extract(t, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_truncated_archive_is_named(tmp_path):
    z = tmp_path / "cut.zip"
    z.write_bytes(ARCHIVE[: len(ARCHIVE) // 2])
    with pytest.raises(ValueError, match="cut.zip"):
        safe_extract(z, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------------------------------
# the paper datasets / weights through the CLI, with the registry pointed at the loopback server
def _one_error_line(capsys):
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("vem: error: ")]
    assert len(lines) == 1, err
    return lines[0]


def test_dataset_command_downloads_verifies_and_checks_layout(server, tmp_path, monkeypatch, capsys):
    from vem.cli import main
    from vem.data import paper_datasets as pd_

    root, url = server
    files = {f"horse2zebra/{d}/{i}.jpg": bytes([i]) * 100 for d in ("trainA", "trainB", "testA", "testB")
             for i in range(2)}
    data = _zip_bytes(files)
    (root / "h2z.zip").write_bytes(data)
    entry = dict(pd_.DATASETS["horse2zebra"], urls=[f"{url}/ok/nothere.zip", f"{url}/ok/h2z.zip"], sha256=_sha(data))
    monkeypatch.setitem(pd_.DATASETS, "horse2zebra", entry)
    out = tmp_path / "datasets" / "horse2zebra"
    assert main(["dataset", "--name", "horse2zebra", "--out", str(out), "--cache", str(tmp_path / "dl")]) == 0
    assert (out / ".complete").is_file() and (out / "testB" / "1.jpg").read_bytes() == b"\x01" * 100
    # an archive without the expected folders is refused and not marked complete
    bad = _zip_bytes({"horse2zebra/trainA/0.jpg": b"x"})
    (root / "bad.zip").write_bytes(bad)
    monkeypatch.setitem(pd_.DATASETS, "horse2zebra", dict(entry, urls=[f"{url}/ok/bad.zip"], sha256=_sha(bad),
                                                          archive="bad.zip"))
    out2 = tmp_path / "datasets" / "h2"
    assert main(["dataset", "--name", "horse2zebra", "--out", str(out2), "--cache", str(tmp_path / "dl")]) == 2
    assert "lacks the folders" in _one_error_line(capsys)
    assert not (out2 / ".complete").exists()


def test_cityscapes_needs_manual_zips_and_says_what_and_where(tmp_path, capsys):
    from vem.cli import main

    manual = tmp_path / "manual"
    manual.mkdir()
    args = ["dataset", "--name", "cityscapes", "--out", str(tmp_path / "cityscapes"), "--manual-dir", str(manual)]
    assert main(args) == 2
    line = _one_error_line(capsys)
    assert "gtFine_trainvaltest.zip" in line and "leftImg8bit_trainvaltest.zip" in line and str(manual) in line
    assert "cityscapes-dataset.com" in line
    (manual / "gtFine_trainvaltest.zip").write_bytes(_zip_bytes({"gtFine/val/a/x_gtFine_labelIds.png": b"1"}))
    (manual / "leftImg8bit_trainvaltest.zip").write_bytes(_zip_bytes({"leftImg8bit/val/a/x_leftImg8bit.png": b"2"}))
    assert main(args) == 0
    out = tmp_path / "cityscapes"
    assert (out / ".complete").is_file() and (out / "gtFine" / "val" / "a" / "x_gtFine_labelIds.png").is_file()
    assert (out / "leftImg8bit" / "val" / "a" / "x_leftImg8bit.png").read_bytes() == b"2"


def test_missing_inception_weights_offline_is_one_message_with_both_ways(tmp_path, capsys, monkeypatch):
    import socket

    from vem.cli import main
    from vem.data import paper_datasets as pd_

    with socket.socket() as s:  # a loopback port nobody listens on = no network
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/pt_inception-2015-12-05-6726825d.pth"
    monkeypatch.setitem(pd_.WEIGHTS, "inception_legacy", dict(pd_.WEIGHTS["inception_legacy"], urls=[dead]))
    out = tmp_path / "weights" / "pt_inception-2015-12-05-6726825d.pth"
    assert main(["weights", "--name", "inception_legacy", "--out", str(out)]) == 2
    line = _one_error_line(capsys)
    assert str(out) in line and "download" in line and "weights.inception_legacy" in line
    assert not out.exists() and not list(out.parent.glob("*"))
    # a user-given file whose sha256 does not match the name's checksum prefix is refused
    fake = tmp_path / "fake.pth"
    fake.write_bytes(b"not inception")
    assert main(["weights", "--name", "inception_legacy", "--out", str(out), "--path", str(fake)]) == 2
    assert "6726825d" in _one_error_line(capsys) and not out.exists()
    # DRN-D-105 has no live URL: the message says where to get it and which key to set
    assert main(["weights", "--name", "drn_d_105_cityscapes", "--out", str(tmp_path / "drn.pth")]) == 2
    line = _one_error_line(capsys)
    assert "drn-d-105_ms_cityscapes.pth" in line and "weights.drn_d_105_cityscapes" in line
