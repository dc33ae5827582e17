"""scripts/golden.py: the smoke preset's pinned metrics - identical passes, small drift warns, a changed value,
a missing or an unpinned run fails."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(*args):
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "golden.py"), *map(str, args)],
                          capture_output=True, text=True, timeout=60)


def _metric(results, rel, value):
    p = results / rel / "metrics.json"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps({"metric": {"name": "FD-FMNIST", "value": value}}))


def test_golden_check_and_update(tmp_path):
    res, pins = tmp_path / "results", tmp_path / "pins.json"
    _metric(res, "runs/a/omgd/none_lam0/seed0", 12.345678901234)
    _metric(res, "teachers/a/original", 7.5)
    assert _run("update", res, pins).returncode == 0
    assert json.loads(pins.read_text())["values"]["teachers/a/original/metrics.json"] == 7.5
    ok = _run("check", res, pins)
    assert ok.returncode == 0 and "2 of 2 pinned metrics identical" in ok.stdout
    _metric(res, "teachers/a/original", 7.5 * (1 + 5e-4))                 # drift within rtol: a warning
    warn = _run("check", res, pins)
    assert warn.returncode == 0 and "1 within rtol" in warn.stdout
    _metric(res, "teachers/a/original", 7.6)                               # a changed number fails
    bad = _run("check", res, pins)
    assert bad.returncode == 1 and "teachers/a/original/metrics.json: pinned 7.5, got 7.6" in bad.stderr
    _metric(res, "teachers/a/original", 7.5)
    _metric(res, "runs/a/omgd/vem_lam0.1/seed0", 11.0)                     # a run not pinned fails
    assert "not pinned" in _run("check", res, pins).stderr
    (res / "runs/a/omgd/none_lam0/seed0/metrics.json").unlink()           # a pinned run missing fails
    assert "not produced" in _run("check", res, pins).stderr
    assert _run("check", tmp_path / "empty", pins).returncode == 1


def test_a_machine_kind_uses_its_own_pins(tmp_path):
    sys.path.insert(0, str(ROOT / "scripts"))
    from golden import machine

    res, pins = tmp_path / "results", tmp_path / "pins.json"
    _metric(res, "teachers/a/original", 7.5)
    _metric(res, "teachers/b/original", 3.0)
    assert _run("update", res, pins).returncode == 0
    _metric(res, "teachers/a/original", 7.6)                 # this kind of machine computes 7.6
    assert _run("check", res, pins).returncode == 1
    assert _run("update-machine", res, pins).returncode == 0
    data = json.loads(pins.read_text())
    assert data["values"]["teachers/a/original/metrics.json"] == 7.5            # the shared pins stay
    assert data["profiles"][machine()]["teachers/a/original/metrics.json"] == 7.6
    ok = _run("check", res, pins)
    assert ok.returncode == 0 and f"machine kind {machine()!r}: its own pins for 2 metrics" in ok.stdout
    data["profiles"] = {"OtherVendor AVX2": data["profiles"].pop(machine())}     # another kind's pins only
    pins.write_text(json.dumps(data))
    other = _run("check", res, pins)
    assert other.returncode == 1 and "no pins of its own" in other.stdout and "pinned 7.5, got 7.6" in other.stderr
    assert _run("update", res, pins).returncode == 0 and "profiles" not in json.loads(pins.read_text())
