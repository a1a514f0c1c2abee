"""The kernel's working state (one set per configuration): record dtypes and the tuples that group them.

Instance-level state carries a leading instance axis, so a configuration with N
instances is the same code with N rows. Request-level state is per configuration
(a request lives on at most one instance). Adding a state field means adding it to
its dtype here and using it where it matters; allocation and sizing follow the dtype.

Functions receive the working arrays grouped in the named tuples below (built once per
configuration) and take out the ones they use on their first lines: a local array is as
fast as a plain argument, while attribute access inside a loop is not.
"""
from collections import namedtuple

import numpy as np

from .layout import records

_I = np.int64
_F = np.float64

# ---- one instance: ist[i]
instance_dt = records([
    ("clock", _I),
    ("heap_len", _I),
    ("wq_head", _I),
    ("wq_len", _I),
    ("rb_len", _I),
    ("step_pending", _I),  # the reference's stepEvent != nil
    ("step_count", _I),
    ("kv_total", _I),
    ("kv_used", _I),
    ("kv_touched", _I),  # blocks [touched, total) were never popped: the implicit head of the free list
    ("free_head", _I),  # explicit part of the free list (blocks released at least once)
    ("free_tail", _I),
    ("free_len", _I),  # blocks on the explicit part of the free list
    ("cache_hits", _I),
    ("cache_misses", _I),
    ("preemption_happened", _I),
    ("preemptions", _I),
    ("completed", _I),
    ("total_input", _I),
    ("total_output", _I),
    ("peak_kv", _I),
    ("wq_sample_sum", _I),
    ("wq_sample_count", _I),
    ("kv_alloc_failures", _I),
    ("step_miss_tokens", _I),  # regression features of the current step
    ("step_decode_tokens", _I),
    ("clock_regressions", _I),
    # CPU tier of a tiered KV cache (inactive when cpu_capacity == 0)
    ("cpu_capacity", _I),
    ("cpu_used", _I),  # the reference's counter (it can exceed the entries held: re-offloads overwrite)
    ("cpu_entries", _I),
    ("pending_transfer", _I),
    ("offloads", _I),
    ("cpu_hits", _I),
    ("cpu_misses", _I),
    ("thrashing", _I),
    ("tier_clock", _I),
    ("transfer_base_latency", _I),
    # memo of the last prefix-cache lookup (request, map version, blocks found)
    ("memo_req", _I),
    ("memo_version", _I),
    ("memo_count", _I),
    ("last_entry", _I),  # the instance's latest entry in the step log (-1: none yet)
    # 1 once a block closed with a hash other than its sequence's prefix hash (kv_cache.close_block_nb):
    # from then on every hash goes into the prefix map at once
    ("defer_off", _I),
    ("kv_block_ticks", _F),
    ("offload_threshold", _F),
    ("transfer_bandwidth", _F),
])

# ---- one KV block of one instance: blocks[i, b]. Blocks are reused in effectively random
# order, so each touch is a cache miss: the fields every allocation and release touches fit in
# 32 bytes (two blocks a cache line); the CPU tier's fields live apart, in cpu_blocks. int32 is
# enough: block ids stay below the working block count, which the up-front memory check keeps far
# below 2**31 (2**31 blocks would need 64 GiB of records alone)
_I32 = np.int32
block_dt = records([
    ("ref", _I32),
    ("ntok", _I32),
    ("prev", _I32),  # free-list links
    ("next", _I32),
    ("in_use", _I32),
    ("hashed", _I32),  # HASH_* (kernels.kv_cache)
    ("hash", np.uint64),  # the prefix hash it closes (when hashed)
])
# ---- the CPU tier's copy of a GPU block: cpu_blocks[i, b] (shape (N, 0) without a CPU tier)
cpu_block_dt = records([
    ("cpu_valid", _I),  # an offloaded copy of this GPU block is held on the CPU tier
    ("cpu_time", _I),
    ("cpu_ntok", _I),
    ("cpu_hash", np.uint64),
])

# ---- instance event heap entries: heap[i, slot]
event_dt = records([("time", _I), ("kind", _I), ("req", _I)])
EV_ARRIVAL = 0
EV_QUEUED = 1
EV_STEP = 2
EV_SCHEDULED = 3
EV_PREEMPTION = 4
EV_REQUEST_LEFT = 5

