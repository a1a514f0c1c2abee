"""One serving instance: wait queue, continuous batching step, events.

Each function works on instance i of one configuration's working state (kernels.state.State
`st`, its requests `reqs`, its inputs `cfg`). The step mirrors the reference's Step():
priorities and queue order, batch formation (running requests first, then the wait queue),
step time, execution, completion.
"""
import numpy as np
from numba import njit

from .event_heap import heap_push_nb
from .kv_cache import (
    commit_pending_hash_nb, list_append_nb, lookup_cached_blocks_memo_nb, pop_free_block_nb, publish_deferred_nb,
    store_allocate_nb, store_release_nb, try_append_decode_token_nb,
)
from .layout import (
    PRIO_INVERTED_SLO, PRIO_SLO_BASED, RF_COMPLETED, RF_HAS_ITL, RF_HAS_TTFT, RF_SCHEDULED, SCHED_FCFS,
    SCHED_PRIORITY_FCFS, SCHED_REVERSE_PRIORITY, SCHED_SJF,
)
from .state import EV_PREEMPTION, EV_QUEUED, EV_REQUEST_LEFT, EV_SCHEDULED, EV_STEP
from .prefetch import prefetch_nb
from .step_time import blackbox_step_time_nb, roofline_step_time_nb


# ---------------------------------------------------------------- wait queue
@njit(cache=True, error_model="numpy")
def _wq_recenter_nb(wq, ist, i):
    head = ist[i].wq_head
    n = ist[i].wq_len
    new_head = (wq.shape[1] - n) // 2
    if new_head == head:
        return
    # an overlapping move, in the direction that reads each slot before it is overwritten
    # (no temporary copy: this runs inside the event loop, compiled without reference counting)
    if new_head < head:
        for k in range(n):
            wq[i, new_head + k] = wq[i, head + k]
    else:
        for k in range(n - 1, -1, -1):
            wq[i, new_head + k] = wq[i, head + k]
    ist[i].wq_head = new_head


@njit(cache=True, error_model="numpy", forceinline=True)
def wq_push_back_nb(wq, ist, i, r):
    if ist[i].wq_head + ist[i].wq_len >= wq.shape[1]:
        _wq_recenter_nb(wq, ist, i)
    wq[i, ist[i].wq_head + ist[i].wq_len] = r
    ist[i].wq_len += 1


@njit(cache=True, error_model="numpy")
def wq_push_front_nb(wq, ist, i, r):
    if ist[i].wq_head == 0:
        _wq_recenter_nb(wq, ist, i)
    ist[i].wq_head -= 1
    ist[i].wq_len += 1
    wq[i, ist[i].wq_head] = r


@njit(cache=True, error_model="numpy", inline="always")
def _goes_before_nb(scheduler, a, b, prio, arrival, in_len, id_rank):
    """Strict order of the priority-aware schedulers (ties: arrival, then id string)."""
    if scheduler == SCHED_SJF:
        if in_len[a] != in_len[b]:
            return in_len[a] < in_len[b]
    elif scheduler == SCHED_PRIORITY_FCFS:
        if prio[a] != prio[b]:
            return prio[a] > prio[b]
    else:
        if prio[a] != prio[b]:
            return prio[a] < prio[b]
    if arrival[a] != arrival[b]:
        return arrival[a] < arrival[b]
    return id_rank[a] < id_rank[b]


@njit(cache=True, error_model="numpy")
def order_wait_queue_nb(wq, ist, i, scheduler, prio, arrival, in_len, id_rank):
    """Stable sort of the wait queue. The keys end in a unique id, so any stable sort
    gives the reference's order; insertion sort is near-linear on an already ordered queue."""
    if scheduler == SCHED_FCFS:
        return
    head = ist[i].wq_head
    n = ist[i].wq_len
    for k in range(head + 1, head + n):
        r = wq[i, k]
        j = k - 1
        while j >= head and _goes_before_nb(scheduler, r, wq[i, j], prio, arrival, in_len, id_rank):
            wq[i, j + 1] = wq[i, j]
            j -= 1
        wq[i, j + 1] = r


# ---------------------------------------------------------------- events
@njit(cache=True, error_model="numpy", forceinline=True)
def push_event_nb(st, i, time, kind, req):
    if not heap_push_nb(st.heap, st.ist, i, time, kind, req):
        st.cs.status = 1
        return False
    return True


@njit(cache=True, error_model="numpy", forceinline=True)
def on_arrival_nb(cfg, st, i, r, now, in_len):
    """Arrival -> queued after the alpha model's queueing delay."""
    delay = 0.0
    delay += cfg.alpha0
    delay += cfg.alpha1 * float(in_len[r])
    push_event_nb(st, i, now + int(delay), np.int64(EV_QUEUED), np.int64(r))


