"""Saturation curves on constructed results: where the saturation point lies, goodput, spread."""
from __future__ import annotations

import math

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blis_sweep.sweep.curves import compute_curves
from blis_sweep.errors import BlisError


def table(rows: list[dict]) -> pl.DataFrame:
    """A configs table with the columns curves needs; each row: tp, rate, replicate, achieved, ttft."""
    out = []
    for cid, r in enumerate(rows):
        offered = float(r["rate"])
        out.append({
            "config_id": cid, "point_id": cid, "replicate": r.get("replicate", 0), "seed": 42 + r.get("replicate", 0),
            "model": "m", "hardware": "H100", "tp": r["tp"], "rate": offered, "infeasible": False,
            "offered_rps": offered, "achieved_rps": float(r["achieved"]), "achieved_ratio": r["achieved"] / offered,
            "responses_per_sec": 0.9 * r["achieved"], "ttft_p99_ms": float(r["ttft"]), "tpot_p99_ms": 10.0,
        })
    return pl.DataFrame(out)


def physical(tp: int, capacity: float, rates, replicates=1, knee=0.9):
    """Achieved = min(rate, capacity); TTFT explodes past `knee` x capacity."""
    rows = []
    for rate in rates:
        for rep in range(replicates):
            achieved = min(rate, capacity) * (1 - 0.001 * rep)
            ttft = 50.0 if rate <= knee * capacity else 50.0 + 1000 * (rate - knee * capacity)
            rows.append({"tp": tp, "rate": rate, "replicate": rep, "achieved": achieved, "ttft": ttft})
    return rows


RATES = [1, 2, 4, 8, 16, 32, 64]


def test_saturation_lies_between_last_good_and_first_bad_rate():
    rows = physical(1, 10.0, RATES, replicates=2) + physical(2, 25.0, RATES, replicates=2)
    c = compute_curves(configs=table(rows), slo={"ttft_p99_ms": 500})
    g = {row["tp"]: row for row in c.groups.iter_rows(named=True)}
    # tp=1: 8 <= 0.9 * 10 keeps up and meets the SLO; 16 exceeds capacity
    assert (g[1]["saturation_rate"], g[1]["next_rate"], g[1]["limited_by"]) == (8.0, 16.0, "throughput,ttft_p99_ms")
    assert (g[2]["saturation_rate"], g[2]["next_rate"]) == (16.0, 32.0)
    assert c.groups["tp"].to_list() == [2, 1]  # best (highest saturation rate) first
    assert g[2]["rank"] == 1 and g[1]["max_achieved_rps"] == pytest.approx(9.995)
    assert c.varying_columns == ["tp"]
    # the SLO alone can set the limit below the throughput knee
    c = compute_curves(configs=table(rows), slo={"ttft_p99_ms": 40})
    assert c.groups["saturation_rate"].to_list() == [None, None]
    assert c.groups["limited_by"].to_list() == ["ttft_p99_ms", "ttft_p99_ms"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=8),
       st.integers(min_value=1, max_value=3))
def test_saturation_is_the_end_of_the_sustained_prefix(flags, replicates):
    """Whatever the pattern (even non-monotone), saturation = last rate before the first failing one."""
    rows = []
    rates = [2.0 ** k for k in range(len(flags))]
    for rate, (keeps_up, meets_slo) in zip(rates, flags):
        for rep in range(replicates):
            achieved = rate * (0.99 if keeps_up else 0.5)
            rows.append({"tp": 1, "rate": rate, "replicate": rep, "achieved": achieved,
                         "ttft": 100.0 if meets_slo else 900.0})
    c = compute_curves(configs=table(rows), slo={"ttft_p99_ms": 500})
    g = c.groups.row(0, named=True)
    good = [r for r, (a, b) in zip(rates, flags) if a and b]
    bad = [r for r, (a, b) in zip(rates, flags) if not (a and b)]
    first_bad = min(bad) if bad else None
    last_good_before = max((r for r in good if first_bad is None or r < first_bad), default=None)
    assert g["saturation_rate"] == last_good_before
    assert g["next_rate"] == first_bad
    if last_good_before is not None and first_bad is not None:
        assert last_good_before < first_bad
    assert c.points["sustained"].to_list() == [a and b for a, b in flags]


def test_goodput_counts_only_runs_meeting_the_slo_and_spread_is_reported():
    rows = [
        {"tp": 1, "rate": 10, "replicate": 0, "achieved": 10.0, "ttft": 100},
        {"tp": 1, "rate": 10, "replicate": 1, "achieved": 9.0, "ttft": 900},  # violates the SLO
        {"tp": 1, "rate": 20, "replicate": 0, "achieved": 12.0, "ttft": 100},
        {"tp": 1, "rate": 20, "replicate": 1, "achieved": 14.0, "ttft": 100},
    ]
    c = compute_curves(configs=table(rows), slo={"ttft_p99_ms": 500})
    p10, p20 = c.points.sort("rate").iter_rows(named=True)
    assert p10["goodput_rps"] == pytest.approx(5.0) and p10["slo_met"] == 0.5 and not p10["sustained"]
    assert p10["achieved_rps"] == pytest.approx(9.5)
    assert (p10["achieved_rps_min"], p10["achieved_rps_max"]) == (9.0, 10.0)
    assert p10["achieved_rps_std"] == pytest.approx(math.sqrt(0.5))
    assert p20["goodput_rps"] == pytest.approx(13.0) and p20["n_replicates"] == 2
    # without an SLO goodput is the achieved throughput
    c = compute_curves(configs=table(rows), slo={})
    assert c.points.sort("rate")["goodput_rps"].to_list() == pytest.approx([9.5, 13.0])


def test_infeasible_rows_are_left_out_and_bad_slo_rejected():
    df = table(physical(1, 10.0, RATES)).with_columns(
        infeasible=pl.col("rate") > 30, achieved_rps=pl.when(pl.col("rate") > 30).then(None)
        .otherwise(pl.col("achieved_rps")))
    c = compute_curves(configs=df, slo={})
    assert c.infeasible_configs == 2 and c.points.height == len(RATES) - 2
    with pytest.raises(BlisError, match="not a column"):
        compute_curves(configs=df, slo={"ttft_p98_ms": 1})
    with pytest.raises(BlisError, match="configs.parquet not found"):
        compute_curves("/nonexistent/run")


def test_plot_writes_an_image_and_rejects_unknown_types(tmp_path):
    from blis_sweep.sweep.curves import Curves
    from blis_sweep.sweep.curves_plot import plot_curves
    from blis_sweep.errors import BlisError

    points = pl.DataFrame({"group_id": [0, 0, 0], "offered_rps": [1.0, 2.0, 4.0], "achieved_rps": [1.0, 2.0, 3.0],
                           "ttft_p99_ms": [10.0, 12.0, 90.0]})
    groups = pl.DataFrame({"group_id": [0], "tp": [1], "saturation_rate": [2.0]})
    curves = Curves(points=points, groups=groups, group_columns=["tp"], varying_columns=["tp"],
                    slo={"ttft_p99_ms": 50.0}, sustain=0.95, infeasible_configs=0)
    out = plot_curves(curves, tmp_path / "c.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(BlisError, match="allowed: .png, .svg, .pdf"):
        plot_curves(curves, tmp_path / "c.gif")
