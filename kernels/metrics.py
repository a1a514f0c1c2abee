"""End-of-run metrics, reduced exactly as the reference reports them.

Means sum the ascending-sorted values in order; percentiles interpolate linearly
between ranks (the reference's CalculatePercentile); everything in ms is ticks/1000.
"""
import numpy as np
from numba import njit

from .layout import (
    M_COMPLETED, M_DURATION_S, M_E2E_MEAN, M_E2E_P50, M_E2E_P90, M_E2E_P95, M_E2E_P99, M_ITL_MEAN,
    M_ITL_P50, M_ITL_P90, M_ITL_P95, M_ITL_P99, M_RESPONSES_PER_SEC, M_SCHED_DELAY_MEAN,
    M_SCHED_DELAY_P99, M_SIM_ENDED_TICKS, M_TOKENS_PER_SEC, M_TOTAL_INPUT_TOKENS,
    M_TOTAL_OUTPUT_TOKENS, M_TPOT_MEAN, M_TPOT_P50, M_TPOT_P90, M_TPOT_P99, M_TTFT_COUNT,
    M_TTFT_MEAN, M_TTFT_P50, M_TTFT_P90, M_TTFT_P95, M_TTFT_P99, RF_COMPLETED, RF_HAS_TTFT,
    RF_SCHEDULED,
)
from .state import (
    IS_LAST_ENTRY, R_E2E, R_FIRST_TOKEN, R_FLAGS, R_INSTANCE, R_ITL_SPAN, R_ITL_SUM, R_SCHED_DELAY, R_SPANS,
    SL_INSTANCE, SL_RECORDS, SL_VALUE, SP_END, SP_NEXT, SP_START,
)


@njit(cache=True, error_model="numpy")
def radix_argsort_nb(values):
    """Stable argsort of int64 values: LSD radix sort on 8-bit digits of value - min, with only
    as many passes as the range of the values needs (two or four for step times and arrival
    ticks). Linear time, two index arrays of working memory, and one small function instead of
    Numba's generic sorts."""
    n = values.shape[0]
    order = np.arange(n)
    if n < 2:
        return order
    lo = values[0]
    hi = values[0]
    for k in range(1, n):
        lo = min(lo, values[k])
        hi = max(hi, values[k])
    base = np.uint64(lo)
    span = np.uint64(hi) - base  # modular: exact for any int64 range
    spare = np.empty(n, dtype=np.int64)
    count = np.empty(257, dtype=np.int64)
    shift = np.uint64(0)
    while shift < np.uint64(64) and (span >> shift) != np.uint64(0):
        count[:] = 0
        for k in range(n):
            count[np.int64(((np.uint64(values[order[k]]) - base) >> shift) & np.uint64(255)) + 1] += 1
        for d in range(256):
            count[d + 1] += count[d]
        for k in range(n):
            o = order[k]
            d = np.int64(((np.uint64(values[o]) - base) >> shift) & np.uint64(255))
            spare[count[d]] = o
            count[d] += 1
        order, spare = spare, order
        shift += np.uint64(8)
    return order


@njit(cache=True, error_model="numpy")
def _sorted_as_float_nb(values):
    """Integer ticks in ascending order, as floats (the same values float() of each gives)."""
    order = radix_argsort_nb(values)
    out = np.empty(values.shape[0])
    for k in range(values.shape[0]):
        out[k] = float(values[order[k]])
    return out


@njit(cache=True, error_model="numpy")
def _sorted_floats_nb(values):
    """values (float64, no NaN) in ascending order, by a radix sort of their bit patterns made
    order-preserving (negative values: magnitude bits flipped), instead of Numba's float sort."""
    keys = values.view(np.int64).copy()
    for k in range(keys.shape[0]):
        if keys[k] < 0:
            keys[k] ^= np.int64(0x7FFFFFFFFFFFFFFF)
    order = radix_argsort_nb(keys)
    out = np.empty(values.shape[0])
    for k in range(values.shape[0]):
        out[k] = values[order[k]]
    return out


@njit(cache=True, error_model="numpy")
def percentile_ms_nb(sorted_values, p):
    n = sorted_values.shape[0]
    if n == 0:
        return np.nan
    rank = p / 100.0 * float(n - 1)
    lo = int(np.floor(rank))
    hi = int(np.ceil(rank))
    if lo == hi:
        return sorted_values[lo] / 1000
    if hi >= n:
        return sorted_values[n - 1] / 1000
    return sorted_values[lo] / 1000 + (sorted_values[hi] - sorted_values[lo]) * (rank - float(lo)) / 1000