@njit(cache=True, error_model="numpy", forceinline=True)
def on_queued_nb(st, i, r, now, in_len):
    ist = st.ist
    wq_push_back_nb(st.wq, ist, i, r)
    ist[i].total_input += in_len[r]
    if ist[i].step_pending == 0:
        # the reference starts a step but does not mark one pending here
        push_event_nb(st, i, now, np.int64(EV_STEP), np.int64(-1))


# ---------------------------------------------------------------- step
@njit(cache=True, error_model="numpy")
def _preempt_nb(st, reqs, i, r, now, n_new, block_size):
    """Allocate for r, evicting from the batch tail until it fits (reference preempt())."""
    ist, rq, rb, cs = st.ist, st.rq, st.rb, st.cs
    while True:
        if store_allocate_nb(st, reqs, i, r, block_size, rq[r].progress, rq[r].progress + n_new,
                             st.lookup_ids, np.int64(0)):
            return True
        if cs.status != 0:
            return False
        if ist[i].rb_len == 0:
            return False
        ist[i].preemption_happened = 1
        ist[i].preemptions += 1
        ist[i].rb_len -= 1
        victim = rb[i, ist[i].rb_len]
        if not _close_itl_span_nb(st, i, victim):
            return False
        push_event_nb(st, i, now, np.int64(EV_PREEMPTION), np.int64(victim))
        rq[victim].progress = 0
        publish_deferred_nb(st, i, victim)
        store_release_nb(st, i, victim)
        wq_push_front_nb(st.wq, ist, i, victim)
        if victim == r:
            return False


@njit(cache=True, error_model="numpy")
def _close_itl_span_nb(st, i, r):
    """Keep r's current span of inter-token latencies (it decoded in every step of instance i
    since it began, up to the instance's latest entry) on its list; False when the list is full."""
    rq, cs, spans = st.rq, st.cs, st.spans
    start = rq[r].itl_span
    if start < 0:
        return True
    k = cs.span_len
    if k >= spans.shape[0]:
        cs.status = 1
        return False
    span = spans[k]
    span.start = start
    span.end = st.ist[i].last_entry
    span.next = rq[r].spans
    rq[r].spans = k
    cs.span_len = k + 1
    rq[r].itl_span = -1
    return True


@njit(cache=True, error_model="numpy", forceinline=True)
def _decode_new_block_nb(st, reqs, i, r, now, n_new, block_size):
    """KV for a decode token that opens a new block; False when the batch cannot continue."""
    # In decode the reference pops one free block without a free-count check; when one
    # is there, do just that here.
    ist, rq, blocks, cs = st.ist, st.rq, st.blocks, st.cs
    b = pop_free_block_nb(blocks, st.ht, ist, cs, i)
    if b != -1:
        blk = blocks[i, b]
        blk.ntok = 1
        blk.ref = 1
        blk.in_use = 1
        ist[i].kv_used += 1
        ist[i].cache_misses += 1
        if not list_append_nb(rq, st.nodes, cs, r, b):
            return False
        commit_pending_hash_nb(rq, st.chash, r, reqs.prefix_hash, reqs.seq_off[r], reqs.pow_table)
        req = rq[r]
        req.pend_start = req.progress
        req.pend_len = 1
        # when this block fills, its hash reads these two prefix hashes: cache misses on a
        # large workload unless asked for now, block_size steps ahead
        prefetch_nb(reqs.prefix_hash, reqs.seq_off[r] + req.progress)
        prefetch_nb(reqs.prefix_hash, reqs.seq_off[r] + req.progress + block_size)
        req.latest_block = b
        req.latest_ntok = 1
        return True
    # no free block: the full path (CPU-tier reload, or preemption)
    return cs.status == 0 and _preempt_nb(st, reqs, i, r, now, n_new, block_size)


@njit(cache=True, error_model="numpy", inline="always")
def _schedule_running_nb(cfg, st, reqs, i, now, n_snap, budget):
    """First half of makeRunningBatch: budget and KV for the requests already running.

    The per-token path uses only arrays taken out of `st` and `reqs` up front.
    Returns (remaining budget, decode tokens scheduled)."""
    ist, rq, rb, blocks, ht, chash = st.ist, st.rq, st.rb, st.blocks, st.ht, st.chash
    in_len, out_len, seq_off, ph, pow_table = reqs.in_len, reqs.out_len, reqs.seq_off, reqs.prefix_hash, reqs.pow_table
    block_size = cfg.block_size
    threshold = cfg.long_prefill_token_threshold
    decode_tokens = 0
    for k in range(n_snap):
        r = rb[i, k]
        if budget <= 0:
            break
        req = rq[r]
        n_new = in_len[r] - req.progress
        if n_new > 0:
            if 0 < threshold < n_new:
                n_new = threshold
            n_new = min(n_new, budget)
            if not _preempt_nb(st, reqs, i, r, now, n_new, block_size):
                break
            budget -= n_new
            ist[i].step_miss_tokens += n_new
            req.num_new = n_new
            req.computed += n_new
        if req.progress >= in_len[r] and out_len[r] > 0:
            # the token fits in the request's partial last block (the common case), or opens one
            if not try_append_decode_token_nb(blocks, ht, ist, rq, chash, i, r, ph, seq_off[r], req.progress,
                                              pow_table, block_size):
                if not _decode_new_block_nb(st, reqs, i, r, now, n_new, block_size):
                    break
            budget -= 1
            req.num_new = 1
            decode_tokens += 1
            req.computed += 1
    return budget, decode_tokens


