"""The kernel entry point: simulate a batch of configurations, one row each.

Every configuration is a cluster of N >= 1 instances behind the reference's control
plane (arrival -> admission -> routing). A cluster event at time T runs before
instance events at T; instance ties go to the lowest index; an event past the
horizon ends the run. Working memory is allocated per configuration, sized from
its workload; if an estimate proves too small the row reports STATUS_CAPACITY and
the caller re-runs it with a larger CI_CAPACITY_SCALE.
"""
import numpy as np
from numba import njit

from .borrow import borrowed_nb
from .decision_trace import record_routing_nb
from .event_heap import cluster_pop_nb, cluster_push_nb, heap_pop_nb
from .instance import on_arrival_nb, on_queued_nb, push_event_nb, step_nb
from .kv_cache import HT_EMPTY, count_free_list_nb, ht_get_nb, ht_put_nb
from .layout import (
    ADMIT_REJECT_ALL, ADMIT_TOKEN_BUCKET, CF_BUCKET_CAPACITY, CF_BUCKET_REFILL, CF_CACHE_WEIGHT,
    CF_KV_OFFLOAD_THRESHOLD, CF_KV_TRANSFER_BANDWIDTH, CF_LOAD_WEIGHT, CI_ADMISSION, CI_KV_CPU_BLOCKS,
    CI_KV_TRANSFER_BASE_LATENCY, CI_ADMISSION_LATENCY, CI_BLOCK_SIZE, CI_CAPACITY_SCALE, CI_HORIZON,
    CI_NUM_INSTANCES, CI_ROUTING, CI_ROUTING_LATENCY, CI_TOTAL_KV_BLOCKS, CI_TRACE_K, CI_WORKLOAD, M_ARRIVED,
    M_CACHE_HIT_RATE, M_CLOCK_REGRESSIONS, M_HOL_BLOCKING, M_IN_FLIGHT_END, M_KV_ALLOC_FAILURES,
    M_KV_BLOCK_TICKS, M_KV_FREE_END, M_KV_PEAK_BLOCKS, M_KV_THRASHING_RATE, M_KV_TOTAL, M_KV_USED_END,
    M_PREEMPTIONS, M_PRIORITY_INVERSIONS, M_REJECTED, M_ROUTED, M_RUNNING_END, M_STATUS, M_STEPS,
    M_WAITING_END, N_METRICS, RF_ADMISSION_DECIDED, RF_REJECTED, RF_ROUTED, ROUTE_ALWAYS_BUSIEST, ROUTE_LEAST_LOADED,
    ROUTE_PREFIX_AFFINITY, ROUTE_WEIGHTED,
)
from .metrics import hol_blocking_nb, itl_counts_nb, latency_block_nb, priority_inversions_nb, radix_argsort_nb
from .state import (
    CEV_ADMISSION, CEV_ARRIVAL, CEV_ROUTING, CFS_BUCKET_LAST_REFILL, CFS_BUCKET_TOKENS,
    CS_ARRIVED, CS_CHEAP_LEN, CS_SL_N, CS_NODE_FREE, CS_NODE_TOP, CS_REJECTED, CS_ROUTED,
    CS_RR_COUNTER, CS_SEQ, CS_STATUS, EV_ARRIVAL, EV_QUEUED, EV_STEP, H_TIME, IF_KV_BLOCK_TICKS, IF_OFFLOAD_THRESHOLD,
    IF_TRANSFER_BANDWIDTH, IS_CPU_CAPACITY, IS_CPU_HITS, IS_CPU_MISSES, IS_OFFLOADS, IS_THRASHING,
    IS_MEMO_REQ, IS_TRANSFER_BASE_LATENCY,
    IS_CACHE_HITS, IS_CACHE_MISSES, IS_CLOCK, IS_CLOCK_REGRESSIONS, IS_COMPLETED, IS_FREE_HEAD,
    IS_FREE_TAIL, IS_HEAP_LEN, IS_KV_ALLOC_FAILURES, IS_KV_TOTAL, IS_KV_USED, IS_PEAK_KV,
    IS_PREEMPTIONS, IS_RB_LEN, IS_STEP_COUNT, IS_TOTAL_INPUT, IS_TOTAL_OUTPUT, IS_WQ_HEAD, IS_WQ_LEN,
    IS_WQ_SAMPLE_COUNT, IS_WQ_SAMPLE_SUM, K_REQ, K_TIME, N_B, N_CFS, N_CS, N_H, N_IF, N_IS, N_K, N_R,
    R_E2E, R_FIRST_TOKEN, R_FLAGS, R_INSTANCE, R_ITL_SUM, R_LATEST_BLOCK, R_MAP_LAST, R_SCHED_DELAY,
    CS_SPAN_BASE, CS_SPAN_N, IS_LAST_ENTRY, N_SL, R_ITL_SPAN, R_SPANS,
)

