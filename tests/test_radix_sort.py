"""The kernels' radix argsort is a stable sort (kernels.metrics.radix_argsort_nb)."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from blis_sweep.kernels.metrics import radix_argsort_nb

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
    from blis_sweep.kernels.metrics import itl_order_stats_nb, mean_ms_nb, percentile_ms_nb

    values = np.array([v for v, _ in pairs], dtype=np.int64)
    counts = np.array([c for _, c in pairs], dtype=np.int64)
    out = np.full(L.N_METRICS, np.nan)
    itl_order_stats_nb(values, counts, out)
    every = np.sort(np.repeat(values, counts).astype(np.float64))
    for field, p in ((L.M_ITL_P50, 50.0), (L.M_ITL_P90, 90.0), (L.M_ITL_P95, 95.0), (L.M_ITL_P99, 99.0)):
        assert out[field] == percentile_ms_nb(every, p)
    assert np.isclose(out[L.M_ITL_MEAN], mean_ms_nb(every))


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 400), st.integers(0, 3), st.integers(1, 2000), st.integers(-1, 2), st.integers(0, 2**31))
def test_itl_statistics_by_value_equal_those_of_the_copied_log(n_entries, zero_share, spread, instance, seed):
    # the per-value table (narrow ranges of step times) and the copied log (wide ones) give the same block
    from blis_sweep.kernels import layout as L
    from blis_sweep.kernels import state as S
    from blis_sweep.kernels.metrics import _itl_counts_by_value_nb, itl_order_stats_nb

    rng = np.random.default_rng(seed)
    slog = np.zeros((S.N_SL, n_entries), dtype=np.int64)
    slog[S.SL_VALUE] = rng.integers(9000, 9000 + spread, n_entries)
    slog[S.SL_INSTANCE] = rng.integers(0, 3, n_entries)
    counts = rng.integers(1, 20, n_entries) * (rng.integers(0, 4, n_entries) >= zero_share)
    keep = (counts > 0) & ((instance < 0) | (slog[S.SL_INSTANCE] == instance))
    expected = np.full(L.N_METRICS, np.nan)
    itl_order_stats_nb(slog[S.SL_VALUE][keep].copy(), counts[keep].copy(), expected)
    values, table = _itl_counts_by_value_nb(slog, counts, np.int64(instance))
    if values.shape[0] == 0:
        assert spread >= n_entries // 2 or not keep.any()
        return
    got = np.full(L.N_METRICS, np.nan)
    itl_order_stats_nb(values, table, got)
    fields = [L.M_ITL_MEAN, L.M_ITL_P50, L.M_ITL_P90, L.M_ITL_P95, L.M_ITL_P99]
    assert np.array_equal(got[fields], expected[fields])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(allow_nan=False, width=64), max_size=80))
def test_float_radix_sort_equals_np_sort(values):
    from blis_sweep.kernels.metrics import _sorted_floats_nb

    v = np.array(values, dtype=np.float64)
    assert np.array_equal(_sorted_floats_nb(v), np.sort(v))