@njit(cache=True, error_model="numpy", inline="always")
def _schedule_waiting_nb(cfg, st, reqs, i, now, budget):
    """Second half of makeRunningBatch: move requests from the wait queue into the batch."""
    ist, rq, wq, rb = st.ist, st.rq, st.wq, st.rb
    in_len, arrival = reqs.in_len, reqs.arrival
    cached_ids = st.cached_ids
    block_size = cfg.block_size
    threshold = cfg.long_prefill_token_threshold
    max_running = cfg.max_running_reqs
    while (ist[i].rb_len < max_running and ist[i].wq_len > 0 and budget > 0
           and ist[i].preemption_happened == 0):
        r = wq[i, ist[i].wq_head]
        n_cached = lookup_cached_blocks_memo_nb(st, reqs, i, r, block_size, cached_ids)
        n_new = in_len[r] - n_cached * block_size
        if 0 < threshold < n_new:
            n_new = threshold
        n_new = min(n_new, budget)
        start = n_cached * block_size
        if not store_allocate_nb(st, reqs, i, r, block_size, start, start + n_new, cached_ids, n_cached):
            # r keeps the blocks it got (the reference does not roll back) and is looked up
            # again next step, so the hashes it closed must be in the map by then
            publish_deferred_nb(st, i, r)
            break
        ist[i].wq_head += 1
        ist[i].wq_len -= 1
        rb[i, ist[i].rb_len] = r
        ist[i].rb_len += 1
        push_event_nb(st, i, now, np.int64(EV_SCHEDULED), np.int64(r))
        rq[r].sched_delay = now - arrival[r]
        rq[r].flag_bits |= RF_SCHEDULED
        budget -= n_new
        ist[i].step_miss_tokens += n_new
        rq[r].num_new = n_new
        rq[r].computed = n_new + start


@njit(cache=True, error_model="numpy", inline="always")
def _order_queue_nb(cfg, st, reqs, i, now):
    """Priorities (observable only through the priority-ordering schedulers), then queue order."""
    ist, wq, prio = st.ist, st.wq, st.prio
    arrival = reqs.arrival
    policy = cfg.priority_policy
    scheduler = cfg.scheduler
    head = ist[i].wq_head
    n_prioritized = ist[i].wq_len if scheduler == SCHED_PRIORITY_FCFS or scheduler == SCHED_REVERSE_PRIORITY else 0
    for k in range(head, head + n_prioritized):
        r = wq[i, k]
        age = float(now - arrival[r])
        if policy == PRIO_SLO_BASED:
            prio[r] = 0.0 + 1e-6 * age
        elif policy == PRIO_INVERTED_SLO:
            prio[r] = 0.0 - 1e-6 * age
        else:
            prio[r] = 0.0
    if scheduler != SCHED_FCFS:
        order_wait_queue_nb(wq, ist, i, scheduler, prio, arrival, reqs.in_len, reqs.id_rank)


@njit(cache=True, error_model="numpy", inline="always")
def _step_time_nb(cfg, st, reqs, i):
    """The step's duration: the model's time for the batch plus CPU->GPU reloads made while
    forming it (query-and-clear, as the reference)."""
    ist = st.ist
    if cfg.roofline != 0:
        advance = roofline_step_time_nb(cfg, st.rb[i], ist[i].rb_len, st.rq, reqs.in_len)
    else:
        advance = blackbox_step_time_nb(cfg, ist[i].step_miss_tokens, ist[i].step_decode_tokens)
    advance += ist[i].pending_transfer
    ist[i].pending_transfer = 0
    return advance


