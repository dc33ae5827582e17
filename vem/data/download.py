"""Downloads that survive the real world: mirrors, resume, pinned checksums, safe extraction.

- :func:`download` tries each mirror in turn; bytes land in ``<dest>.part`` and an interrupted transfer
  resumes with an HTTP ``Range`` request (a server that ignores it restarts the file). Only a file whose
  SHA-256 matches the pinned value is renamed to ``dest``; a mismatch deletes the partial file and names
  the file, the expected and the actual checksum. Without a pinned value the checksum is computed,
  recorded next to the file (``<dest>.sha256``) and a warning says so.
- Plain ``http://`` is refused except for loopback hosts (tests) or with ``allow_http=True`` for a
  mirror that only exists over HTTP - then the pinned checksum is what protects the data.
- :func:`safe_extract` unpacks a zip or tar into a temporary sibling folder, refusing absolute paths,
  ``..`` components and links that leave the folder, then renames it into place and writes a
  ``.complete`` marker: a half-extracted folder never looks complete.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
import zipfile
from pathlib import Path, PurePosixPath

CHUNK = 1 << 20
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class DownloadError(OSError):
    """No mirror delivered the file (the message lists each mirror's failure)."""


class ChecksumError(ValueError):
    """The downloaded bytes are not the pinned file."""


class UnsafeArchiveError(ValueError):
    """An archive member would land outside the extraction folder."""


def sha256_file(path, chunk: int = CHUNK) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def check_url(url: str, allow_http: bool = False) -> None:
    u = urllib.parse.urlparse(url)
    if u.scheme == "https" or u.scheme == "file":
        return
    if u.scheme == "http" and (allow_http or u.hostname in LOOPBACK):
        return
    raise ValueError(f"refusing to download {url!r}: only https:// URLs (http:// only for loopback hosts or "
                     "mirrors marked allow_http, whose checksum is pinned)")


def _fetch(url: str, part: Path, timeout: float, log) -> None:
    have = part.stat().st_size if part.is_file() else 0
    req = urllib.request.Request(url, headers={"User-Agent": "vem-harness"})
    if have:
        req.add_header("Range", f"bytes={have}-")
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)  # noqa: S310 - scheme checked by check_url
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # range beyond the end: the part file is already whole
            return
        raise
    with resp:
        status = getattr(resp, "status", 200)
        if have and status != 206:
            log(f"{url}: server ignored the resume request (HTTP {status}); restarting the file")
            have = 0
        total = resp.headers.get("Content-Length")
        total = int(total) + have if total is not None else None
        mode = "ab" if have else "wb"
        done, t_last = have, time.time()
        with open(part, mode) as f:
            while True:
                block = resp.read(CHUNK)
                if not block:
                    break
                f.write(block)
                done += len(block)
                if time.time() - t_last > 5:
                    pct = f" ({100 * done / total:.0f} %)" if total else ""
                    log(f"{part.name}: {done / 1e6:.1f} MB{pct}")
                    t_last = time.time()
        if total is not None and done < total:
            raise DownloadError(f"{url}: connection closed at {done} of {total} bytes (re-run to resume)")


def download(urls, dest, sha256: str | None = None, timeout: float = 60.0, allow_http: bool = False,
             log=None) -> str:
    """Fetch ``dest`` from the first working mirror in ``urls``; returns its SHA-256."""
    log = log or (lambda m: print(m, file=sys.stderr, flush=True))
    urls = [urls] if isinstance(urls, str) else list(urls)
    if not urls:
        raise ValueError(f"no URL given for {dest}")
    for u in urls:
        check_url(u, allow_http)
    dest = Path(dest)
    if dest.is_file():
        digest = sha256_file(dest)
        if sha256 and digest != sha256:
            raise ChecksumError(f"{dest}: existing file has sha256 {digest}, expected {sha256}; delete it and re-run")
        return digest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    errors = []
    for url in urls:
        try:
            if url.startswith("file://"):
                shutil.copyfile(urllib.parse.urlparse(url).path, part)
            else:
                _fetch(url, part, timeout, log)
            break
        except OSError as e:  # urllib's URLError / HTTPError included
            errors.append(f"{url}: {type(e).__name__}: {e}")
            log(f"mirror failed: {errors[-1]}")
    else:
        raise DownloadError(f"could not download {dest.name}; " + " | ".join(errors)
                            + (f"; partial data kept in {part} (re-run to resume)" if part.is_file() else ""))
    digest = sha256_file(part)
    if sha256 and digest != sha256:
        part.unlink(missing_ok=True)
        raise ChecksumError(f"{dest.name}: checksum mismatch: expected sha256 {sha256}, got {digest} "
                            f"(from {url}); the download was deleted")
    if not sha256:
        warnings.warn(f"{dest.name}: no pinned checksum; recorded sha256 {digest} in {dest.name}.sha256 - pin it "
                      "in the dataset registry", stacklevel=2)
        Path(str(dest) + ".sha256").write_text(f"{digest}  {dest.name}\n")
    os.replace(part, dest)
    return digest


# --------------------------------------------------------------------------------------------------
def _check_member(name: str, root: Path) -> Path:
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts or (p.parts and ":" in p.parts[0]):
        raise UnsafeArchiveError(f"archive member {name!r} would be written outside the target folder")
    target = (root / p).resolve()
    if not str(target).startswith(str(root.resolve()) + os.sep) and target != root.resolve():
        raise UnsafeArchiveError(f"archive member {name!r} would be written outside the target folder")
    return target


def safe_extract(archive, out_dir, strip: str | None = None) -> Path:
    """Extract a zip/tar(.gz) into ``out_dir`` safely and atomically; returns ``out_dir``.

    ``strip``: a leading folder to remove from member names (e.g. ``"horse2zebra/"``)."""
    archive, out_dir = Path(archive), Path(out_dir)
    if (out_dir / ".complete").is_file():
        return out_dir
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                bad = z.testzip()
                if bad is not None:
                    raise ValueError(f"{archive}: corrupt member {bad!r}")
                for info in z.infolist():
                    _check_member(info.filename, tmp)
                    mode = (info.external_attr >> 16) & 0o170000
                    if mode == 0o120000:
                        raise UnsafeArchiveError(f"archive member {info.filename!r} is a symbolic link")
                z.extractall(tmp)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as t:
                members = t.getmembers()
                for m in members:
                    _check_member(m.name, tmp)
                    if m.issym() or m.islnk():
                        _check_member(str(PurePosixPath(m.name).parent / m.linkname) if m.issym()
                                      else m.linkname, tmp)
                    if m.isdev():
                        raise UnsafeArchiveError(f"archive member {m.name!r} is a device file")
                t.extractall(tmp, filter="data")
        else:
            raise ValueError(f"{archive} is neither a zip nor a tar archive (truncated download?)")
        src = tmp / strip if strip else tmp
        if strip and not src.is_dir():
            raise ValueError(f"{archive} has no top folder {strip!r}")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(src, out_dir)
        (out_dir / ".complete").write_text(f"{archive.name}\n")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError) as e:
        raise ValueError(f"{archive}: unreadable archive ({type(e).__name__}: {e})") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir
