"""`blis-sweep plan`: cheapest deployments for a target rate, every one verified as a whole cluster.

The acceptance case: Llama-3.1-8B on H100 and A100-80GB at 200 requests/s within
ttft_p99_ms=500 and tpot_p99_ms=50; the cheapest verified deployment is then simulated
independently with `blis-sweep grid` (a sweep file written here from the plan's row)
and must meet the SLO there too.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import polars as pl
import pytest

from blis_sweep.plan.planner import judge

DATA = Path(__file__).parent / "data" / "plan"
SMALL = DATA / "plan_small.yaml"
TARGET = 200.0
SLO = {"ttft_p99_ms": 500.0, "tpot_p99_ms": 50.0}
VERIFY_SECONDS = 15


def blis(*args, cwd=None):
    return subprocess.run(["blis-sweep", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=1200)


@pytest.fixture(scope="module")
def plan_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("plan") / "plan"
    res = blis("plan", SMALL, "--target-rate", TARGET, "--slo", "ttft_p99_ms=500", "--slo", "tpot_p99_ms=50",
               "--gpus", "H100,A100-80GB", "--routing", "least-loaded", "--verify-seconds", VERIFY_SECONDS,
               "--out", out)
    assert res.returncode == 0, res.stderr
    assert "verified" in res.stdout and "pass" in res.stdout
    return out


def test_plan_ranks_verified_deployments_cheapest_first(plan_dir):
    plan = pl.read_parquet(plan_dir / "plan.parquet")
    assert plan.height >= 2 and set(plan["hardware"]) == {"H100", "A100-80GB"}
    assert plan["verdict"].null_count() == 0 and plan["rank"].to_list() == list(range(1, plan.height + 1))
    verified = plan.filter(pl.col("verified"))
    assert verified.height >= 1
    assert verified["usd_per_hour"].to_list() == sorted(verified["usd_per_hour"].to_list())
    assert plan["verified"].to_list() == sorted(plan["verified"].to_list(), reverse=True)  # passing rows first
    for r in plan.iter_rows(named=True):
        assert r["gpus"] == r["tp"] * r["replicas"] and r["gpus"] <= 64
        assert r["usd_per_hour"] == pytest.approx(r["gpus"] * r["usd_per_gpu_hour"])
        # replicas come from the per-replica capacity with the headroom (plus any added after a failed check)
        assert r["planned_replicas"] * r["per_replica_capacity_rps"] >= TARGET * (1 + r["headroom"]) - 1e-6
        assert r["replicas"] >= r["planned_replicas"]
        assert (r["verdict"] == "pass") == r["verified"]
        if r["verified"]:
            assert r["ttft_p99_ms"] <= SLO["ttft_p99_ms"] and r["tpot_p99_ms"] <= SLO["tpot_p99_ms"]
            assert r["achieved_ratio_min"] >= 0.95
        assert Path(r["verify_sweep"]).is_file()


def test_cheapest_verified_deployment_meets_the_slo_in_grid(plan_dir, tmp_path):
    best = pl.read_parquet(plan_dir / "plan.parquet").filter(pl.col("verified")).row(0, named=True)
    num_requests = int(TARGET * VERIFY_SECONDS)
    sweep = f"""
name: check
base:
  model: {best['model']}
  hardware: {best['hardware']}
  tp: {best['tp']}
  latency_model: roofline
  max_num_running_reqs: {best['max_num_running_reqs']}
  max_num_scheduled_tokens: {best['max_num_scheduled_tokens']}
  num_instances: {best['replicas']}
  routing_policy: {best['routing_policy']}
  workload:
    distribution: {{prompt_tokens: 512, prompt_tokens_stdev: 256, prompt_tokens_min: 2, prompt_tokens_max: 2048,
                   output_tokens: 256, output_tokens_stdev: 128, output_tokens_min: 1, output_tokens_max: 1024}}
  num_requests: {num_requests}
  arrival: poisson
  rate: {TARGET}