INT64_MAX = np.iinfo(np.int64).max


@njit(cache=True, error_model="numpy")
def _pow2_at_least_nb(x):
    p = 16
    while p < x:
        p *= 2
    return p


@njit(cache=True, error_model="numpy", forceinline=True)
def _route_nb(cfg_int, cfg_float, c, ist, n_inst, cs, pa_key, pa_val, input_key):
    """Pick the target instance the way the configured routing policy does."""
    policy = cfg_int[c, CI_ROUTING]
    if policy == ROUTE_LEAST_LOADED or policy == ROUTE_ALWAYS_BUSIEST:
        best = 0
        best_load = ist[0, IS_WQ_LEN] + ist[0, IS_RB_LEN]
        for i in range(1, n_inst):
            load = ist[i, IS_WQ_LEN] + ist[i, IS_RB_LEN]
            if (policy == ROUTE_LEAST_LOADED and load < best_load) or (
                    policy == ROUTE_ALWAYS_BUSIEST and load > best_load):
                best_load = load
                best = i
        return best
    if policy == ROUTE_WEIGHTED:
        weight_sum = cfg_float[c, CF_CACHE_WEIGHT] + cfg_float[c, CF_LOAD_WEIGHT]
        cache_w = cfg_float[c, CF_CACHE_WEIGHT] / weight_sum
        load_w = cfg_float[c, CF_LOAD_WEIGHT] / weight_sum
        max_free = 0
        for i in range(n_inst):
            free = ist[i, IS_KV_TOTAL] - ist[i, IS_KV_USED]
            if free > max_free:
                max_free = free
        best = 0
        best_score = -1.0
        for i in range(n_inst):
            cache_score = 0.0
            if max_free > 0:
                cache_score = float(ist[i, IS_KV_TOTAL] - ist[i, IS_KV_USED]) / float(max_free)
            load_score = 1.0 / (1.0 + float(ist[i, IS_WQ_LEN]))
            score = cache_score * cache_w + load_score * load_w
            if score > best_score:
                best_score = score
                best = i
        return best
    if policy == ROUTE_PREFIX_AFFINITY:
        known = ht_get_nb(pa_key, pa_val, 0, input_key)
        if known != -1:
            return known
        best = 0
        best_load = ist[0, IS_WQ_LEN] + ist[0, IS_RB_LEN]
        for i in range(1, n_inst):
            load = ist[i, IS_WQ_LEN] + ist[i, IS_RB_LEN]
            if load < best_load:
                best_load = load
                best = i
        ht_put_nb(pa_key, pa_val, 0, input_key, best)
        return best
    target = cs[CS_RR_COUNTER] % n_inst
    cs[CS_RR_COUNTER] += 1
    return target


