"""The HTML report opened in a real browser (Debian's headless Chromium through chromedriver).

Checks what a reader sees: the page loads from a file with no console errors and no
network request, every chart has drawn something, and the summary's numbers equal
values recomputed here from the Parquet results. A screenshot is saved
(to $BLIS_SWEEP_SCREENSHOT_DIR when set, else the test's temporary folder).

Chromium is installed by .ci/run (`apt-get install chromium chromium-driver`); the test
is skipped, saying so, only when no Chromium is present.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import polars as pl
import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                                reason="no Chromium: install Debian's chromium and chromium-driver (see .ci/run)")

SWEEP = """
name: browser
base:
  model: meta-llama/llama-3.1-8b-instruct
  hardware: H100
  latency_model: roofline
  workload:
    distribution: {prompt_tokens: 256, prompt_tokens_stdev: 128, prompt_tokens_min: 2, prompt_tokens_max: 1024,
                   output_tokens: 64, output_tokens_stdev: 32, output_tokens_min: 1, output_tokens_max: 256}
  num_requests: 200
  arrival: poisson
axes:
  tp: [1, 2]
  max_num_running_reqs: [16, 256]
  rate: [8, 24, 64, 160]
replicates: 2
slo:
  ttft_p99_ms: 300
"""
SLO_TTFT = 300.0
SUSTAIN = 0.95
H100_USD = 2.90  # hardware/gpu_prices.yaml


def blis(*args, cwd=None):
    return subprocess.run(["blis-sweep", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=600)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    (root / "sweep.yaml").write_text(SWEEP)
    run = blis("grid", root / "sweep.yaml", "--out", root / "run", "-q")
    assert run.returncode == 0, run.stderr
    rep = blis("report", root / "run", "--out", root / "report.html")
    assert rep.returncode == 0, rep.stderr
    return root


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="blis-chromium-")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-default-apps",
                f"--user-data-dir={profile}", "--window-size=1300,2200"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def expected_summary(run_dir: Path) -> dict:
    """The summary's numbers, recomputed from configs.parquet without the report's code."""
    df = pl.read_parquet(run_dir / "configs.parquet")
    best_rate, best_next, cheapest = None, None, None
    for (tp, running), g in df.group_by(["tp", "max_num_running_reqs"]):
        sat, nxt = None, None
        for rate in sorted(g["rate"].unique().to_list()):
            reps = g.filter(pl.col("rate") == rate)
            ok = all(r["achieved_ratio"] >= SUSTAIN and r["ttft_p99_ms"] <= SLO_TTFT for r in reps.iter_rows(named=True))
            if not ok:
                nxt = rate
                break
            sat = rate
        if sat is None:
            continue
        if best_rate is None or sat > best_rate:
            best_rate, best_next = sat, nxt
        at = g.filter(pl.col("rate") == sat)
        tokens_s = at["steady_output_tokens_per_s"].mean()
        cost = H100_USD * tp / (tokens_s * 3600) * 1e6
        cheapest = cost if cheapest is None else min(cheapest, cost)
    return {"configurations": df.height, "deployments": 4, "best_saturation_rate": best_rate,
            "best_next_rate": best_next, "cheapest_usd_per_mtok": cheapest}


def test_report_in_chromium(report, browser):
    page = report / "report.html"
    browser.get(page.as_uri())
    browser.get_log("browser")  # (drained below after charts settle)
    charts = browser.execute_script("""
        return [...document.querySelectorAll('.js-plotly-plot')].map(e => ({
            id: e.id,
            width: e.getBoundingClientRect().width, height: e.getBoundingClientRect().height,
            svgs: e.querySelectorAll('svg.main-svg').length,
            drawn: e.querySelectorAll('.scatterlayer .trace path, .heatmaplayer image, .barlayer path').length}));""")
    logs = browser.get_log("browser")
    errors = [entry for entry in logs if entry["level"] == "SEVERE"]
    assert not errors, errors
    assert {c["id"] for c in charts} == {"chart-saturation", "chart-pareto", "chart-heatmap", "chart-ratio"}
    for c in charts:
        assert c["svgs"] > 0 and c["drawn"] > 0 and c["width"] > 300 and c["height"] > 200, c
    # nothing fetched from anywhere but the file itself
    resources = browser.execute_script("return performance.getEntriesByType('resource').map(r => r.name)")
    assert all(url.startswith("file:") or url.startswith("data:") for url in resources), resources

    shown = browser.execute_script("""
        const out = {};
        document.querySelectorAll('#summary [data-key]').forEach(e => out[e.dataset.key] = e.dataset.value);
        return out;""")
    expected = expected_summary(report / "run")
    for key, value in expected.items():
        assert shown[key] != "" and float(shown[key]) == pytest.approx(value, rel=1e-9), key
    assert browser.execute_script("return document.querySelectorAll('#ranked tbody tr').length") == 4

    shots = Path(os.environ.get("BLIS_SWEEP_SCREENSHOT_DIR") or report)
    shots.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(shots / "report.png"))
    assert (shots / "report.png").stat().st_size > 10_000
    figures = sorted(p.name for p in (report / "report_figures").iterdir())
    assert figures == sorted(f"{k}.{s}" for k in ("heatmap", "pareto", "ratio", "saturation") for s in ("png", "svg"))
