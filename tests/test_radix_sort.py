"""The kernels' radix argsort is a stable sort (kernels.metrics.radix_argsort_nb)."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

from blis_sweep.kernels.metrics import itl_order_stats_nb, radix_argsort_nb

INT64 = st.integers(np.iinfo(np.int64).min, np.iinfo(np.int64).max)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.lists(st.integers(-3, 3), max_size=80), st.lists(INT64, max_size=80),
                 st.lists(st.integers(0, 70_000), max_size=400)))
def test_radix_argsort_equals_a_stable_argsort(values):
    # small ranges give many ties (stability); full int64 ranges use every digit pass
    v = np.array(values, dtype=np.int64)
    assert np.array_equal(radix_argsort_nb(v), np.argsort(v, kind="stable"))


def test_radix_argsort_on_large_sorted_and_reversed_inputs():
    rng = np.random.default_rng(11)
    base = np.sort(rng.integers(0, 10**10, 20_000)).astype(np.int64)
    for v in (base, base[::-1].copy(), rng.integers(-5, 5, 20_000).astype(np.int64)):
        assert np.array_equal(radix_argsort_nb(v), np.argsort(v, kind="stable"))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(-50, 50), st.integers(1, 5)), min_size=1, max_size=60))
def test_step_log_percentiles_equal_those_of_every_record(pairs):
    # one step-log entry stands for `count` equal inter-token latencies
    from blis_sweep.kernels import layout as L
    from blis_sweep.kernels.metrics import mean_ms_nb, percentile_ms_nb

    values = np.array([v for v, _ in pairs], dtype=np.int64)
    counts = np.array([c for _, c in pairs], dtype=np.int64)
    block = np.full(1, np.nan, dtype=L.metrics_dt)
    _itl_order_stats_into_nb(values, counts, block)
    out = block[0]
    every = np.sort(np.repeat(values, counts).astype(np.float64))
    for field, p in (("itl_p50_ms", 50.0), ("itl_p90_ms", 90.0), ("itl_p95_ms", 95.0), ("itl_p99_ms", 99.0)):
        assert out[field] == percentile_ms_nb(every, p)
    assert np.isclose(out["itl_mean_ms"], mean_ms_nb(every))


@njit
def _itl_order_stats_into_nb(values, counts, block):
    itl_order_stats_nb(values, counts, block[0])  # a record passed from Python would be a copy


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 400), st.integers(0, 3), st.integers(1, 2000), st.integers(-1, 2), st.integers(0, 2**31))
def test_itl_statistics_by_value_equal_those_of_the_copied_log(n_entries, zero_share, spread, instance, seed):
    # the per-value table (narrow ranges of step times) and the copied log (wide ones) give the same block
    from blis_sweep.kernels import layout as L
    from blis_sweep.kernels import state as S
    from blis_sweep.kernels.metrics import _itl_counts_by_value_nb

    rng = np.random.default_rng(seed)
    log = np.zeros(n_entries, dtype=S.step_dt)
    log["value"] = rng.integers(9000, 9000 + spread, n_entries)
    log["instance"] = rng.integers(0, 3, n_entries)
    log["records"] = rng.integers(1, 20, n_entries) * (rng.integers(0, 4, n_entries) >= zero_share)
    keep = (log["records"] > 0) & ((instance < 0) | (log["instance"] == instance))
    expected = np.full(1, np.nan, dtype=L.metrics_dt)
    _itl_order_stats_into_nb(log["value"][keep].copy(), log["records"][keep].copy(), expected)
    values, table = _itl_counts_by_value_nb(log, np.int64(instance))
    if values.shape[0] == 0:
        assert spread >= n_entries // 2 or not keep.any()
        return
    got = np.full(1, np.nan, dtype=L.metrics_dt)
    _itl_order_stats_into_nb(values, table, got)
    fields = ["itl_mean_ms", "itl_p50_ms", "itl_p90_ms", "itl_p95_ms", "itl_p99_ms"]
    assert [got[0][f] for f in fields] == [expected[0][f] for f in fields]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(allow_nan=False, width=64), max_size=80))
def test_float_radix_sort_equals_np_sort(values):
    from blis_sweep.kernels.metrics import _sorted_floats_nb

    v = np.array(values, dtype=np.float64)
    assert np.array_equal(_sorted_floats_nb(v), np.sort(v))