@njit(cache=True, error_model="numpy", forceinline=True)
def _admit_nb(cfg_int, cfg_float, c, cf, clock, cost):
    policy = cfg_int[c, CI_ADMISSION]
    if policy == ADMIT_REJECT_ALL:
        return False
    if policy == ADMIT_TOKEN_BUCKET:
        elapsed = clock - int(cf[CFS_BUCKET_LAST_REFILL])
        if elapsed > 0:
            refill = float(elapsed) * cfg_float[c, CF_BUCKET_REFILL] / 1e6
            cf[CFS_BUCKET_TOKENS] = min(cfg_float[c, CF_BUCKET_CAPACITY], cf[CFS_BUCKET_TOKENS] + refill)
            cf[CFS_BUCKET_LAST_REFILL] = float(clock)
        if cf[CFS_BUCKET_TOKENS] >= cost:
            cf[CFS_BUCKET_TOKENS] -= cost
            return True
        return False
    return True


@njit(cache=True, error_model="numpy")
def simulate_config_nb(c, cfg_int, cfg_float, wl_start, wl_count, wl_arrival, wl_in_len, wl_out_len,
                       wl_seq_off, wl_prefix_hash, wl_id_rank, pow_table,
                       out_cluster, out_instances, req_ttft, req_e2e, req_itl_sum, req_sched, req_flags,
                       req_instance, trace_route, trace_candidates):
    w = cfg_int[c, CI_WORKLOAD]
    base = wl_start[w]
    n_all = wl_count[w]
    horizon = cfg_int[c, CI_HORIZON]
    # like the reference's trace reader, stop at the first request past the horizon
    n = 0
    while n < n_all and wl_arrival[base + n] <= horizon:
        n += 1
    arrival = wl_arrival[base:base + n]
    in_len = wl_in_len[base:base + n]
    out_len = wl_out_len[base:base + n]
    seq_off = wl_seq_off[base:base + n]
    id_rank = wl_id_rank[base:base + n]
    ph = wl_prefix_hash

    n_inst = cfg_int[c, CI_NUM_INSTANCES]
    block_size = cfg_int[c, CI_BLOCK_SIZE]
    total_kv = cfg_int[c, CI_TOTAL_KV_BLOCKS]
    scale = cfg_int[c, CI_CAPACITY_SCALE]

    # working memory grows with what the workload can touch, never with total_kv
    est_blocks = 0
    est_steps = 0
    max_in = 1
    for r in range(n):
        est_blocks += 2 * ((in_len[r] + block_size - 1) // block_size) + (out_len[r] + block_size - 1) // block_size + 4
        est_steps += out_len[r] + 2  # steps that log inter-token latencies: at most one per record
        max_in = max(max_in, in_len[r])
    est_blocks *= scale
    est_steps *= scale
    block_cap = min(total_kv, est_blocks)
    heap_cap = (4 * n + 64) * scale
    wq_cap = 2 * n + 16
    rb_cap = n + 1
    # at most one key per block, so the map never fills; untouched working memory stays
    # virtual (np.empty), so generous estimates cost address space, not time
    ht_cap = _pow2_at_least_nb(block_cap + block_cap // 4 + 16)

    # Owning arrays; everything below works on borrowed views of them (kernels.borrow),
    # and `owners` is touched at the end so that none is freed while its view is in use.
    owners = (
        np.zeros((n_inst, N_IS), dtype=np.int64),
        np.zeros((n_inst, N_IF)),
        np.empty((n_inst, N_H, heap_cap), dtype=np.int64),
        np.empty((n_inst, wq_cap), dtype=np.int64),
        np.empty((n_inst, rb_cap), dtype=np.int64),
        np.empty((n_inst, N_B, block_cap), dtype=np.int64),  # fields set when a block is first popped
        np.empty((n_inst, 2, block_cap), dtype=np.uint64),
        np.full((n_inst, ht_cap), HT_EMPTY, dtype=np.uint64),
        np.empty((n_inst, ht_cap + 1), dtype=np.int64),  # last column: modification counter
        np.zeros((max(n, 1), N_R), dtype=np.int64),
        np.zeros(max(n, 1)),
        np.zeros(max(n, 1), dtype=np.uint64),
        np.empty((2, est_blocks), dtype=np.int64),  # block-list nodes: (block, previous node)
        # step log of inter-token latencies, then the spans of them closed by preemption
        np.empty((N_SL, est_steps + (n + 16) * scale), dtype=np.int64),
        np.zeros(N_CS, dtype=np.int64),
        np.zeros(N_CFS),
        np.empty(max_in // block_size + 1, dtype=np.int64),
        np.empty(max_in // block_size + 1, dtype=np.int64),
        np.empty((n_inst, max_in // block_size + 1), dtype=np.int64),
    )
    ist = borrowed_nb(owners[0])
    ifl = borrowed_nb(owners[1])
    heap = borrowed_nb(owners[2])
    wq = borrowed_nb(owners[3])
    rb = borrowed_nb(owners[4])
    blk = borrowed_nb(owners[5])
    bhash = borrowed_nb(owners[6])
    ht_key = borrowed_nb(owners[7])
    ht_val = borrowed_nb(owners[8])
    rq = borrowed_nb(owners[9])
    prio = borrowed_nb(owners[10])
    chash = borrowed_nb(owners[11])
    nodes = borrowed_nb(owners[12])
    slog = borrowed_nb(owners[13])
    cs = borrowed_nb(owners[14])
    cf = borrowed_nb(owners[15])
    cached_ids = borrowed_nb(owners[16])
    lookup_ids = borrowed_nb(owners[17])
    memo_ids = borrowed_nb(owners[18])
    cfg_int = borrowed_nb(cfg_int)
    cfg_float = borrowed_nb(cfg_float)
    arrival = borrowed_nb(arrival)
    in_len = borrowed_nb(in_len)
    out_len = borrowed_nb(out_len)
    seq_off = borrowed_nb(seq_off)
    id_rank = borrowed_nb(id_rank)
    ph = borrowed_nb(ph)
    pow_table = borrowed_nb(pow_table)
    for i in range(n_inst):
        ist[i, IS_KV_TOTAL] = total_kv
        ist[i, IS_FREE_HEAD] = -1
        ist[i, IS_FREE_TAIL] = -1
        ist[i, IS_WQ_HEAD] = wq_cap // 2
        ist[i, IS_MEMO_REQ] = -1
        ist[i, IS_LAST_ENTRY] = -1
        ht_val[i, ht_cap] = 0
        ist[i, IS_CPU_CAPACITY] = cfg_int[c, CI_KV_CPU_BLOCKS]
        ist[i, IS_TRANSFER_BASE_LATENCY] = cfg_int[c, CI_KV_TRANSFER_BASE_LATENCY]
        ifl[i, IF_OFFLOAD_THRESHOLD] = cfg_float[c, CF_KV_OFFLOAD_THRESHOLD]
        ifl[i, IF_TRANSFER_BANDWIDTH] = cfg_float[c, CF_KV_TRANSFER_BANDWIDTH]
    for r in range(n):
        rq[r, R_MAP_LAST] = -1
        rq[r, R_LATEST_BLOCK] = -1
        rq[r, R_INSTANCE] = -1
        rq[r, R_ITL_SPAN] = -1
        rq[r, R_SPANS] = -1
    cs[CS_NODE_FREE] = -1
    cs[CS_SPAN_BASE] = est_steps
    cs[CS_SPAN_N] = est_steps
    cf[CFS_BUCKET_TOKENS] = cfg_float[c, CF_BUCKET_CAPACITY]
    pa_cap = _pow2_at_least_nb(2 * n + 16) if cfg_int[c, CI_ROUTING] == ROUTE_PREFIX_AFFINITY else 16
    pa_key = np.full((1, pa_cap), HT_EMPTY, dtype=np.uint64)
    pa_val = np.zeros((1, pa_cap + 1), dtype=np.int64)

    # Cluster arrivals are the events (arrival time, priority 0, sequence r): instead of holding
    # all of them in the heap (deep, cache-cold sifts on long runs), they are taken in that
    # order from a sorted list and merged with the heap, which holds only the admission and
    # routing events in flight (sequence numbers from n on, as if the arrivals came first).
    arrival_order = radix_argsort_nb(arrival)  # stable, like a merge sort
    next_arrival = 0
    cs[CS_SEQ] = n
    cheap = np.empty((N_K, 2 * n + 8), dtype=np.int64)
    clen_heap = 0
    trace_k = cfg_int[c, CI_TRACE_K]
    trace_scores = np.empty(n_inst)
    trace_order = np.empty(n_inst, dtype=np.int64)
    admission_latency = cfg_int[c, CI_ADMISSION_LATENCY]
    routing_latency = cfg_int[c, CI_ROUTING_LATENCY]

    while cs[CS_STATUS] == 0:
        cluster_time = INT64_MAX
        from_arrivals = False
        if next_arrival < n:
            cluster_time = arrival[arrival_order[next_arrival]]
            from_arrivals = True
        # heap events have priority 1 or 2: at equal times the arrival (priority 0) goes first
        if clen_heap > 0 and (not from_arrivals or cheap[K_TIME, 0] < cluster_time):
            cluster_time = cheap[K_TIME, 0]
            from_arrivals = False
        inst_time = INT64_MAX
        inst = -1
        for i in range(n_inst):
            if ist[i, IS_HEAP_LEN] > 0:
                t = heap[i, H_TIME, 0]
                if t < inst_time:
                    inst_time = t
                    inst = i
        if cluster_time == INT64_MAX and inst == -1:
            break
        if cluster_time <= inst_time:
            if from_arrivals:
                r = arrival_order[next_arrival]
                next_arrival += 1
                t = arrival[r]
                kind = np.int64(CEV_ARRIVAL)
            else:
                clen_heap = cluster_pop_nb(cheap, clen_heap)
                t = cheap[K_TIME, clen_heap]
                kind = cheap[1, clen_heap]
                r = cheap[K_REQ, clen_heap]
            if t > horizon:
                break
            if kind == CEV_ARRIVAL:
                cs[CS_ARRIVED] += 1
                clen_heap = cluster_push_nb(cheap, clen_heap, t + admission_latency, np.int64(CEV_ADMISSION),
                                            cs[CS_SEQ], r)
                cs[CS_SEQ] += 1
            elif kind == CEV_ADMISSION:
                rq[r, R_FLAGS] |= RF_ADMISSION_DECIDED
                if _admit_nb(cfg_int, cfg_float, c, cf, t, float(in_len[r])):
                    clen_heap = cluster_push_nb(cheap, clen_heap, t + routing_latency, np.int64(CEV_ROUTING),
                                                cs[CS_SEQ], r)
                    cs[CS_SEQ] += 1
                else:
                    cs[CS_REJECTED] += 1
                    rq[r, R_FLAGS] |= RF_REJECTED
            else:
                target = _route_nb(cfg_int, cfg_float, c, ist, n_inst, cs, pa_key, pa_val,
                                   ph[seq_off[r] + in_len[r]])
                if trace_k >= 0 and trace_route.shape[1] > r:
                    record_routing_nb(cfg_int, cfg_float, c, ist, n_inst, trace_k, target, t, r, trace_route,
                                      trace_candidates, trace_scores, trace_order)
                cs[CS_ROUTED] += 1
                rq[r, R_INSTANCE] = target
                rq[r, R_FLAGS] |= RF_ROUTED
                push_event_nb(heap, ist, cs, target, t, np.int64(EV_ARRIVAL), np.int64(r))
            if clen_heap < 0:
                cs[CS_STATUS] = 1
        else:
            if inst_time > horizon:
                break
            i = np.int64(inst)  # a plain int64 (not a literal): one compiled signature per callee
            t, kind, r = heap_pop_nb(heap, ist, i)
            if t < ist[i, IS_CLOCK]:
                ist[i, IS_CLOCK_REGRESSIONS] += 1
            ist[i, IS_CLOCK] = t
            if kind == EV_ARRIVAL:
                on_arrival_nb(heap, ist, cs, cfg_float, c, i, r, t, in_len)
            elif kind == EV_QUEUED:
                on_queued_nb(heap, wq, ist, cs, i, r, t, in_len)
            elif kind == EV_STEP:
                step_nb(cfg_int, cfg_float, c, heap, wq, rb, blk, bhash, ht_key, ht_val, ist, ifl, rq, prio,
                        nodes, cs, chash, slog, i, t, arrival, in_len, out_len,
                        ph, seq_off, id_rank, pow_table, cached_ids, lookup_ids,
                        memo_ids)

    status = cs[CS_STATUS]
    out_cluster[c, :] = np.nan
    out_cluster[c, M_STATUS] = status
    if status != 0:
        _keep_alive_nb(owners)
        return

    # ---- finalize: per-instance blocks, then the merged cluster block
    itl_counts = itl_counts_nb(slog, cs[CS_SL_N], slog, rq, ist, n, n_inst)
    completed = 0
    total_in = 0
    total_out = 0
    sim_ended = 0
    peak = 0
    block_ticks = 0.0
    preemptions = 0
    hit_rate_sum = 0.0
    thrashing_sum = 0.0
    waiting = 0
    running = 0
    used_end = 0
    free_end = 0
    steps = 0
    regressions = 0
    alloc_failures = 0
    inversions = 0
    for i in range(n_inst):
        ended = min(ist[i, IS_CLOCK], horizon)
        hits = ist[i, IS_CACHE_HITS] + ist[i, IS_CPU_HITS]
        lookups = hits + ist[i, IS_CACHE_MISSES] + ist[i, IS_CPU_MISSES]
        hit_rate = float(hits) / float(lookups) if lookups > 0 else 0.0
        thrashing = float(ist[i, IS_THRASHING]) / float(ist[i, IS_OFFLOADS]) if ist[i, IS_OFFLOADS] > 0 else 0.0
        thrashing_sum += thrashing
        inst_inversions = priority_inversions_nb(rq, arrival, i, n)
        if out_instances.shape[1] > i:
            row = out_instances[c, i]
            row[:] = np.nan
            latency_block_nb(row, rq, out_len, slog, itl_counts, np.int64(i), np.int64(n),
                             np.int64(ist[i, IS_COMPLETED]), np.int64(ist[i, IS_TOTAL_INPUT]),
                             np.int64(ist[i, IS_TOTAL_OUTPUT]), np.int64(ended))
            row[M_PREEMPTIONS] = ist[i, IS_PREEMPTIONS]
            row[M_CACHE_HIT_RATE] = hit_rate
            row[M_KV_PEAK_BLOCKS] = ist[i, IS_PEAK_KV]
            row[M_KV_BLOCK_TICKS] = ifl[i, IF_KV_BLOCK_TICKS]
            row[M_PRIORITY_INVERSIONS] = inst_inversions
            row[M_WAITING_END] = ist[i, IS_WQ_LEN]
            row[M_RUNNING_END] = ist[i, IS_RB_LEN]
            row[M_KV_USED_END] = ist[i, IS_KV_USED]
            row[M_KV_FREE_END] = count_free_list_nb(blk, ist, i)
            row[M_KV_TOTAL] = total_kv
            row[M_STEPS] = ist[i, IS_STEP_COUNT]
            row[M_KV_THRASHING_RATE] = thrashing
            row[M_STATUS] = 0
        completed += ist[i, IS_COMPLETED]
        total_in += ist[i, IS_TOTAL_INPUT]
        total_out += ist[i, IS_TOTAL_OUTPUT]
        sim_ended = max(sim_ended, ended)
        peak = max(peak, ist[i, IS_PEAK_KV])
        block_ticks += ifl[i, IF_KV_BLOCK_TICKS]
        preemptions += ist[i, IS_PREEMPTIONS]
        hit_rate_sum += hit_rate
        waiting += ist[i, IS_WQ_LEN]
        running += ist[i, IS_RB_LEN]
        used_end += ist[i, IS_KV_USED]
        free_end += count_free_list_nb(blk, ist, i)
        steps += ist[i, IS_STEP_COUNT]
        regressions += ist[i, IS_CLOCK_REGRESSIONS]
        alloc_failures += ist[i, IS_KV_ALLOC_FAILURES]
        inversions += inst_inversions

    row = out_cluster[c]
    latency_block_nb(row, rq, out_len, slog, itl_counts, np.int64(-1), np.int64(n),
                     np.int64(completed), np.int64(total_in), np.int64(total_out), np.int64(sim_ended))
    row[M_PREEMPTIONS] = preemptions
    row[M_CACHE_HIT_RATE] = hit_rate_sum / float(n_inst)
    row[M_KV_PEAK_BLOCKS] = peak
    row[M_KV_BLOCK_TICKS] = block_ticks
    row[M_PRIORITY_INVERSIONS] = inversions
    row[M_HOL_BLOCKING] = hol_blocking_nb(ist[:, IS_WQ_SAMPLE_SUM].copy(), ist[:, IS_WQ_SAMPLE_COUNT].copy())
    row[M_REJECTED] = cs[CS_REJECTED]
    row[M_ARRIVED] = cs[CS_ARRIVED]
    row[M_ROUTED] = cs[CS_ROUTED]
    row[M_WAITING_END] = waiting
    row[M_RUNNING_END] = running
    # admitted but not yet in a wait queue (in the control plane or between arrival and queued)
    row[M_IN_FLIGHT_END] = cs[CS_ARRIVED] - cs[CS_REJECTED] - completed - waiting - running
    row[M_KV_USED_END] = used_end
    row[M_KV_FREE_END] = free_end
    row[M_KV_TOTAL] = total_kv * n_inst
    row[M_STEPS] = steps
    row[M_CLOCK_REGRESSIONS] = regressions
    row[M_KV_ALLOC_FAILURES] = alloc_failures
    row[M_KV_THRASHING_RATE] = thrashing_sum / float(n_inst)
    row[M_STATUS] = 0

    if req_ttft.shape[1] >= n:
        for r in range(n):
            req_ttft[c, r] = rq[r, R_FIRST_TOKEN]
            req_e2e[c, r] = rq[r, R_E2E]
            req_itl_sum[c, r] = rq[r, R_ITL_SUM]
            req_sched[c, r] = rq[r, R_SCHED_DELAY]
            req_flags[c, r] = rq[r, R_FLAGS]
            req_instance[c, r] = rq[r, R_INSTANCE]
    _keep_alive_nb(owners)


@njit(cache=True, error_model="numpy")
def _keep_alive_nb(owners):
    """A last use of the owning arrays, so they outlive every borrowed view."""
    return len(owners)


@njit(cache=True, error_model="numpy", nogil=True)
def simulate_batch_nb(cfg_int, cfg_float, wl_start, wl_count, wl_arrival, wl_in_len, wl_out_len, wl_seq_off,
                      wl_prefix_hash, wl_id_rank, pow_table, out_cluster, out_instances, req_ttft, req_e2e,
                      req_itl_sum, req_sched, req_flags, req_instance, trace_route, trace_candidates):
    """Simulate every configuration row of cfg_int/cfg_float; all outputs are preallocated by the caller.

    out_cluster[c, M_*] is the merged metrics block; out_instances[c, i, M_*] the
    per-instance blocks (pass shape (C, 0, N_METRICS) to skip); req_*[c, r] the
    per-request results (pass shape (C, 0) to skip); trace_route[c, r, TR_*] and
    trace_candidates[c, r, k, TC_*] the routing decisions of configs with CI_TRACE_K >= 0.
    Serial and free of the GIL: the caller runs slices of a batch on several threads (a
    plain loop compiles in a fraction of the time a parallel one takes).
    """
    for c in range(cfg_int.shape[0]):
        simulate_config_nb(np.int64(c), cfg_int, cfg_float, wl_start, wl_count, wl_arrival, wl_in_len, wl_out_len,
                           wl_seq_off, wl_prefix_hash, wl_id_rank, pow_table, out_cluster, out_instances,
                           req_ttft, req_e2e, req_itl_sum, req_sched, req_flags, req_instance, trace_route,
                           trace_candidates)