@njit(cache=True, error_model="numpy")
def mean_ms_nb(sorted_values):
    n = sorted_values.shape[0]
    if n == 0:
        return np.nan
    total = 0.0
    for k in range(n):
        total += sorted_values[k]
    return (total / float(n)) / 1000


@njit(cache=True, error_model="numpy")
def itl_order_stats_nb(values, counts, out):
    """Mean and percentiles of the inter-token latencies: counts[k] of them equal values[k].

    The run logs one value per step with how many requests recorded it (a few per
    step instead of one per output token). Ranks are read off cumulative counts in
    value order; the mean is exact (an integer sum below 2**63, divided once).
    """
    n = 0
    total = 0
    for k in range(values.shape[0]):
        n += counts[k]
        total += values[k] * counts[k]
    if n == 0:
        out[M_ITL_MEAN] = np.nan
        out[M_ITL_P50] = np.nan
        out[M_ITL_P90] = np.nan
        out[M_ITL_P95] = np.nan
        out[M_ITL_P99] = np.nan
        return
    out[M_ITL_MEAN] = (float(total) / float(n)) / 1000
    order = radix_argsort_nb(values)
    idx = (M_ITL_P50, M_ITL_P90, M_ITL_P95, M_ITL_P99)
    ps = (50.0, 90.0, 95.0, 99.0)
    # the value of 0-based rank k: the first in value order whose cumulative count exceeds k;
    # the lower ranks asked for only grow, so one forward walk finds them (no cumulative array)
    pos = 0
    below = 0  # records before sorted position pos
    for j in range(4):
        rank = ps[j] / 100.0 * float(n - 1)
        lo_rank = int(np.floor(rank))
        hi_rank = int(np.ceil(rank))
        while below + counts[order[pos]] <= lo_rank:
            below += counts[order[pos]]
            pos += 1
        lo_val = float(values[order[pos]])
        if lo_rank == hi_rank:
            out[idx[j]] = lo_val / 1000
        else:
            hi_pos = pos
            hi_below = below
            while hi_below + counts[order[hi_pos]] <= hi_rank:
                hi_below += counts[order[hi_pos]]
                hi_pos += 1
            hi_val = float(values[order[hi_pos]])
            out[idx[j]] = lo_val / 1000 + (hi_val - lo_val) * (rank - float(lo_rank)) / 1000