# ---- cluster event heap entries: cheap[slot]; kinds are the reference's priorities
cluster_event_dt = records([("time", _I), ("prio", _I), ("seq", _I), ("req", _I)])
CEV_ARRIVAL = 0
CEV_ADMISSION = 1
CEV_ROUTING = 2

# ---- one request: rq[r]. The fields touched for every decode token come first, so that
# they share one cache line (16 fields = 128 bytes)
request_dt = records([
    ("progress", _I),
    ("computed", _I),  # the reference's reqNumComputedTokens
    ("num_new", _I),
    # the request's last block id and its token count, so that the per-token decode path
    # reads one request row instead of chasing node -> block. While the block fills, the
    # count here is the true one: the block's own `ntok` is brought up to date when it
    # fills and before kv_cache.allocate_blocks_nb reads it
    ("latest_ntok", _I),
    ("latest_block", _I),
    # decode tokens appended since the request's concatenated-block hash was last brought up
    # to date: positions [pend_start, pend_start + pend_len) of its sequence
    ("pend_start", _I),
    ("pend_len", _I),
    ("itl_sum", _I),
    ("flag_bits", _I),  # RF_* (not `flags`: numpy scalars have an attribute of that name)
    ("first_token", _I),  # relative to arrival, like the reference's FirstTokenTime
    ("sched_delay", _I),
    ("instance", _I),
    ("map_last", _I),  # last node of the request's block list, -1 when the map has no entry
    ("e2e", _I),
    # inter-token latencies are logged per step (see step_dt): a request records one in every
    # step of its instance while it decodes, so its records are spans of that instance's entries
    ("itl_span", _I),  # step-log entry where its current span began (-1: not decoding)
    ("spans", _I),  # head of its list of spans closed by preemption (-1: none)
    # the hashes of its blocks closing at this token count or later are its own and are kept
    # out of the prefix map while it is not preempted (kv_cache.close_block_nb; NEVER_PRIVATE: none)
    ("private_from", _I),
])

# ---- block-list nodes (a request's blocks, walked backwards): nodes[k]
node_dt = records([("block", _I), ("prev", _I)])

# ---- step log: one entry per step that recorded inter-token latencies
step_dt = records([
    ("value", _I),  # the step's inter-token latency (every record of a step has the same value)
    ("instance", _I),
    ("records", _I),  # records made (decode tokens plus completions)
])
# ---- spans of step-log entries closed by preemption: spans[k]
span_dt = records([("start", _I), ("end", _I), ("next", _I)])

# ---- the configuration's scalars: cs (one record)
cluster_dt = records([
    ("node_free", _I),
    ("node_top", _I),
    ("log_len", _I),  # entries in the step log
    ("span_len", _I),  # closed spans
    ("status", _I),
    ("seq", _I),
    ("rr_counter", _I),
    ("rejected", _I),
    ("arrived", _I),
    ("routed", _I),
    ("bucket_tokens", _F),
    ("bucket_last_refill", _F),
])

# ---- groups of arrays, built once per configuration
# the configuration's requests (slices of the packed workload) and the token-hash tables
Requests = namedtuple("Requests", ("arrival", "in_len", "out_len", "seq_off", "id_rank", "prefix_hash",
                                   "pow_table"))
# every working array of one configuration
State = namedtuple("State", ("ist", "rq", "cs", "heap", "wq", "rb", "blocks", "ht", "nodes",
                             "chash", "prio", "step_log", "spans", "cached_ids", "lookup_ids", "memo_ids",
                             "cpu_blocks"))
# the packed workloads of a batch (blis_sweep.engine.PackedWorkloads) and the kernel's outputs
Workloads = namedtuple("Workloads", ("start", "count", "arrival", "in_len", "out_len", "seq_off",
                                     "prefix_hash", "id_rank", "pow_table"))
Outputs = namedtuple("Outputs", ("cluster", "instances", "requests", "trace_route", "trace_candidates"))


def words(dtype) -> int:
    """64-bit words per record (for memory estimates)."""
    return np.dtype(dtype).itemsize // 8
