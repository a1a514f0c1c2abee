"""One serving instance: wait queue, continuous batching step, events.

Each function works on instance i of one configuration's working state. The step
mirrors the reference's Step(): priorities and queue order, batch formation
(running requests first, then the wait queue), step time, execution, completion.
"""
import numpy as np
from numba import njit

from .event_heap import heap_push_nb
from .kv_cache import (
    commit_pending_hash_nb, list_append_nb, lookup_cached_blocks_memo_nb, pop_free_block_nb,
    store_allocate_nb, store_release_nb, try_append_decode_token_nb,
)
from .layout import (
    CF_ALPHA0, CF_ALPHA1, CF_ALPHA2, CI_LONG_PREFILL, CI_MAX_RUNNING, CI_MAX_SCHED_TOKENS, CI_PRIORITY,
    CI_ROOFLINE, CI_SCHEDULER, CI_TP, PRIO_INVERTED_SLO, PRIO_SLO_BASED, RF_COMPLETED, RF_HAS_ITL, RF_HAS_TTFT,
    RF_SCHEDULED, SCHED_FCFS, SCHED_PRIORITY_FCFS, SCHED_REVERSE_PRIORITY, SCHED_SJF,
)
from .state import (
    B_IN_USE, B_NTOK, B_REF, R_LATEST_BLOCK, R_LATEST_NTOK, R_PEND_LEN, R_PEND_START,
    CS_SL_N, CS_SPAN_BASE, CS_SPAN_N, CS_STATUS, EV_ARRIVAL, EV_PREEMPTION, EV_QUEUED, EV_REQUEST_LEFT, EV_SCHEDULED, EV_STEP,
    IF_KV_BLOCK_TICKS, IS_COMPLETED, IS_HEAP_LEN, IS_KV_ALLOC_FAILURES, IS_KV_USED, IS_PEAK_KV,
    IS_CACHE_MISSES, IS_PENDING_TRANSFER, IS_PREEMPTION_HAPPENED, IS_PREEMPTIONS, IS_RB_LEN, IS_TIER_CLOCK,
    IS_STEP_COUNT, IS_STEP_DECODE_TOKENS,
    IS_STEP_MISS_TOKENS, IS_STEP_PENDING, IS_TOTAL_INPUT, IS_TOTAL_OUTPUT, IS_WQ_HEAD, IS_WQ_LEN,
    IS_WQ_SAMPLE_COUNT, IS_WQ_SAMPLE_SUM, R_COMPUTED, R_E2E, R_FIRST_TOKEN, R_FLAGS, R_ITL_SUM,
    R_NUM_NEW, R_PROGRESS, R_SCHED_DELAY, IS_LAST_ENTRY, R_ITL_SPAN, R_SPANS, SL_INSTANCE, SL_RECORDS,
    SL_VALUE, SP_END, SP_NEXT, SP_START,
)
from .prefetch import prefetch_nb
from .step_time import blackbox_step_time_nb, roofline_step_time_nb


# ---------------------------------------------------------------- wait queue
@njit(cache=True, error_model="numpy")
def _wq_recenter_nb(wq, ist, i):
    head = ist[i, IS_WQ_HEAD]
    n = ist[i, IS_WQ_LEN]
    new_head = (wq.shape[1] - n) // 2
    if new_head == head:
        return
    tmp = wq[i, head:head + n].copy()
    wq[i, new_head:new_head + n] = tmp
    ist[i, IS_WQ_HEAD] = new_head


@njit(cache=True, error_model="numpy", forceinline=True)
def wq_push_back_nb(wq, ist, i, r):
    if ist[i, IS_WQ_HEAD] + ist[i, IS_WQ_LEN] >= wq.shape[1]:
        _wq_recenter_nb(wq, ist, i)
    wq[i, ist[i, IS_WQ_HEAD] + ist[i, IS_WQ_LEN]] = r
    ist[i, IS_WQ_LEN] += 1


