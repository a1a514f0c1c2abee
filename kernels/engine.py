"""The kernel entry point: simulate a batch of configurations, one row each.

Every configuration is a cluster of N >= 1 instances behind the reference's control
plane (arrival -> admission -> routing). A cluster event at time T runs before
instance events at T; instance ties go to the lowest index; an event past the
horizon ends the run. Working memory is allocated per configuration, sized from
its workload; if an estimate proves too small the row reports STATUS_CAPACITY and
the caller re-runs it with a larger `capacity_scale`.

Per configuration: _allocate_nb (working memory), _event_loop_nb, then the metrics
blocks (_cluster_block_nb, _instance_block_nb) and per-request results.
"""
from collections import namedtuple

import numpy as np
from numba import njit

from .borrow import borrowed_nb, keep_alive_nb
from .decision_trace import record_routing_nb, routing_scores_nb
from .event_heap import cluster_pop_nb, cluster_push_nb, heap_pop_nb
from .instance import on_arrival_nb, on_queued_nb, push_event_nb, step_nb
from .kv_cache import NEVER_PRIVATE, free_blocks_nb, ht_get_nb, ht_put_nb, new_hash_map_nb
from .layout import (
    ADMIT_REJECT_ALL, ADMIT_TOKEN_BUCKET, RF_ADMISSION_DECIDED, RF_REJECTED, RF_ROUTED, ROUTE_ALWAYS_BUSIEST,
    ROUTE_LEAST_LOADED, ROUTE_PREFIX_AFFINITY, ROUTE_WEIGHTED, STATUS_CAPACITY,
)
from .metrics import hol_blocking_nb, itl_counts_nb, latency_block_nb, priority_inversions_nb, radix_argsort_nb
from .state import (
    CEV_ADMISSION, CEV_ARRIVAL, CEV_ROUTING, EV_ARRIVAL, EV_QUEUED, EV_STEP, Requests, State, block_dt,
    cluster_dt, cpu_block_dt, cluster_event_dt, event_dt, instance_dt, node_dt, request_dt, span_dt, step_dt,
)

INT64_MAX = np.iinfo(np.int64).max

# the control plane's working arrays: its event heap (admission and routing events in flight),
# the prefix-affinity map, scratch for routing scores, and this configuration's trace outputs
ControlPlane = namedtuple("ControlPlane", ("arrival_order", "cheap", "prefix_affinity", "scores", "order",
                                           "route_out", "candidates_out"))


@njit(cache=True, error_model="numpy")
def _pow2_at_least_nb(x):
    p = 16
    while p < x:
        p *= 2
    return p


