"""The fast anomaly counters equal their pairwise definitions (kernels.metrics)."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from blis_sweep.kernels import layout as L
from blis_sweep.kernels import state as S
from blis_sweep.kernels.metrics import count_inversions_nb, hol_blocking_nb, priority_inversions_nb
from tests.oracle_sim import priority_inversions


def _pairwise(arrival, e2e) -> int:
    order = np.argsort(arrival, kind="stable")  # ties in arrival: request order
    return priority_inversions([float(arrival[k]) for k in order], [float(e2e[k]) for k in order])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 40)), min_size=0, max_size=60))
def test_inversions_equal_the_pairwise_count(pairs):
    # few distinct arrivals and E2Es: ties in arrival, equal values and exact doubles are common
    arrival = np.array([a for a, _ in pairs], dtype=np.int64)
    e2e = np.array([float(e) for _, e in pairs])
    assert count_inversions_nb(arrival, e2e) == _pairwise(arrival, e2e)


def test_inversions_on_large_random_inputs():
    rng = np.random.default_rng(7)
    for n in (2, 3, 100, 1500):
        arrival = rng.integers(0, n // 2 + 1, n).astype(np.int64)
        e2e = rng.integers(1, 10_000, n).astype(np.float64)
        assert count_inversions_nb(arrival, e2e) == _pairwise(arrival, e2e)


def test_per_instance_inversions_select_completed_requests_of_the_instance():
    rng = np.random.default_rng(3)
    n = 400
    rq = np.zeros(n, dtype=S.request_dt)
    rq["instance"] = rng.integers(0, 3, n)
    rq["flag_bits"] = np.where(rng.random(n) < 0.8, L.RF_COMPLETED, 0)
    rq["e2e"] = rng.integers(1, 5000, n)
    arrival = np.sort(rng.integers(0, 300, n)).astype(np.int64)
    for i in range(3):
        keep = (rq["instance"] == i) & (rq["flag_bits"] & L.RF_COMPLETED != 0)
        expected = _pairwise(arrival[keep], rq["e2e"][keep].astype(np.float64))
        assert priority_inversions_nb(rq, arrival, i, n) == expected


def _hol_definition(sums, counts) -> int:
    avgs = [s / c for s, c in zip(sums, counts) if c > 0]
    if len(avgs) < 2:
        return 0
    mean = sum(avgs) / len(avgs)
    return sum(1 for a in avgs if mean > 0 and a > 2.0 * mean)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 50), st.integers(0, 5)), min_size=0, max_size=8))
def test_hol_blocking_equals_its_definition(samples):
    sums = np.array([s for s, _ in samples], dtype=np.int64)
    counts = np.array([c for _, c in samples], dtype=np.int64)
    assert hol_blocking_nb(sums, counts) == _hol_definition(sums, counts)