@njit(cache=True, error_model="numpy")
def wq_push_front_nb(wq, ist, i, r):
    if ist[i, IS_WQ_HEAD] == 0:
        _wq_recenter_nb(wq, ist, i)
    ist[i, IS_WQ_HEAD] -= 1
    ist[i, IS_WQ_LEN] += 1
    wq[i, ist[i, IS_WQ_HEAD]] = r


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
    head = ist[i, IS_WQ_HEAD]
    n = ist[i, IS_WQ_LEN]
    for k in range(head + 1, head + n):
        r = wq[i, k]
        j = k - 1
        while j >= head and _goes_before_nb(scheduler, r, wq[i, j], prio, arrival, in_len, id_rank):
            wq[i, j + 1] = wq[i, j]
            j -= 1
        wq[i, j + 1] = r


# ---------------------------------------------------------------- events
@njit(cache=True, error_model="numpy", forceinline=True)
def push_event_nb(heap, ist, cs, i, time, kind, req):
    if not heap_push_nb(heap, ist, i, time, kind, req):
        cs[CS_STATUS] = 1
        return False
    return True


@njit(cache=True, error_model="numpy", forceinline=True)
def on_arrival_nb(heap, ist, cs, cfg_float, c, i, r, now, in_len):
    """Arrival -> queued after the alpha model's queueing delay."""
    delay = 0.0
    delay += cfg_float[c, CF_ALPHA0]
    delay += cfg_float[c, CF_ALPHA1] * float(in_len[r])
    push_event_nb(heap, ist, cs, i, now + int(delay), np.int64(EV_QUEUED), np.int64(r))


@njit(cache=True, error_model="numpy", forceinline=True)
def on_queued_nb(heap, wq, ist, cs, i, r, now, in_len):
    wq_push_back_nb(wq, ist, i, r)
    ist[i, IS_TOTAL_INPUT] += in_len[r]
    if ist[i, IS_STEP_PENDING] == 0:
        # the reference starts a step but does not mark one pending here
        push_event_nb(heap, ist, cs, i, now, np.int64(EV_STEP), np.int64(-1))


# ---------------------------------------------------------------- step
@njit(cache=True, error_model="numpy")
def _preempt_nb(heap, wq, rb, blk, bhash, ht_key, ht_val, ifl, ist, rq, nodes, cs, chash,
                i, r, now, n_new, ph, seq_off, in_len, pow_table, block_size, lookup_ids, spans):
    """Allocate for r, evicting from the batch tail until it fits (reference preempt())."""
    while True:
        if store_allocate_nb(blk, bhash, ht_key, ht_val, ifl, ist, rq, nodes, cs, chash,
                             i, r, ph, seq_off[r], in_len[r], pow_table, block_size,
                             rq[r, R_PROGRESS], rq[r, R_PROGRESS] + n_new, lookup_ids, np.int64(0), lookup_ids):
            return True
        if cs[CS_STATUS] != 0:
            return False
        if ist[i, IS_RB_LEN] == 0:
            return False
        ist[i, IS_PREEMPTION_HAPPENED] = 1
        ist[i, IS_PREEMPTIONS] += 1
        ist[i, IS_RB_LEN] -= 1
        victim = rb[i, ist[i, IS_RB_LEN]]
        if not _close_itl_span_nb(ist, rq, cs, spans, i, victim):
            return False
        push_event_nb(heap, ist, cs, i, now, np.int64(EV_PREEMPTION), np.int64(victim))
        rq[victim, R_PROGRESS] = 0
        store_release_nb(blk, bhash, ht_key, ht_val, ifl, ist, rq, nodes, cs, chash, i, victim)
        wq_push_front_nb(wq, ist, i, victim)
        if victim == r:
            return False


@njit(cache=True, error_model="numpy")
def _close_itl_span_nb(ist, rq, cs, spans, i, r):
    """Keep r's current span of inter-token latencies (it decoded in every step of instance i
    since it began, up to the instance's latest entry) on its list; False when the list is full."""
    start = rq[r, R_ITL_SPAN]
    if start < 0:
        return True
    k = cs[CS_SPAN_N]
    if k >= spans.shape[1]:
        cs[CS_STATUS] = 1
        return False
    spans[SP_START, k] = start
    spans[SP_END, k] = ist[i, IS_LAST_ENTRY]
    spans[SP_NEXT, k] = rq[r, R_SPANS]
    rq[r, R_SPANS] = k
    cs[CS_SPAN_N] = k + 1
    rq[r, R_ITL_SPAN] = -1
    return True


