"""End-of-run metrics, reduced exactly as the reference reports them.

Means sum the ascending-sorted values in order; percentiles interpolate linearly
between ranks (the reference's CalculatePercentile); everything in ms is ticks/1000.
"""
import numpy as np
from numba import njit

from .layout import RF_COMPLETED, RF_HAS_TTFT, RF_SCHEDULED


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
        out.itl_mean_ms = np.nan
        out.itl_p50_ms = np.nan
        out.itl_p90_ms = np.nan
        out.itl_p95_ms = np.nan
        out.itl_p99_ms = np.nan
        return
    out.itl_mean_ms = (float(total) / float(n)) / 1000
    order = radix_argsort_nb(values)
    ps = (50.0, 90.0, 95.0, 99.0)
    at = np.empty(4)
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
            at[j] = lo_val / 1000
        else:
            hi_pos = pos
            hi_below = below
            while hi_below + counts[order[hi_pos]] <= hi_rank:
                hi_below += counts[order[hi_pos]]
                hi_pos += 1
            hi_val = float(values[order[hi_pos]])
            at[j] = lo_val / 1000 + (hi_val - lo_val) * (rank - float(lo_rank)) / 1000
    out.itl_p50_ms = at[0]
    out.itl_p90_ms = at[1]
    out.itl_p95_ms = at[2]
    out.itl_p99_ms = at[3]