# ---------------------------------------------------------------- working memory
@njit(cache=True, error_model="numpy")
def _estimates_nb(cfg, reqs, n):
    """(blocks, step-log entries, longest input) a run can touch, at this capacity scale."""
    block_size = cfg.block_size
    in_len, out_len = reqs.in_len, reqs.out_len
    est_blocks = 0
    est_steps = 0
    max_in = 1
    for r in range(n):
        est_blocks += 2 * ((in_len[r] + block_size - 1) // block_size) + (out_len[r] + block_size - 1) // block_size + 4
        est_steps += out_len[r] + 2  # steps that log inter-token latencies: at most one per record
        max_in = max(max_in, in_len[r])
    return est_blocks * cfg.capacity_scale, est_steps * cfg.capacity_scale, max_in


@njit(cache=True, error_model="numpy")
def _allocate_nb(cfg, reqs, n):
    """The owning arrays of one configuration's working memory, in State's order.

    Working memory grows with what the workload can touch, never with total_kv_blocks."""
    n_inst = cfg.num_instances
    block_size = cfg.block_size
    scale = cfg.capacity_scale
    est_blocks, est_steps, max_in = _estimates_nb(cfg, reqs, n)
    block_cap = min(cfg.total_kv_blocks, est_blocks)
    wq_cap = 2 * n + 16
    # at most one key per block, so the map never fills; untouched working memory stays
    # virtual (np.empty), so generous estimates cost address space, not time
    ht_cap = _pow2_at_least_nb(block_cap + block_cap // 4 + 16)
    ids = max_in // block_size + 1
    owners = (
        np.zeros(n_inst, dtype=instance_dt),
        np.zeros(max(n, 1), dtype=request_dt),
        np.zeros(1, dtype=cluster_dt),
        np.empty((n_inst, (4 * n + 64) * scale), dtype=event_dt),
        np.empty((n_inst, wq_cap), dtype=np.int64),
        np.empty((n_inst, n + 1), dtype=np.int64),
        np.empty((n_inst, block_cap), dtype=block_dt),  # fields set when a block is first popped
        new_hash_map_nb(n_inst, ht_cap),
        np.empty(est_blocks, dtype=node_dt),
        np.zeros(max(n, 1), dtype=np.uint64),
        np.zeros(max(n, 1)),
        np.empty(est_steps, dtype=step_dt),
        np.empty((n + 16) * scale, dtype=span_dt),
        np.empty(ids, dtype=np.int64),
        np.empty(ids, dtype=np.int64),
        np.empty((n_inst, ids), dtype=np.int64),
        np.zeros((n_inst, block_cap if cfg.kv_cpu_blocks > 0 else 0), dtype=cpu_block_dt),
    )
    return owners


@njit(cache=True, error_model="numpy")
def _init_state_nb(cfg, st, reqs, n):
    """Initial values of the fields that do not start at zero."""
    ist, rq = st.ist, st.rq
    for i in range(cfg.num_instances):
        inst = ist[i]
        inst.kv_total = cfg.total_kv_blocks
        inst.free_head = -1
        inst.free_tail = -1
        inst.wq_head = st.wq.shape[1] // 2
        inst.memo_req = -1
        inst.last_entry = -1
        inst.cpu_capacity = cfg.kv_cpu_blocks
        inst.transfer_base_latency = cfg.kv_transfer_base_latency
        inst.offload_threshold = cfg.kv_offload_threshold
        inst.transfer_bandwidth = cfg.kv_transfer_bandwidth
    for r in range(n):
        req = rq[r]
        req.map_last = -1
        req.latest_block = -1
        req.instance = -1
        req.itl_span = -1
        req.spans = -1
    st.cs.node_free = -1
    st.cs.bucket_tokens = cfg.token_bucket_capacity
    _mark_private_prefixes_nb(cfg, reqs, n, rq)


@njit(cache=True, error_model="numpy")
def _mark_private_prefixes_nb(cfg, reqs, n, rq):
    """rq[r].private_from: the token count from which request r's block hashes are its own (no
    other request of the run has them), so that kv_cache.close_block_nb can keep those out of
    the prefix map; NEVER_PRIVATE when none are (or with a CPU tier, whose reloads ask the map
    about any hash).

    Hashes identify token prefixes, so a hash at block j is shared only with requests that
    share all j blocks; once a request's hash at some block is unique among the hashes of all
    requests at that block, so are all its later ones. Block by block, only the requests still
    sharing are compared again (one radix sort of their hashes per block)."""
    for r in range(n):
        rq[r].private_from = NEVER_PRIVATE
    if cfg.kv_cpu_blocks > 0 or n == 0:
        return
    block_size = cfg.block_size
    seq_len = reqs.in_len[:n] + reqs.out_len[:n]
    seq_off, ph = reqs.seq_off, reqs.prefix_hash
    sharing = np.arange(n)  # requests whose hashes up to the current block are shared
    keys = np.empty(n, dtype=np.int64)
    still_sharing = np.empty(n, dtype=np.int64)
    m = n
    tokens = block_size
    while m > 0:
        k = 0
        for q in range(m):
            r = sharing[q]
            if seq_len[r] >= tokens:  # shorter ones close no further block: nothing to keep out
                sharing[k] = r
                keys[k] = np.int64(ph[seq_off[r] + tokens])  # hashes are < 2**61
                k += 1
        order = radix_argsort_nb(keys[:k])
        m = 0
        a = 0
        while a < k:
            b = a + 1
            while b < k and keys[order[b]] == keys[order[a]]:
                b += 1
            if b == a + 1:
                rq[sharing[order[a]]].private_from = tokens
            else:
                for q in range(a, b):
                    still_sharing[m] = sharing[order[q]]
                    m += 1
            a = b
        sharing, still_sharing = still_sharing, sharing
        tokens += block_size


# ---------------------------------------------------------------- control plane
@njit(cache=True, error_model="numpy")
def _least_loaded_nb(ist, n_inst, busiest):
    """Lowest-index instance with the least (or, busiest, the most) waiting + running requests."""
    best = 0
    best_load = ist[0].wq_len + ist[0].rb_len
    for i in range(1, n_inst):
        load = ist[i].wq_len + ist[i].rb_len
        if (not busiest and load < best_load) or (busiest and load > best_load):
            best_load = load
            best = i
    return best


@njit(cache=True, error_model="numpy", forceinline=True)
def _route_nb(cfg, st, plane, input_key):
    """Pick the target instance the way the configured routing policy does."""
    ist = st.ist
    n_inst = cfg.num_instances
    policy = cfg.routing_policy
    if policy == ROUTE_LEAST_LOADED or policy == ROUTE_ALWAYS_BUSIEST:
        return _least_loaded_nb(ist, n_inst, policy == ROUTE_ALWAYS_BUSIEST)
    if policy == ROUTE_WEIGHTED:
        scores = plane.scores
        routing_scores_nb(cfg, ist, n_inst, scores)
        best = 0
        best_score = -1.0
        for i in range(n_inst):
            if scores[i] > best_score:
                best_score = scores[i]
                best = i
        return best
    if policy == ROUTE_PREFIX_AFFINITY:
        known = ht_get_nb(plane.prefix_affinity, 0, input_key)
        if known != -1:
            return known
        best = _least_loaded_nb(ist, n_inst, False)
        ht_put_nb(plane.prefix_affinity, 0, input_key, best)
        return best
    target = st.cs.rr_counter % n_inst
    st.cs.rr_counter += 1
    return target


@njit(cache=True, error_model="numpy", forceinline=True)
def _admit_nb(cfg, cs, clock, cost):
    policy = cfg.admission_policy
    if policy == ADMIT_REJECT_ALL:
        return False
    if policy == ADMIT_TOKEN_BUCKET:
        elapsed = clock - int(cs.bucket_last_refill)
        if elapsed > 0:
            refill = float(elapsed) * cfg.token_bucket_refill_rate / 1e6
            cs.bucket_tokens = min(cfg.token_bucket_capacity, cs.bucket_tokens + refill)
            cs.bucket_last_refill = float(clock)
        if cs.bucket_tokens >= cost:
            cs.bucket_tokens -= cost
            return True
        return False
    return True


@njit(cache=True, error_model="numpy")
def _control_plane_nb(cfg, reqs, n, route_out, candidates_out):
    n_inst = cfg.num_instances
    pa_cap = _pow2_at_least_nb(2 * n + 16) if cfg.routing_policy == ROUTE_PREFIX_AFFINITY else 16
    return ControlPlane(radix_argsort_nb(reqs.arrival),  # stable, like a merge sort
                        np.empty(2 * n + 8, dtype=cluster_event_dt), new_hash_map_nb(1, pa_cap),
                        np.empty(n_inst), np.empty(n_inst, dtype=np.int64),
                        route_out, candidates_out)


@njit(cache=True, error_model="numpy")
def _on_cluster_event_nb(cfg, st, reqs, plane, clen, t, kind, r):
    """Arrival -> admission -> routing -> the instance's arrival event. Returns the heap's new length."""
    cs, rq = st.cs, st.rq
    cheap = plane.cheap
    if kind == CEV_ARRIVAL:
        cs.arrived += 1
        clen = cluster_push_nb(cheap, clen, t + cfg.admission_latency, np.int64(CEV_ADMISSION), cs.seq, r)
        cs.seq += 1
    elif kind == CEV_ADMISSION:
        rq[r].flag_bits |= RF_ADMISSION_DECIDED
        if _admit_nb(cfg, cs, t, float(reqs.in_len[r])):
            clen = cluster_push_nb(cheap, clen, t + cfg.routing_latency, np.int64(CEV_ROUTING), cs.seq, r)
            cs.seq += 1
        else:
            cs.rejected += 1
            rq[r].flag_bits |= RF_REJECTED
    else:
        target = _route_nb(cfg, st, plane, reqs.prefix_hash[reqs.seq_off[r] + reqs.in_len[r]])
        if cfg.trace_k >= 0 and plane.route_out.shape[0] > r:
            record_routing_nb(cfg, st.ist, cfg.num_instances, target, t, plane.route_out[r],
                              plane.candidates_out[r], plane.scores, plane.order)
        cs.routed += 1
        rq[r].instance = target
        rq[r].flag_bits |= RF_ROUTED
        push_event_nb(st, target, t, np.int64(EV_ARRIVAL), np.int64(r))
    if clen < 0:
        cs.status = STATUS_CAPACITY
    return clen


# ---------------------------------------------------------------- event loop
# Compiled without reference counting: every array here is a borrowed view (or owned by the
# caller), and the inlined step code takes many arrays out of `st` and `reqs`; counting
# those references (calls that LLVM cannot see through) made the step 2-3 times slower.
@njit(cache=True, error_model="numpy", _nrt=False)
def _event_loop_nb(cfg, st, reqs, n, plane):
    """Run events in the reference's order until none is left or the next is past the horizon.

    Cluster arrivals are the events (arrival time, priority 0, sequence r): instead of holding
    all of them in the heap (deep, cache-cold sifts on long runs), they are taken in that
    order from a sorted list and merged with the heap, which holds only the admission and
    routing events in flight (sequence numbers from n on, as if the arrivals came first)."""
    ist, heap, cs = st.ist, st.heap, st.cs
    arrival, in_len = reqs.arrival, reqs.in_len
    cheap = plane.cheap
    n_inst = cfg.num_instances
    horizon = cfg.horizon
    arrival_order = plane.arrival_order
    next_arrival = 0
    cs.seq = n
    clen = 0
    while cs.status == 0:
        cluster_time = INT64_MAX
        from_arrivals = False
        if next_arrival < n:
            cluster_time = arrival[arrival_order[next_arrival]]
            from_arrivals = True
        # heap events have priority 1 or 2: at equal times the arrival (priority 0) goes first
        if clen > 0 and (not from_arrivals or cheap[0].time < cluster_time):
            cluster_time = cheap[0].time
            from_arrivals = False
        inst_time = INT64_MAX
        inst = -1
        for i in range(n_inst):
            if ist[i].heap_len > 0:
                t = heap[i, 0].time
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
                clen = cluster_pop_nb(cheap, clen)
                e = cheap[clen]
                t, kind, r = e.time, e.prio, e.req
            if t > horizon:
                break
            clen = _on_cluster_event_nb(cfg, st, reqs, plane, clen, t, kind, r)
        else:
            if inst_time > horizon:
                break
            i = np.int64(inst)  # a plain int64 (not a literal): one compiled signature per callee
            t, kind, r = heap_pop_nb(heap, ist, i)
            if t < ist[i].clock:
                ist[i].clock_regressions += 1
            ist[i].clock = t
            if kind == EV_ARRIVAL:
                on_arrival_nb(cfg, st, i, r, t, in_len)
            elif kind == EV_QUEUED:
                on_queued_nb(st, i, r, t, in_len)
            elif kind == EV_STEP:
                step_nb(cfg, st, reqs, i, t)


# ---------------------------------------------------------------- results
@njit(cache=True, error_model="numpy", inline="always")
def _hit_rate_nb(inst):
    hits = inst.cache_hits + inst.cpu_hits
    lookups = hits + inst.cache_misses + inst.cpu_misses
    return float(hits) / float(lookups) if lookups > 0 else 0.0


@njit(cache=True, error_model="numpy", inline="always")
def _thrashing_rate_nb(inst):
    return float(inst.thrashing) / float(inst.offloads) if inst.offloads > 0 else 0.0


@njit(cache=True, error_model="numpy")
def _instance_block_nb(cfg, st, reqs, n, itl_log, i, row):
    """Instance i's metrics block (fields it does not define stay NaN)."""
    inst = st.ist[i]
    totals = (np.int64(inst.completed), np.int64(inst.total_input), np.int64(inst.total_output),
              np.int64(min(inst.clock, cfg.horizon)))
    latency_block_nb(row, st.rq, reqs.out_len, itl_log, i, np.int64(n), totals)
    row.preemptions = inst.preemptions
    row.cache_hit_rate = _hit_rate_nb(inst)
    row.kv_peak_blocks = inst.peak_kv
    row.kv_block_ticks = inst.kv_block_ticks
    row.priority_inversions = priority_inversions_nb(st.rq, reqs.arrival, i, n)
    row.waiting_at_end = inst.wq_len
    row.running_at_end = inst.rb_len
    row.kv_used_at_end = inst.kv_used
    row.kv_free_at_end = free_blocks_nb(st.ist, i)
    row.kv_total_blocks = cfg.total_kv_blocks
    row.steps = inst.step_count
    row.kv_thrashing_rate = _thrashing_rate_nb(inst)
    row.status = 0


@njit(cache=True, error_model="numpy")
def _cluster_block_nb(cfg, st, reqs, n, itl_log, row):
    """The metrics block merged over all instances."""
    ist, cs = st.ist, st.cs
    n_inst = cfg.num_instances
    completed = total_in = total_out = preemptions = waiting = running = used_end = free_end = 0
    steps = regressions = alloc_failures = inversions = sim_ended = peak = 0
    block_ticks = hit_rate_sum = thrashing_sum = 0.0
    wq_sums = np.empty(n_inst, dtype=np.int64)
    wq_counts = np.empty(n_inst, dtype=np.int64)
    for i in range(n_inst):
        inst = ist[i]
        sim_ended = max(sim_ended, min(inst.clock, cfg.horizon))
        peak = max(peak, inst.peak_kv)
        block_ticks += inst.kv_block_ticks
        hit_rate_sum += _hit_rate_nb(inst)
        thrashing_sum += _thrashing_rate_nb(inst)
        wq_sums[i] = inst.wq_sample_sum
        wq_counts[i] = inst.wq_sample_count
        completed += inst.completed
        total_in += inst.total_input
        total_out += inst.total_output
        preemptions += inst.preemptions
        waiting += inst.wq_len
        running += inst.rb_len
        used_end += inst.kv_used
        free_end += free_blocks_nb(ist, i)
        steps += inst.step_count
        regressions += inst.clock_regressions
        alloc_failures += inst.kv_alloc_failures
        inversions += priority_inversions_nb(st.rq, reqs.arrival, i, n)
    latency_block_nb(row, st.rq, reqs.out_len, itl_log, np.int64(-1), np.int64(n),
                     (np.int64(completed), np.int64(total_in), np.int64(total_out), np.int64(sim_ended)))
    row.preemptions = preemptions
    row.cache_hit_rate = hit_rate_sum / float(n_inst)
    row.kv_peak_blocks = peak
    row.kv_block_ticks = block_ticks
    row.priority_inversions = inversions
    row.hol_blocking_events = hol_blocking_nb(wq_sums, wq_counts)
    row.rejected_requests = cs.rejected
    row.arrived_requests = cs.arrived
    row.routed_requests = cs.routed
    row.waiting_at_end = waiting
    row.running_at_end = running
    # admitted but not yet in a wait queue (in the control plane or between arrival and queued)
    row.in_flight_at_end = cs.arrived - cs.rejected - completed - waiting - running
    row.kv_used_at_end = used_end
    row.kv_free_at_end = free_end
    row.kv_total_blocks = cfg.total_kv_blocks * n_inst
    row.steps = steps
    row.clock_regressions = regressions
    row.kv_alloc_failures = alloc_failures
    row.kv_thrashing_rate = thrashing_sum / float(n_inst)
    row.status = 0


@njit(cache=True, error_model="numpy")
def _request_results_nb(rq, n, out):
    for r in range(n):
        req = rq[r]
        o = out[r]
        o.ttft = req.first_token
        o.e2e = req.e2e
        o.itl_sum = req.itl_sum
        o.sched = req.sched_delay
        o.flag_bits = req.flag_bits
        o.instance = req.instance


# ---------------------------------------------------------------- one configuration, a batch
# Inlined by Numba into the batch loop: as a function of its own it was one more level at which
# LLVM re-optimised the whole linked kernel (about 3 s of every cold compile).
@njit(cache=True, error_model="numpy", inline="always")
def simulate_config_nb(c, cfgs, wls, outs):
    """Simulate configuration c of the batch into row c of the outputs (NaN-filled by the caller)."""
    cfg = borrowed_nb(cfgs)[c]
    w = cfg.workload
    base = wls.start[w]
    n_all = wls.count[w]
    # like the reference's trace reader, stop at the first request past the horizon
    n = 0
    while n < n_all and wls.arrival[base + n] <= cfg.horizon:
        n += 1
    end = base + n
    reqs = Requests(borrowed_nb(wls.arrival[base:end]), borrowed_nb(wls.in_len[base:end]),
                    borrowed_nb(wls.out_len[base:end]), borrowed_nb(wls.seq_off[base:end]),
                    borrowed_nb(wls.id_rank[base:end]), borrowed_nb(wls.prefix_hash), borrowed_nb(wls.pow_table))
    owners = _allocate_nb(cfg, reqs, n)
    # Everything works on borrowed views (kernels.borrow); `owners` goes to keep_alive_nb
    # last, so that none is freed while its view is in use. (A State cannot be returned by a
    # function: Numba does not return records, and st.cs is one.)
    st = State(borrowed_nb(owners[0]), borrowed_nb(owners[1]), borrowed_nb(owners[2])[0],
               borrowed_nb(owners[3]), borrowed_nb(owners[4]), borrowed_nb(owners[5]), borrowed_nb(owners[6]),
               borrowed_nb(owners[7]), borrowed_nb(owners[8]), borrowed_nb(owners[9]), borrowed_nb(owners[10]),
               borrowed_nb(owners[11]), borrowed_nb(owners[12]), borrowed_nb(owners[13]),
               borrowed_nb(owners[14]), borrowed_nb(owners[15]), borrowed_nb(owners[16]))
    _init_state_nb(cfg, st, reqs, n)
    plane = _control_plane_nb(cfg, reqs, n, outs.trace_route[c], outs.trace_candidates[c])
    _event_loop_nb(cfg, st, reqs, n, plane)
    row = outs.cluster[c]
    row.status = st.cs.status
    if st.cs.status == 0:
        itl_log = itl_counts_nb(st.step_log, st.cs.log_len, st.spans, st.rq, st.ist, n, cfg.num_instances)
        for i in range(min(cfg.num_instances, outs.instances.shape[1])):
            _instance_block_nb(cfg, st, reqs, n, itl_log, np.int64(i), outs.instances[c, i])
        _cluster_block_nb(cfg, st, reqs, n, itl_log, row)
        if outs.requests.shape[1] >= n:
            _request_results_nb(st.rq, n, outs.requests[c])
    keep_alive_nb(owners)


@njit(cache=True, error_model="numpy", nogil=True)
def simulate_batch_nb(cfgs, wls, outs):
    """Simulate every configuration record of `cfgs` (layout.cfg_dt) on the packed workloads `wls`
    (state.Workloads); all outputs (state.Outputs) are preallocated and NaN-filled by the caller.

    outs.cluster[c] is the merged metrics block (layout.metrics_dt); outs.instances[c, i] the
    per-instance blocks (pass shape (C, 0) to skip); outs.requests[c, r] the per-request
    results (layout.request_out_dt; shape (C, 0) to skip); outs.trace_route[c, r] and
    outs.trace_candidates[c, r, k] the routing decisions of configs with trace_k >= 0.
    Serial and free of the GIL: the caller runs slices of a batch on several threads (a
    plain loop compiles in a fraction of the time a parallel one takes).
    """
    for c in range(cfgs.shape[0]):
        simulate_config_nb(np.int64(c), cfgs, wls, outs)