@njit(cache=True, error_model="numpy", inline="always")
def _schedule_running_nb(cfg_int, c, heap, wq, rb, blk, bhash, ht_key, ht_val, ifl, ist, rq, nodes,
                         cs, chash, i, now, in_len, out_len, ph, seq_off, pow_table, n_snap,
                         budget, lookup_ids, spans):
    """First half of makeRunningBatch: budget and KV for the requests already running.

    Kept small and separate so the per-token decode path compiles tightly.
    Returns (remaining budget, decode tokens scheduled)."""
    block_size = cfg_int[c, 1]
    threshold = cfg_int[c, CI_LONG_PREFILL]
    decode_tokens = 0
    for k in range(n_snap):
        r = rb[i, k]
        if budget <= 0:
            break
        n_new = in_len[r] - rq[r, R_PROGRESS]
        if n_new > 0:
            if 0 < threshold < n_new:
                n_new = threshold
            n_new = min(n_new, budget)
            if not _preempt_nb(heap, wq, rb, blk, bhash, ht_key, ht_val, ifl, ist, rq, nodes, cs,
                               chash, i, r, now, n_new, ph, seq_off, in_len, pow_table, block_size,
                               lookup_ids, spans):
                break
            budget -= n_new
            ist[i, IS_STEP_MISS_TOKENS] += n_new
            rq[r, R_NUM_NEW] = n_new
            rq[r, R_COMPUTED] += n_new
        if rq[r, R_PROGRESS] >= in_len[r] and out_len[r] > 0:
            # the token fits in the request's partial last block (the common case)
            if try_append_decode_token_nb(blk, bhash, ht_key, ht_val, rq, chash, i, r, ph, seq_off[r],
                                          rq[r, R_PROGRESS], pow_table, block_size):
                pass
            else:
                # The token opens a new block. In decode the reference pops one free block
                # without a free-count check; when one is there, do just that here.
                b = pop_free_block_nb(blk, bhash, ht_key, ht_val, ist, cs, i)
                if b != -1:
                    blk[i, B_NTOK, b] = 1
                    blk[i, B_REF, b] = 1
                    blk[i, B_IN_USE, b] = 1
                    ist[i, IS_KV_USED] += 1
                    ist[i, IS_CACHE_MISSES] += 1
                    if not list_append_nb(rq, nodes, cs, r, b):
                        break
                    commit_pending_hash_nb(rq, chash, r, ph, seq_off[r], pow_table)
                    rq[r, R_PEND_START] = rq[r, R_PROGRESS]
                    rq[r, R_PEND_LEN] = 1
                    # when this block fills, its hash reads these two prefix hashes: cache misses
                    # on a large workload unless asked for now, block_size steps ahead
                    prefetch_nb(ph, seq_off[r] + rq[r, R_PROGRESS])
                    prefetch_nb(ph, seq_off[r] + rq[r, R_PROGRESS] + block_size)
                    rq[r, R_LATEST_BLOCK] = b
                    rq[r, R_LATEST_NTOK] = 1
                elif cs[CS_STATUS] != 0 or not _preempt_nb(
                        heap, wq, rb, blk, bhash, ht_key, ht_val, ifl, ist, rq, nodes, cs, chash,
                        i, r, now, n_new, ph, seq_off, in_len, pow_table, block_size, lookup_ids, spans):
                    # no free block: the full path (CPU-tier reload, or preemption)
                    break
            budget -= 1
            rq[r, R_NUM_NEW] = 1
            decode_tokens += 1
            rq[r, R_COMPUTED] += 1
    return budget, decode_tokens


