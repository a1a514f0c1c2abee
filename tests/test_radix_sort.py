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