@njit(cache=True, error_model="numpy")
def _itl_counts_by_value_nb(slog, itl_counts, instance):
    """The step log's inter-token latencies of `instance` (all when < 0) as (every value from the
    smallest to the largest, how many records hold it), when that range is under half the log's
    length: step times repeat, so this replaces copying and sorting a long log (a million entries
    on long runs) by one pass and a short table. Empty arrays when the range is wider."""
    n_entries = itl_counts.shape[0]
    lo = np.int64(0)
    hi = np.int64(0)
    seen = False
    for e in range(n_entries):
        if itl_counts[e] > 0 and (instance < 0 or slog[SL_INSTANCE, e] == instance):
            v = slog[SL_VALUE, e]
            if not seen or v < lo:
                lo = v
            if not seen or v > hi:
                hi = v
            seen = True
    empty = np.empty(0, dtype=np.int64)
    if not seen or np.uint64(hi) - np.uint64(lo) >= np.uint64(n_entries // 2):
        return empty, empty
    width = hi - lo + 1
    counts = np.zeros(width, dtype=np.int64)
    for e in range(n_entries):
        if itl_counts[e] > 0 and (instance < 0 or slog[SL_INSTANCE, e] == instance):
            counts[slog[SL_VALUE, e] - lo] += itl_counts[e]
    return np.arange(lo, hi + 1), counts


@njit(cache=True, error_model="numpy")
def itl_counts_nb(slog, n_entries, spans, rq, ist, n_req, n_inst):
    """Per step-log entry, the inter-token latencies recorded there by requests that completed.

    Every record counts except those of requests that never completed: their spans
    (closed by preemption, and the open one, which runs to their instance's latest
    entry) are subtracted, with a running count per instance over the entries.
    """
    counts = slog[SL_RECORDS, :n_entries]  # adjusted in place: the log's record counts are not read again
    span_start = np.empty(0, dtype=np.int64)
    span_end = np.empty(0, dtype=np.int64)
    for r in range(n_req):
        if rq[r, R_FLAGS] & RF_COMPLETED or (rq[r, R_ITL_SPAN] < 0 and rq[r, R_SPANS] < 0):
            continue
        if span_start.shape[0] == 0:
            span_start = np.zeros(n_entries, dtype=np.int64)
            span_end = np.zeros(n_entries, dtype=np.int64)
        if rq[r, R_ITL_SPAN] >= 0:
            span_start[rq[r, R_ITL_SPAN]] += 1
            span_end[ist[rq[r, R_INSTANCE], IS_LAST_ENTRY]] += 1
        k = rq[r, R_SPANS]
        while k >= 0:
            span_start[spans[SP_START, k]] += 1
            span_end[spans[SP_END, k]] += 1
            k = spans[SP_NEXT, k]
    if span_start.shape[0] == 0:
        return counts
    active = np.zeros(n_inst, dtype=np.int64)
    for e in range(n_entries):
        i = slog[SL_INSTANCE, e]
        active[i] += span_start[e]
        counts[e] -= active[i]
        active[i] -= span_end[e]
    return counts


@njit(cache=True, error_model="numpy", inline="always")
def _selected_nb(rq, r, instance):
    return instance < 0 or rq[r, R_INSTANCE] == instance


@njit(cache=True, error_model="numpy")
def latency_block_nb(out, rq, out_len, slog, itl_counts, instance, n_req,
                     completed, total_in, total_out, sim_ended):
    """Fill one metrics block over the requests of `instance` (or all when instance < 0)."""
    ttft = np.empty(n_req, dtype=np.int64)  # integer ticks, radix-sorted below
    e2e = np.empty(n_req, dtype=np.int64)
    tpot = np.empty(n_req)
    sched = np.empty(n_req, dtype=np.int64)
    n_ttft = 0
    n_e2e = 0
    n_sched = 0
    for r in range(n_req):
        if not _selected_nb(rq, r, instance):
            continue
        flags = rq[r, R_FLAGS]
        if flags & RF_HAS_TTFT:
            ttft[n_ttft] = rq[r, R_FIRST_TOKEN]
            n_ttft += 1
        if flags & RF_COMPLETED:
            e2e[n_e2e] = rq[r, R_E2E]
            if out_len[r] > 0:
                tpot[n_e2e] = float(rq[r, R_ITL_SUM]) / float(max(out_len[r] - 1, 1))
            else:
                tpot[n_e2e] = 0.0
            n_e2e += 1
        if flags & RF_SCHEDULED:
            sched[n_sched] = rq[r, R_SCHED_DELAY]
            n_sched += 1
    # ITLs of completed requests only (itl_counts, see kernels.engine), of this instance
    n_entries = itl_counts.shape[0]
    itl_values, itl_n = _itl_counts_by_value_nb(slog, itl_counts, instance)
    m = itl_values.shape[0]
    if m == 0:
        itl_values = np.empty(n_entries, dtype=np.int64)
        itl_n = np.empty(n_entries, dtype=np.int64)
        for e in range(n_entries):
            if itl_counts[e] > 0 and (instance < 0 or slog[SL_INSTANCE, e] == instance):
                itl_values[m] = slog[SL_VALUE, e]
                itl_n[m] = itl_counts[e]
                m += 1
    ttft_s = _sorted_as_float_nb(ttft[:n_ttft])
    e2e_s = _sorted_as_float_nb(e2e[:n_e2e])
    tpot_s = _sorted_floats_nb(tpot[:n_e2e])
    sched_s = _sorted_as_float_nb(sched[:n_sched])

    duration = float(sim_ended) / float(1e6)
    out[M_COMPLETED] = completed
    out[M_TOTAL_INPUT_TOKENS] = total_in
    out[M_TOTAL_OUTPUT_TOKENS] = total_out
    out[M_SIM_ENDED_TICKS] = sim_ended
    out[M_DURATION_S] = duration
    out[M_RESPONSES_PER_SEC] = float(completed) / duration if duration > 0 else np.nan
    out[M_TOKENS_PER_SEC] = float(total_out) / duration if duration > 0 else np.nan
    out[M_TTFT_COUNT] = n_ttft
    out[M_E2E_MEAN] = mean_ms_nb(e2e_s)
    out[M_E2E_P50] = percentile_ms_nb(e2e_s, 50.0)
    out[M_E2E_P90] = percentile_ms_nb(e2e_s, 90.0)
    out[M_E2E_P95] = percentile_ms_nb(e2e_s, 95.0)
    out[M_E2E_P99] = percentile_ms_nb(e2e_s, 99.0)
    out[M_TTFT_MEAN] = mean_ms_nb(ttft_s)
    out[M_TTFT_P50] = percentile_ms_nb(ttft_s, 50.0)
    out[M_TTFT_P90] = percentile_ms_nb(ttft_s, 90.0)
    out[M_TTFT_P95] = percentile_ms_nb(ttft_s, 95.0)
    out[M_TTFT_P99] = percentile_ms_nb(ttft_s, 99.0)
    itl_order_stats_nb(itl_values[:m], itl_n[:m], out)
    # TPOT is the reference's per-request "ITL" (microseconds per output token after the first)
    out[M_TPOT_MEAN] = mean_ms_nb(tpot_s)
    out[M_TPOT_P50] = percentile_ms_nb(tpot_s, 50.0)
    out[M_TPOT_P90] = percentile_ms_nb(tpot_s, 90.0)
    out[M_TPOT_P99] = percentile_ms_nb(tpot_s, 99.0)
    out[M_SCHED_DELAY_MEAN] = mean_ms_nb(sched_s)
    out[M_SCHED_DELAY_P99] = percentile_ms_nb(sched_s, 99.0)


@njit(cache=True, error_model="numpy")
def count_inversions_nb(arrival, e2e):
    """Pairs a before b in arrival order (ties: index order) with e2e[a] > 2 * e2e[b].

    The same count as comparing all pairs, in O(n log n): walk the requests in arrival
    order and ask a Fenwick tree over the ranks of the E2E values how many earlier
    requests exceed twice the current one.
    """
    count = arrival.shape[0]
    if count < 2:
        return 0
    order = radix_argsort_nb(arrival)  # stable: ties in arrival keep index order
    ranked = _sorted_floats_nb(e2e)
    tree = np.zeros(count + 1, dtype=np.int64)
    inversions = 0
    for seen in range(count):
        value = e2e[order[seen]]
        # earlier requests with e2e <= 2 * value: a prefix of the ranks
        k = np.searchsorted(ranked, value * 2.0, side="right")
        not_above = 0
        while k > 0:
            not_above += tree[k]
            k -= k & -k
        inversions += seen - not_above
        k = np.searchsorted(ranked, value, side="left") + 1
        while k <= count:
            tree[k] += 1
            k += k & -k
    return inversions


@njit(cache=True, error_model="numpy")
def priority_inversions_nb(rq, arrival, instance, n_req):
    """Pairs (earlier arrival, later arrival) of completed requests on one instance where the
    earlier one's E2E exceeds twice the later one's (the reference's anomaly heuristic)."""
    count = 0
    for r in range(n_req):
        if rq[r, R_INSTANCE] == instance and rq[r, R_FLAGS] & RF_COMPLETED:
            count += 1
    if count < 2:
        return 0
    arr = np.empty(count, dtype=np.int64)
    e2e = np.empty(count)
    k = 0
    for r in range(n_req):
        if rq[r, R_INSTANCE] == instance and rq[r, R_FLAGS] & RF_COMPLETED:
            arr[k] = arrival[r]
            e2e[k] = float(rq[r, R_E2E])
            k += 1
    return count_inversions_nb(arr, e2e)


@njit(cache=True, error_model="numpy")
def hol_blocking_nb(sample_sums, sample_counts):
    """Instances whose mean wait-queue depth exceeds twice the mean over instances."""
    n = sample_sums.shape[0]
    if n < 2:
        return 0
    avgs = np.empty(n)
    m = 0
    total = 0.0
    for i in range(n):
        if sample_counts[i] == 0:
            continue
        avgs[m] = float(sample_sums[i]) / float(sample_counts[i])
        total += avgs[m]
        m += 1
    if m < 2:
        return 0
    mean_avg = total / float(m)
    count = 0
    if mean_avg > 0:
        for k in range(m):
            if avgs[k] > 2.0 * mean_avg:
                count += 1
    return count