@njit(cache=True, error_model="numpy", inline="always")
def step_nb(cfg_int, cfg_float, c, heap, wq, rb, blk, bhash, ht_key, ht_val, ist, ifl, rq, prio, nodes,
            cs, chash, slog, i, now, arrival, in_len, out_len, ph, seq_off,
            id_rank, pow_table, cached_ids, lookup_ids, memo_ids):
    """One reference Step() at time `now` on instance i."""
    ist[i, IS_STEP_COUNT] += 1
    ist[i, IS_TIER_CLOCK] = now
    ist[i, IS_STEP_MISS_TOKENS] = 0
    ist[i, IS_STEP_DECODE_TOKENS] = 0

    policy = cfg_int[c, CI_PRIORITY]
    scheduler = cfg_int[c, CI_SCHEDULER]
    head = ist[i, IS_WQ_HEAD]
    # priorities are observable only through the priority-ordering schedulers
    n_prioritized = ist[i, IS_WQ_LEN] if scheduler == SCHED_PRIORITY_FCFS or scheduler == SCHED_REVERSE_PRIORITY else 0
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
        order_wait_queue_nb(wq, ist, i, scheduler, prio, arrival, in_len, id_rank)

    # ---- the reference's makeRunningBatch (kept in this function: calls with this many
    # arrays cost more than the work for a small batch)
    block_size = cfg_int[c, 1]
    threshold = cfg_int[c, CI_LONG_PREFILL]
    ist[i, IS_PREEMPTION_HAPPENED] = 0
    budget = cfg_int[c, CI_MAX_SCHED_TOKENS]
    # Go ranges over the batch as it was when the loop began: requests evicted from
    # the tail during this loop are still visited afterwards. Eviction only shortens
    # the batch and nothing is appended during the loop, so rb[i, :n_snap] still holds
    # exactly that slice.
    n_snap = ist[i, IS_RB_LEN]
    if n_snap > 0:
        budget, decode_tokens = _schedule_running_nb(
            cfg_int, c, heap, wq, rb, blk, bhash, ht_key, ht_val, ifl, ist, rq, nodes, cs, chash,
            i, now, in_len, out_len, ph, seq_off, pow_table, n_snap, budget, lookup_ids, slog)
        ist[i, IS_STEP_DECODE_TOKENS] += decode_tokens
    if cs[CS_STATUS] != 0:
        return
    max_running = cfg_int[c, CI_MAX_RUNNING]
    while (ist[i, IS_RB_LEN] < max_running and ist[i, IS_WQ_LEN] > 0 and budget > 0
           and ist[i, IS_PREEMPTION_HAPPENED] == 0):
        r = wq[i, ist[i, IS_WQ_HEAD]]
        n_cached = lookup_cached_blocks_memo_nb(ht_key, ht_val, ist, i, r, ph, seq_off[r], in_len[r], block_size,
                                                cached_ids, memo_ids)
        n_new = in_len[r] - n_cached * block_size
        if 0 < threshold < n_new:
            n_new = threshold
        n_new = min(n_new, budget)
        start = n_cached * block_size
        if not store_allocate_nb(blk, bhash, ht_key, ht_val, ifl, ist, rq, nodes, cs, chash,
                                 i, r, ph, seq_off[r], in_len[r], pow_table, block_size,
                                 start, start + n_new, cached_ids, n_cached, lookup_ids):
            break
        ist[i, IS_WQ_HEAD] += 1
        ist[i, IS_WQ_LEN] -= 1
        rb[i, ist[i, IS_RB_LEN]] = r
        ist[i, IS_RB_LEN] += 1
        push_event_nb(heap, ist, cs, i, now, np.int64(EV_SCHEDULED), np.int64(r))
        rq[r, R_SCHED_DELAY] = now - arrival[r]
        rq[r, R_FLAGS] |= RF_SCHEDULED
        budget -= n_new
        ist[i, IS_STEP_MISS_TOKENS] += n_new
        rq[r, R_NUM_NEW] = n_new
        rq[r, R_COMPUTED] = n_new + start
    if cs[CS_STATUS] != 0:
        return

    ist[i, IS_WQ_SAMPLE_SUM] += ist[i, IS_WQ_LEN]
    ist[i, IS_WQ_SAMPLE_COUNT] += 1

    n_batch = ist[i, IS_RB_LEN]
    if cfg_int[c, CI_ROOFLINE] != 0:
        advance = roofline_step_time_nb(cfg_float, c, cfg_int[c, CI_TP], rb[i], n_batch,
                                        rq[:, R_PROGRESS], rq[:, R_NUM_NEW], in_len)
    else:
        advance = blackbox_step_time_nb(cfg_float, c, ist[i, IS_STEP_MISS_TOKENS], ist[i, IS_STEP_DECODE_TOKENS])
    # CPU->GPU reloads made while forming this batch (query-and-clear, as the reference)
    advance += ist[i, IS_PENDING_TRANSFER]
    ist[i, IS_PENDING_TRANSFER] = 0
    token_time = advance + int(cfg_float[c, CF_ALPHA2])

    # The reference executes the whole batch, then completes requests in a second pass;
    # neither pass affects the other's outcome (execution does not touch the KV cache),
    # so one fused pass does both. KV usage is sampled before any completion frees blocks.
    used = ist[i, IS_KV_USED]
    if used > ist[i, IS_PEAK_KV]:
        ist[i, IS_PEAK_KV] = used
    ifl[i, IF_KV_BLOCK_TICKS] += float(used) * float(advance)

    block_size = cfg_int[c, 1]
    # this step's inter-token latencies all equal token_time: one step-log entry counts them
    entry = cs[CS_SL_N]
    n_records = 0
    n_out = 0
    n_left = 0
    for k in range(n_batch):
        r = rb[i, k]
        # execution: every request in the batch advances, scheduled this step or not
        progress = rq[r, R_PROGRESS]
        n_in = in_len[r]
        if progress < n_in:
            progress = rq[r, R_COMPUTED]
        else:
            progress += 1
            n_out += 1
            n_records += 1
            rq[r, R_ITL_SUM] += token_time
            if rq[r, R_ITL_SPAN] < 0:
                rq[r, R_ITL_SPAN] = entry
            if progress == n_in + 1:
                # first decode step since the (last) prefill; the mark is sticky
                rq[r, R_FLAGS] |= RF_HAS_ITL
        rq[r, R_PROGRESS] = progress
        if progress == n_in:
            rq[r, R_FLAGS] |= RF_HAS_TTFT
            rq[r, R_FIRST_TOKEN] = now + token_time - arrival[r]
        # completion
        if progress != n_in + max(out_len[r], 1) - 1:
            rb[i, n_left] = r
            n_left += 1
            continue
        n_records += 1
        rq[r, R_ITL_SUM] += token_time
        if out_len[r] > 0 and not try_append_decode_token_nb(
                blk, bhash, ht_key, ht_val, rq, chash, i, r, ph, seq_off[r],
                progress, pow_table, block_size):
            if not store_allocate_nb(blk, bhash, ht_key, ht_val, ifl, ist, rq, nodes, cs, chash,
                                     i, r, ph, seq_off[r], n_in, pow_table, block_size,
                                     progress, progress + 1, lookup_ids, np.int64(0), lookup_ids):
                if cs[CS_STATUS] != 0:
                    return
                # reference fix 1: the request still completes
                ist[i, IS_KV_ALLOC_FAILURES] += 1
        store_release_nb(blk, bhash, ht_key, ht_val, ifl, ist, rq, nodes, cs, chash, i, r)
        ist[i, IS_COMPLETED] += 1
        push_event_nb(heap, ist, cs, i, now + advance, np.int64(EV_REQUEST_LEFT), np.int64(r))
        rq[r, R_E2E] = rq[r, R_FIRST_TOKEN] + rq[r, R_ITL_SUM]
        rq[r, R_FLAGS] |= RF_COMPLETED
    if n_records > 0:
        if entry >= cs[CS_SPAN_BASE]:
            cs[CS_STATUS] = 1
            return
        slog[SL_VALUE, entry] = token_time
        slog[SL_INSTANCE, entry] = i
        slog[SL_RECORDS, entry] = n_records
        cs[CS_SL_N] = entry + 1
        ist[i, IS_LAST_ENTRY] = entry
    ist[i, IS_TOTAL_OUTPUT] += n_out
    ist[i, IS_RB_LEN] = n_left
    if n_left > 0:
        push_event_nb(heap, ist, cs, i, now + advance, np.int64(EV_STEP), np.int64(-1))
        ist[i, IS_STEP_PENDING] = 1
    else:
        ist[i, IS_STEP_PENDING] = 0