@njit(cache=True, error_model="numpy")
def _complete_nb(cfg, st, reqs, i, r, now, advance, progress):
    """Request r emitted its last token: its final KV write, release, and the completion event.
    False when working memory ran out."""
    ist, rq = st.ist, st.rq
    if reqs.out_len[r] > 0 and not try_append_decode_token_nb(
            st.blocks, st.ht, ist, rq, st.chash, i, r, reqs.prefix_hash, reqs.seq_off[r], progress,
            reqs.pow_table, cfg.block_size):
        if not store_allocate_nb(st, reqs, i, r, cfg.block_size, progress, progress + 1, st.lookup_ids,
                                 np.int64(0)):
            if st.cs.status != 0:
                return False
            # reference fix 1: the request still completes
            ist[i].kv_alloc_failures += 1
    store_release_nb(st, i, r)
    ist[i].completed += 1
    push_event_nb(st, i, now + advance, np.int64(EV_REQUEST_LEFT), np.int64(r))
    rq[r].e2e = rq[r].first_token + rq[r].itl_sum
    rq[r].flag_bits |= RF_COMPLETED
    return True


@njit(cache=True, error_model="numpy", inline="always")
def _execute_nb(cfg, st, reqs, i, now, advance):
    """Execute the batch and complete finished requests, then log the step's inter-token latency.

    The reference executes the whole batch, then completes requests in a second pass;
    neither pass affects the other's outcome (execution does not touch the KV cache),
    so one fused pass does both."""
    ist, rq, rb, cs, step_log = st.ist, st.rq, st.rb, st.cs, st.step_log
    in_len, out_len, arrival = reqs.in_len, reqs.out_len, reqs.arrival
    token_time = advance + int(cfg.alpha2)
    # this step's inter-token latencies all equal token_time: one step-log entry counts them
    entry = cs.log_len
    n_records = 0
    n_out = 0
    n_left = 0
    for k in range(ist[i].rb_len):
        r = rb[i, k]
        req = rq[r]
        # execution: every request in the batch advances, scheduled this step or not
        progress = req.progress
        n_in = in_len[r]
        if progress < n_in:
            progress = req.computed
        else:
            progress += 1
            n_out += 1
            n_records += 1
            req.itl_sum += token_time
            if req.itl_span < 0:
                req.itl_span = entry
            if progress == n_in + 1:
                # first decode step since the (last) prefill; the mark is sticky
                req.flag_bits |= RF_HAS_ITL
        req.progress = progress
        if progress == n_in:
            req.flag_bits |= RF_HAS_TTFT
            req.first_token = now + token_time - arrival[r]
        n_out_r = out_len[r]
        if progress != n_in + (n_out_r if n_out_r > 1 else 1) - 1:
            rb[i, n_left] = r
            n_left += 1
            continue
        n_records += 1
        req.itl_sum += token_time
        if not _complete_nb(cfg, st, reqs, i, r, now, advance, progress):
            return
    if n_records > 0:
        if entry >= step_log.shape[0]:
            cs.status = 1
            return
        e = step_log[entry]
        e.value = token_time
        e.instance = i
        e.records = n_records
        cs.log_len = entry + 1
        ist[i].last_entry = entry
    ist[i].total_output += n_out
    ist[i].rb_len = n_left


@njit(cache=True, error_model="numpy", inline="always")
def step_nb(cfg, st, reqs, i, now):
    """One reference Step() at time `now` on instance i."""
    ist, cs = st.ist, st.cs
    inst = ist[i]
    inst.step_count += 1
    inst.tier_clock = now
    inst.step_miss_tokens = 0
    inst.step_decode_tokens = 0
    _order_queue_nb(cfg, st, reqs, i, now)

    # ---- the reference's makeRunningBatch
    inst.preemption_happened = 0
    budget = cfg.max_scheduled_tokens
    # Go ranges over the batch as it was when the loop began: requests evicted from
    # the tail during this loop are still visited afterwards. Eviction only shortens
    # the batch and nothing is appended during the loop, so rb[i, :n_snap] still holds
    # exactly that slice.
    n_snap = inst.rb_len
    if n_snap > 0:
        budget, decode_tokens = _schedule_running_nb(cfg, st, reqs, i, now, n_snap, budget)
        inst.step_decode_tokens += decode_tokens
    if cs.status != 0:
        return
    _schedule_waiting_nb(cfg, st, reqs, i, now, budget)
    if cs.status != 0:
        return
    inst.wq_sample_sum += inst.wq_len
    inst.wq_sample_count += 1

    advance = _step_time_nb(cfg, st, reqs, i)
    # KV usage is sampled before any completion frees blocks
    used = inst.kv_used
    if used > inst.peak_kv:
        inst.peak_kv = used
    inst.kv_block_ticks += float(used) * float(advance)
    _execute_nb(cfg, st, reqs, i, now, advance)
    if cs.status != 0:
        return
    if inst.rb_len > 0:
        push_event_nb(st, i, now + advance, np.int64(EV_STEP), np.int64(-1))
        inst.step_pending = 1
    else:
        inst.step_pending = 0
