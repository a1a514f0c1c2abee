"""Steady-state window, metrics and backlog verdict of one run, on synthetic per-request arrays."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blis_sweep.sweep.steady_state import (STEADY_COLUMNS, Attainment, SteadySettings, mser_cut, parse_attainment,
                                     parse_steady_settings, SettingError, steady_metrics)


def single_server(arrival_us: np.ndarray, service_us: float) -> np.ndarray:
    """E2E of a FIFO single server with a constant service time (the simplest queue with a capacity)."""
    e2e = np.empty_like(arrival_us, dtype=np.float64)
    free = 0.0
    for i, a in enumerate(arrival_us):
        start = max(a, free)
        free = start + service_us
        e2e[i] = free - a
    return e2e


def metrics(arrival, e2e, attainment=None, steady=SteadySettings(), out_len=None):
    n = arrival.shape[0]
    ones = np.ones(n, dtype=bool)
    out_len = np.full(n, 11, dtype=np.int64) if out_len is None else out_len
    return steady_metrics(arrival.astype(np.int64), ones, ones, e2e * 0.2, e2e, e2e * 0.5, e2e * 0.1, ones, out_len,
                          steady, attainment)


def poisson_arrivals(rate: float, n: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.cumsum(np.r_[0.0, rng.exponential(1e6 / rate, n - 1)]).astype(np.int64).astype(np.float64)


def test_stable_queue_keeps_up_and_is_stable():
    arrival = poisson_arrivals(50.0, 4000)
    m = metrics(arrival, single_server(arrival, 1e6 / 80.0))  # utilisation 0.625
    assert m["verdict"] == "stable"
    assert m["achieved_ratio"] == pytest.approx(1.0, abs=0.03)
    assert m["offered_rps"] == pytest.approx(50.0, rel=0.05)
    assert abs(m["backlog_growth"]) < 0.02
    assert m["little_ratio"] == pytest.approx(1.0, abs=0.1)  # Little's law in a steady state
    assert m["warmup_requests"] + m["cooldown_requests"] + m["steady_requests"] == 4000


def test_overloaded_queue_grows_and_achieves_its_capacity():
    arrival = poisson_arrivals(100.0, 4000)
    m = metrics(arrival, single_server(arrival, 1e6 / 80.0))  # 25% more arrivals than the server completes
    assert m["verdict"] == "overloaded"
    assert m["achieved_rps"] == pytest.approx(80.0, rel=0.02)
    assert m["saturated_rps"] == pytest.approx(80.0, rel=0.01)  # the server is full through the middle half
    assert m["backlog_growth"] == pytest.approx(0.2, abs=0.03)  # (100 - 80) / 100 of the arrivals pile up
    assert m["backlog_end"] > m["backlog_start"] + 100


def test_warm_up_cut_removes_the_ramp():
    # latencies climb for the first 500 requests, then stay flat: MSER cuts about the ramp
    n = 3000
    arrival = np.arange(n, dtype=np.float64) * 10_000
    rng = np.random.default_rng(3)
    e2e = np.where(np.arange(n) < 500, np.arange(n) * 200.0, 100_000.0) + rng.normal(0, 2000, n)
    m = metrics(arrival, np.abs(e2e))
    assert 400 <= m["warmup_requests"] <= 700
    assert mser_cut(np.r_[np.zeros(100), np.ones(900)]) in range(95, 106)
    assert mser_cut(np.ones(1000)) == 0


def test_fixed_cuts_and_attainment():
    arrival = np.arange(1000, dtype=np.float64) * 10_000.0  # 100 req/s
    e2e = np.where(np.arange(1000) % 10 == 0, 900_000.0, 50_000.0)  # every tenth request is slow
    m = metrics(arrival, e2e, Attainment(e2e_ms=100.0), SteadySettings(warmup=0.1, cooldown=0.1))
    assert (m["warmup_requests"], m["cooldown_requests"], m["steady_requests"]) == (100, 100, 800)
    assert m["slo_attainment"] == pytest.approx(0.9)
    assert m["goodput_rps"] == pytest.approx(0.9 * 800 / (799 / 100.0))
    assert m["steady_e2e_p50_ms"] == pytest.approx(50.0)
    assert m["e2e_attainment"] == pytest.approx(0.9) and math.isnan(m["ttft_attainment"])


def test_per_bound_attainment_shares():
    # each bound's share of window requests, and the joint share: TTFT of the slow tenth is 180 ms
    arrival = np.arange(1000, dtype=np.float64) * 10_000.0
    e2e = np.where(np.arange(1000) % 10 == 0, 900_000.0, 50_000.0)
    m = metrics(arrival, e2e, Attainment(ttft_ms=100.0, e2e_ms=1000.0), SteadySettings(warmup=0.1, cooldown=0.1))
    assert m["ttft_attainment"] == pytest.approx(0.9) and m["e2e_attainment"] == 1.0
    assert math.isnan(m["tpot_attainment"]) and m["slo_attainment"] == pytest.approx(0.9)
    loose = metrics(arrival, e2e, Attainment(ttft_ms=200.0, tpot_ms=100.0), SteadySettings(warmup=0.1, cooldown=0.1))
    assert loose["ttft_attainment"] == 1.0 and loose["tpot_attainment"] == 1.0 and loose["slo_attainment"] == 1.0


def test_unfinished_requests_count_as_infinitely_late():
    arrival = np.arange(200, dtype=np.float64) * 10_000.0
    e2e = np.full(200, 20_000.0)
    done = np.ones(200, dtype=bool)
    done[150:160] = False
    m = steady_metrics(arrival.astype(np.int64), done, done, e2e, e2e, e2e, e2e, done, np.full(200, 5),
                       SteadySettings(warmup=0.0, cooldown=0.0), Attainment(e2e_ms=1000.0))
    assert m["steady_e2e_p99_ms"] == math.inf
    assert m["slo_attainment"] == pytest.approx(190 / 200)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 400), rate=st.floats(1.0, 500.0), service=st.floats(100.0, 50_000.0),
       seed=st.integers(0, 2**16))
def test_window_accounting_invariants(n, rate, service, seed):
    arrival = poisson_arrivals(rate, max(n, 1), seed)[:n]
    e2e = single_server(arrival, service) if n else np.zeros(0)
    m = metrics(arrival, e2e, Attainment(ttft_ms=5.0, e2e_ms=20.0))
    assert set(m) == set(STEADY_COLUMNS)
    if m["verdict"] is None:
        return
    assert m["warmup_requests"] + m["cooldown_requests"] + m["steady_requests"] == n
    assert m["warmup_requests"] <= n // 2 and m["cooldown_requests"] <= n // 4
    assert 0.0 <= m["slo_attainment"] <= 1.0 and m["goodput_rps"] <= m["offered_rps"] * (1 + 1e-9) * n
    assert m["verdict"] in ("stable", "overloaded")
    assert m["steady_ttft_p50_ms"] <= m["steady_ttft_p99_ms"]


def test_settings_parsing():
    assert parse_steady_settings(None) == SteadySettings()
    assert parse_steady_settings({"warmup": 0.2, "cooldown": "auto"}).warmup == 0.2
    with pytest.raises(SettingError, match="fraction"):
        parse_steady_settings({"warmup": 0.9})
    with pytest.raises(SettingError, match="unknown key"):
        parse_steady_settings({"warm": 0.1})
    assert parse_attainment({"ttft_ms": 200, "tpot_ms": 50}) == Attainment(200.0, 50.0, None, 0.99)
    with pytest.raises(SettingError, match="unknown per-request bound"):
        parse_attainment({"ttft_p99_ms": 200})
    with pytest.raises(SettingError, match="at least one"):
        parse_attainment({"min_fraction": 0.9})
