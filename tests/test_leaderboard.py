"""The leaderboard page: built from metrics files, opened in a real headless Chromium (the distribution's
package, driven by Selenium through chromedriver): no console errors, sorting a column reorders the rows,
the filter hides rows, the thumbnails load; a screenshot is written to the test's folder and its path printed."""

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vem.leaderboard import render, rows

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


def _run(root: Path, task, method, addon, seed, value, ms, paper_task="horse2zebra"):
    d = root / "runs" / task / method / f"{addon}_lam{'0' if addon == 'none' else '0.1'}" / f"seed{seed}"
    if method == "original":
        d = root / "teachers" / task / "original"
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(abs(hash((method, addon, seed))) % 2**32)
    Image.fromarray(rng.integers(0, 256, (64, 64), dtype=np.uint8)).save(d / "samples.png")
    lat = {"eager_ms": ms * 1.5, "torchscript_ms": ms, "input": [1, 1, 32, 32], "threads": 1, "runs": 30,
           "cpu": "cpu", "torch": "x", "backends": ["eager", "torchscript"]}
    if method != "original":
        lat.update(speedup_torchscript=9.0 / ms, macs_ratio=4.0)
    rec = {"task": task, "scale": "mini", "paper_task": paper_task, "method": method, "addon": addon, "arms": [],
           "lambda_mi": None if addon == "none" else 0.1, "seed": None if method == "original" else seed,
           "metric": {"name": "FD-FMNIST", "value": value, "higher_is_better": False},
           "cost": {"macs": 1e6 if method != "original" else 4e6, "params": 1e4},
           "protocol": {"checkpoint_selection": "final"}, "latency": lat}
    (d / "metrics.json").write_text(json.dumps(rec))
    return d / "metrics.json"


@pytest.fixture()
def board(tmp_path):
    res = tmp_path / "results"
    paths = [_run(res, "fmnist_sneaker2boot", "original", "none", 0, 50.0, 9.0)]
    for seed in range(3):
        paths.append(_run(res, "fmnist_sneaker2boot", "omgd", "none", seed, 60.0 + seed, 2.0 + 0.1 * seed))
        paths.append(_run(res, "fmnist_sneaker2boot", "omgd", "vem", seed, 55.0 + seed, 3.0))
        paths.append(_run(res, "fmnist_sneaker2boot", "omgd", "hint", seed, 70.0 - seed, 1.0))
    out = res / "leaderboard.html"
    render(paths, out, {"commit": "test"})
    return out, paths


def test_rows_hold_intervals_verdicts_latency_and_the_papers_number(board):
    out, paths = board
    rs = {r["method"]: r for r in rows(paths, out)}
    assert set(rs) == {"Original", "OMGD", "OMGD + VEM", "OMGD + hint"}
    vem = rs["OMGD + VEM"]
    assert vem["mean"] == pytest.approx(56.0) and vem["n"] == 3
    lo, hi = (float(x) for x in vem["95% CI"].strip("[]").split(","))
    assert lo == pytest.approx(56.0 - 4.302653 * 1 / math.sqrt(3), abs=1e-3) and hi > 56.0   # t(0.975, 2)
    assert vem["verdict"].startswith("better than OMGD")           # -5 on every seed
    assert vem["latency (ms)"] == pytest.approx(3.0) and vem["speed-up"] == pytest.approx(3.0)
    assert vem["_paper_text"] == "FID 50.83 (Table 2)" and vem["paper (published)"] == 50.83
    assert rs["OMGD + hint"]["paper (published)"] != rs["OMGD + hint"]["paper (published)"]    # none: NaN
    assert rs["Original"]["_samples"] == ["teachers/fmnist_sneaker2boot/original/samples.png"]
    assert [s for s, _ in rs["OMGD"]["_runs"]] == ["0", "1", "2"]
    page = out.read_text()
    assert "NOT comparable" in page and 'href="runs/fmnist_sneaker2boot/omgd/vem_lam0.1/seed2/metrics.json"' in page
    assert "http" not in page.split("<body>")[1]                   # no external resource


@pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason="chromium / chromedriver not installed "
                    "(apt-get install chromium chromium-driver; .ci/run installs them)")
def test_the_page_in_headless_chromium_sorts_filters_and_shows_thumbnails(board, capsys):
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    out, _ = board
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1600,900",
              "--allow-file-access-from-files"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        driver.get(out.resolve().as_uri())
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
        head = driver.find_elements(By.CSS_SELECTOR, "#board thead th")
        names = [h.text.replace("\n", " ") for h in head]

        def column(name):
            i = names.index(name)
            return [r.find_elements(By.TAG_NAME, "td")[i].text
                    for r in driver.find_elements(By.CSS_SELECTOR, "#board tbody tr") if r.is_displayed()]

        before = column("method")
        head[names.index("latency (ms)")].click()
        after = column("latency (ms)")
        assert [float(x) for x in after] == sorted(float(x) for x in after) and column("method") != before
        assert column("method")[0] == "OMGD + hint"                 # 1.0 ms, the fastest
        head[names.index("latency (ms)")].click()                   # again: descending
        assert column("method")[0] == "Original"
        head[names.index("mean")].click()
        assert column("method")[0] == "Original"                    # 50.0, the lowest FD
        box = driver.find_element(By.ID, "filter")
        box.send_keys("vem")
        assert column("method") == ["OMGD + VEM"] and "1 of 4 rows" in driver.find_element(By.ID, "count").text
        box.clear()
        box.send_keys(" ")
        thumbs = driver.find_elements(By.CSS_SELECTOR, "img.thumb")
        assert len(thumbs) == 4
        assert all(driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", t) == 64
                   for t in thumbs)
        shot = out.with_name("leaderboard.png")
        driver.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
        with capsys.disabled():
            print(f"\nleaderboard screenshot: {shot}")
        assert not [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    finally:
        driver.quit()