seeds: [42, 43]
"""
    (tmp_path / "check.yaml").write_text(sweep)
    res = blis("grid", tmp_path / "check.yaml", "--out", tmp_path / "run", "-q")
    assert res.returncode == 0, res.stderr
    rows = pl.read_parquet(tmp_path / "run" / "configs.parquet")
    assert rows.height == 2
    for r in rows.iter_rows(named=True):
        assert r["verdict"] == "stable" and r["achieved_ratio"] >= 0.95
        assert r["steady_ttft_p99_ms"] <= SLO["ttft_p99_ms"] and r["steady_tpot_p99_ms"] <= SLO["tpot_p99_ms"]
    # the plan's verification is this very simulation: same numbers
    assert rows["steady_ttft_p99_ms"].max() == pytest.approx(best["ttft_p99_ms"], rel=1e-12)
    assert rows["steady_tpot_p99_ms"].max() == pytest.approx(best["tpot_p99_ms"], rel=1e-12)


def test_report_of_a_plan_run(plan_dir, tmp_path):
    res = blis("report", plan_dir, "--out", tmp_path / "plan.html", "--no-static")
    assert res.returncode == 0, res.stderr
    text = (tmp_path / "plan.html").read_text()
    best = pl.read_parquet(plan_dir / "plan.parquet").filter(pl.col("verified")).row(0, named=True)
    assert f'data-key="cheapest_usd_per_hour" data-value="{best["usd_per_hour"]!r}"' in text
    assert 'data-run-kind="plan"' in text and "<script src=" not in text


def _row(**kw):
    base = {"infeasible": False, "achieved_ratio": 1.0, "verdict": "stable", "steady_ttft_p99_ms": 100.0,
            "steady_tpot_p99_ms": 20.0, "ttft_p99_ms": 900.0, "tpot_p99_ms": 20.0, "achieved_rps": 10.0,
            "steady_output_tokens_per_s": 2000.0, "num_requests": 1000}
    return {**base, **kw}


@pytest.mark.parametrize("change, reason", [
    ({}, None),
    ({"achieved_ratio": 0.9}, "throughput"),
    ({"verdict": "overloaded"}, "steady state: overloaded"),
    ({"steady_ttft_p99_ms": 501.0}, "ttft_p99_ms"),
    ({"steady_tpot_p99_ms": None}, "tpot_p99_ms"),
])
def test_verdict_needs_every_seed_to_pass(change, reason):
    rows = pl.DataFrame([_row(), _row(**change)])
    v = judge(rows, SLO)
    assert v.passed == (reason is None)
    assert v.text == ("pass" if reason is None else f"fail: {reason}")
    # SLO bounds are judged on the steady window, not the whole run (ttft_p99_ms = 900 above)
    assert judge(pl.DataFrame([_row()]), SLO).passed


def one_error_line(res) -> str:
    assert res.returncode == 2, (res.returncode, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    return lines[0]


@pytest.mark.parametrize("args, expected", [
    (["--target-rate", "0"], "--target-rate must be a finite number of requests/s > 0"),
    (["--target-rate", "-5"], "--target-rate must be"),
    ([], "plan needs --target-rate"),
    (["--target-rate", "10", "--gpus", "H100,TPU9"], "unknown GPU 'TPU9'"),
    (["--target-rate", "10", "--gpus", "L40S"], "no price known for L40S"),
    (["--target-rate", "10", "--headroom", "1.5"], "--headroom must be in [0, 1)"),
    (["--target-rate", "10", "--max-gpus", "0"], "--max-gpus must be an integer >= 1"),
    (["--target-rate", "10", "--routing", "fastest"], "unknown policy 'fastest'"),
    (["--target-rate", "10", "--slo", "ttft_p42_ms=1"], "unknown SLO metric 'ttft_p42_ms'"),
    (["--target-rate", "10", "--models", "meta-llama/llama-9-1t"], "no model config for"),
])
def test_bad_plan_input_is_one_line_and_writes_nothing(tmp_path, args, expected):
    out = tmp_path / "out"
    res = blis("plan", SMALL, *args, "--out", out)
    assert expected in one_error_line(res)
    assert not out.exists()


@pytest.mark.parametrize("prices, expected", [
    ("prices:\n  H100: -1\n", "prices.H100: price must be a finite number of USD per GPU-hour >= 0, got -1"),
    ("prices:\n  H100: .nan\n", "prices.H100: price must be a finite number"),
    ("prices:\n  TPU9: 1.0\n", "prices.TPU9: unknown GPU (allowed: "),
    ("prices:\n  H100: {usd_per_gpu_hour: cheap}\n", "prices.H100: price must be"),
    ("H100: 2\n", "expected a mapping `prices: {GPU: USD per GPU-hour, ...}`"),
    ("prices: [", "is not valid YAML"),
])
def test_bad_prices_file(tmp_path, prices, expected):
    (tmp_path / "prices.yaml").write_text(prices)
    out = tmp_path / "out"
    res = blis("plan", SMALL, "--target-rate", "10", "--prices", tmp_path / "prices.yaml", "--out", out)
    assert expected in one_error_line(res)
    assert not out.exists()


def test_plan_sweep_must_not_have_a_rate_axis(tmp_path):
    (tmp_path / "rated.yaml").write_text(SMALL.read_text().replace("tp: [1, 2]", "tp: [1, 2]\n  rate: [1, 2]"))
    res = blis("plan", tmp_path / "rated.yaml", "--target-rate", "10", "--out", tmp_path / "out")
    assert "axes.rate: a plan chooses the rates itself" in one_error_line(res)


def test_plan_needs_an_slo(tmp_path):
    (tmp_path / "no_slo.yaml").write_text(SMALL.read_text().split("slo:")[0])
    res = blis("plan", tmp_path / "no_slo.yaml", "--target-rate", "10", "--out", tmp_path / "out")
    assert "plan needs an SLO" in one_error_line(res)
    assert not (tmp_path / "out").exists()


def test_user_prices_override_the_bundled_ones(tmp_path):
    from blis_sweep.data.prices import load_prices

    (tmp_path / "p.yaml").write_text("prices:\n  H100: {usd_per_gpu_hour: 1.25, source: contract, date: '2026-11-01'}\n")
    bundled = load_prices()
    mine = load_prices(tmp_path / "p.yaml")
    assert mine["H100"].usd_per_gpu_hour == 1.25 and mine["H100"].source == "contract"
    assert mine["A100-80GB"] == bundled["A100-80GB"]  # the others stay
    assert all(p.source and p.date for p in bundled.values())  # every bundled figure says where it is from


def test_plan_needs_a_generated_workload_and_long_enough_runs(tmp_path):
    text = SMALL.read_text()
    start, end = text.index("  workload:"), text.index("  num_requests:")
    (tmp_path / "trace.csv").write_text("")
    (tmp_path / "traced.yaml").write_text(text[:start] + "  workload: {trace: trace.csv}\n" + text[end:])
    res = blis("plan", tmp_path / "traced.yaml", "--target-rate", "10", "--out", tmp_path / "out")
    assert "a plan needs a generated workload" in one_error_line(res)
    (tmp_path / "short.yaml").write_text(text.replace("num_requests: 1000", "num_requests: 50"))
    res = blis("plan", tmp_path / "short.yaml", "--target-rate", "10", "--out", tmp_path / "out")
    assert "num_requests: capacity runs need at least 200 requests" in one_error_line(res)
    assert not (tmp_path / "out").exists()
