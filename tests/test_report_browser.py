"""The HTML report opened in a real browser (Debian's headless Chromium through chromedriver).

Checks what a reader sees, for a grid, a capacity and a plan run: the page loads from a
file with no console errors and no network request, every chart has drawn something, and
the summary's numbers equal values recomputed here from the Parquet results. A screenshot is saved
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

SWEEP = Path(__file__).parent / "data" / "report_grid.yaml"
SLO_TTFT = 300.0
H100_USD = 2.90  # hardware/gpu_prices.yaml


def blis(*args, cwd=None):
    return subprocess.run(["blis-sweep", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=600)


PLAN_SPEC = Path(__file__).parent / "data" / "plan" / "plan_small.yaml"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A grid run with its report, and a small plan (whose per-replica search is a capacity run) with theirs."""
    root = tmp_path_factory.mktemp("report")
    run = blis("grid", SWEEP, "--out", root / "run", "-q")
    assert run.returncode == 0, run.stderr
    plan = blis("plan", PLAN_SPEC, "--target-rate", 30, "--gpus", "H100", "--routing", "least-loaded",
                "--verify-seconds", 10, "--out", root / "plan", "-q")
    assert plan.returncode == 0, plan.stderr
    pages = {"grid": root / "report.html", "plan": root / "plan.html", "capacity": root / "capacity.html"}
    for kind, run_dir in (("grid", root / "run"), ("plan", root / "plan"), ("capacity", root / "plan" / "per_replica")):
        rep = blis("report", run_dir, "--out", pages[kind])
        assert rep.returncode == 0, rep.stderr
    return root, pages


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
            ok = all(r["verdict"] == "stable" and r["steady_ttft_p99_ms"] <= SLO_TTFT for r in reps.iter_rows(named=True))
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


def expected_capacity_summary(table: pl.DataFrame) -> dict:
    best = table.sort("max_rate_rps", descending=True, nulls_last=True).row(0, named=True)
    return {"deployments": table.height, "best_max_rate_rps": best["max_rate_rps"],
            "best_max_rate_high": best["max_rate_high"], "requests_simulated": table["requests_simulated"].sum()}


def expected_plan_summary(plan: pl.DataFrame) -> dict:
    ok = plan.filter(pl.col("verdict") == "pass").sort("usd_per_hour")
    return {"target_rate": 30.0, "candidates": plan.height, "verified": ok.height,
            "cheapest_gpus": ok["gpus"][0], "cheapest_usd_per_hour": ok["usd_per_hour"][0],
            "cheapest_ttft_p99_ms": ok["ttft_p99_ms"][0], "cheapest_tpot_p99_ms": ok["tpot_p99_ms"][0]}


CHARTS = {"grid": {"saturation", "pareto", "heatmap", "ratio"},
          "plan": {"cost", "ttft", "capacity", "pareto"},
          "capacity": {"capacity", "pareto"}}


@pytest.mark.parametrize("kind", ["grid", "capacity", "plan"])
def test_report_in_chromium(runs, browser, kind):
    root, pages = runs
    page = pages[kind]
    browser.get(page.as_uri())
    charts = browser.execute_script("""
        return [...document.querySelectorAll('.js-plotly-plot')].map(e => ({
            id: e.id,
            width: e.getBoundingClientRect().width, height: e.getBoundingClientRect().height,
            svgs: e.querySelectorAll('svg.main-svg').length,
            drawn: e.querySelectorAll('.scatterlayer .trace path, .heatmaplayer image, .barlayer path').length}));""")
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert not errors, errors
    assert browser.execute_script("return document.querySelector('main').dataset.runKind") == kind
    assert {c["id"].removeprefix("chart-") for c in charts} >= CHARTS[kind]
    for c in charts:
        assert c["svgs"] > 0 and c["drawn"] > 0 and c["width"] > 300 and c["height"] > 200, c
    # nothing fetched from anywhere but the file itself
    resources = browser.execute_script("return performance.getEntriesByType('resource').map(r => r.name)")
    assert all(url.startswith("file:") or url.startswith("data:") for url in resources), resources

    shown = browser.execute_script("""
        const out = {};
        document.querySelectorAll('#summary [data-key]').forEach(e => out[e.dataset.key] = e.dataset.value);
        return out;""")
    if kind == "grid":
        expected = expected_summary(root / "run")
        rows = 4
    elif kind == "capacity":
        table = pl.read_parquet(root / "plan" / "per_replica" / "capacity.parquet")
        expected, rows = expected_capacity_summary(table), table.height
    else:
        plan = pl.read_parquet(root / "plan" / "plan.parquet")
        expected, rows = expected_plan_summary(plan), plan.height
    assert expected.get("best_saturation_rate", expected.get("best_max_rate_rps", 1)) is not None
    for key, value in expected.items():
        if value is None:  # e.g. no failing rate below the search's ceiling: shown as "-"
            assert shown[key] == "", key
        else:
            assert shown[key] != "" and float(shown[key]) == pytest.approx(value, rel=1e-9), key
    assert browser.execute_script("return document.querySelectorAll('#ranked tbody tr').length") == rows

    shots = Path(os.environ.get("BLIS_SWEEP_SCREENSHOT_DIR") or root)
    shots.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(shots / f"report-{kind}.png"))
    assert (shots / f"report-{kind}.png").stat().st_size > 10_000
    figures = sorted(p.name for p in (page.parent / f"{page.stem}_figures").iterdir())
    assert figures == sorted(f"{k}.{s}" for k in (c["id"].removeprefix("chart-") for c in charts) for s in ("png", "svg"))
