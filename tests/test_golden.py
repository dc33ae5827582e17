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