@njit(cache=True, error_model="numpy")
def _itl_counts_by_value_nb(log, instance):
    """The step log's inter-token latencies of `instance` (all when < 0) as (every value from the
    smallest to the largest, how many records hold it), when that range is under half the log's
    length: step times repeat, so this replaces copying and sorting a long log (a million entries
    on long runs) by one pass and a short table. Empty arrays when the range is wider."""
    n_entries = log.shape[0]
    lo = np.int64(0)
    hi = np.int64(0)
    seen = False
    for e in range(n_entries):
        if log[e].records > 0 and (instance < 0 or log[e].instance == instance):
            v = log[e].value
            if not seen or v < lo:
                lo = v
            if not seen or v > hi:
                hi = v
            seen = True
    empty = np.empty(0, dtype=np.int64)
    if not seen or np.uint64(hi) - np.uint64(lo) >= np.uint64(n_entries // 2):
        return empty, empty
    counts = np.zeros(hi - lo + 1, dtype=np.int64)
    for e in range(n_entries):
        if log[e].records > 0 and (instance < 0 or log[e].instance == instance):
            counts[log[e].value - lo] += log[e].records
    return np.arange(lo, hi + 1), counts


@njit(cache=True, error_model="numpy")
def itl_counts_nb(step_log, n_entries, spans, rq, ist, n_req, n_inst):
    """The step log's entries with their record counts reduced to the inter-token latencies of
    requests that completed (in place: the raw counts are not read again); returns that slice.

    Every record counts except those of requests that never completed: their spans
    (closed by preemption, and the open one, which runs to their instance's latest
    entry) are subtracted, with a running count per instance over the entries.
    """
    log = step_log[:n_entries]
    span_start = np.empty(0, dtype=np.int64)
    span_end = np.empty(0, dtype=np.int64)
    for r in range(n_req):
        if rq[r].flag_bits & RF_COMPLETED or (rq[r].itl_span < 0 and rq[r].spans < 0):
            continue
        if span_start.shape[0] == 0:
            span_start = np.zeros(n_entries, dtype=np.int64)
            span_end = np.zeros(n_entries, dtype=np.int64)
        if rq[r].itl_span >= 0:
            span_start[rq[r].itl_span] += 1
            span_end[ist[rq[r].instance].last_entry] += 1
        k = rq[r].spans
        while k >= 0:
            span_start[spans[k].start] += 1
            span_end[spans[k].end] += 1
            k = spans[k].next
    if span_start.shape[0] == 0:
        return log
    active = np.zeros(n_inst, dtype=np.int64)
    for e in range(n_entries):
        i = log[e].instance
        active[i] += span_start[e]
        log[e].records -= active[i]
        active[i] -= span_end[e]
    return log


@njit(cache=True, error_model="numpy", inline="always")
def _selected_nb(rq, r, instance):
    return instance < 0 or rq[r].instance == instance


@njit(cache=True, error_model="numpy")
def latency_block_nb(out, rq, out_len, itl_log, instance, n_req, totals):
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
        flags = rq[r].flag_bits
        if flags & RF_HAS_TTFT:
            ttft[n_ttft] = rq[r].first_token
            n_ttft += 1
        if flags & RF_COMPLETED:
            e2e[n_e2e] = rq[r].e2e
            if out_len[r] > 0:
                tpot[n_e2e] = float(rq[r].itl_sum) / float(max(out_len[r] - 1, 1))
            else:
                tpot[n_e2e] = 0.0
            n_e2e += 1
        if flags & RF_SCHEDULED:
            sched[n_sched] = rq[r].sched_delay
            n_sched += 1
    # ITLs of completed requests only (itl_counts_nb's log), of this instance
    itl_values, itl_n = _itl_counts_by_value_nb(itl_log, instance)
    m = itl_values.shape[0]
    if m == 0:  # a wide range of step times: the selected entries themselves
        n_entries = itl_log.shape[0]
        itl_values = np.empty(n_entries, dtype=np.int64)
        itl_n = np.empty(n_entries, dtype=np.int64)
        for e in range(n_entries):
            entry = itl_log[e]
            if entry.records > 0 and (instance < 0 or entry.instance == instance):
                itl_values[m] = entry.value
                itl_n[m] = entry.records
                m += 1
    ttft_s = _sorted_as_float_nb(ttft[:n_ttft])
    e2e_s = _sorted_as_float_nb(e2e[:n_e2e])
    tpot_s = _sorted_floats_nb(tpot[:n_e2e])
    sched_s = _sorted_as_float_nb(sched[:n_sched])

    completed, total_in, total_out, sim_ended = totals
    duration = float(sim_ended) / float(1e6)
    out.completed_requests = completed
    out.total_input_tokens = total_in
    out.total_output_tokens = total_out
    out.sim_ended_ticks = sim_ended
    out.duration_s = duration
    out.responses_per_sec = float(completed) / duration if duration > 0 else np.nan
    out.tokens_per_sec = float(total_out) / duration if duration > 0 else np.nan
    out.ttft_count = n_ttft
    out.e2e_mean_ms = mean_ms_nb(e2e_s)
    out.e2e_p50_ms = percentile_ms_nb(e2e_s, 50.0)
    out.e2e_p90_ms = percentile_ms_nb(e2e_s, 90.0)
    out.e2e_p95_ms = percentile_ms_nb(e2e_s, 95.0)
    out.e2e_p99_ms = percentile_ms_nb(e2e_s, 99.0)
    out.ttft_mean_ms = mean_ms_nb(ttft_s)
    out.ttft_p50_ms = percentile_ms_nb(ttft_s, 50.0)
    out.ttft_p90_ms = percentile_ms_nb(ttft_s, 90.0)
    out.ttft_p95_ms = percentile_ms_nb(ttft_s, 95.0)
    out.ttft_p99_ms = percentile_ms_nb(ttft_s, 99.0)
    itl_order_stats_nb(itl_values[:m], itl_n[:m], out)
    # TPOT is the reference's per-request "ITL" (microseconds per output token after the first)
    out.tpot_mean_ms = mean_ms_nb(tpot_s)
    out.tpot_p50_ms = percentile_ms_nb(tpot_s, 50.0)
    out.tpot_p90_ms = percentile_ms_nb(tpot_s, 90.0)
    out.tpot_p99_ms = percentile_ms_nb(tpot_s, 99.0)
    out.scheduling_delay_mean_ms = mean_ms_nb(sched_s)
    out.scheduling_delay_p99_ms = percentile_ms_nb(sched_s, 99.0)


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
        if rq[r].instance == instance and rq[r].flag_bits & RF_COMPLETED:
            count += 1
    if count < 2:
        return 0
    arr = np.empty(count, dtype=np.int64)
    e2e = np.empty(count)
    k = 0
    for r in range(n_req):
        if rq[r].instance == instance and rq[r].flag_bits & RF_COMPLETED:
            arr[k] = arrival[r]
            e2e[k] = float(rq[r].e2e)
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
