"""What the kernel and its only caller (blis_sweep.engine) exchange: enums, record dtypes, flags.

Rows are NumPy records: the kernel reads and writes them by field name (`cfg.block_size`,
`row.e2e_mean_ms`), which Numba compiles to the same loads and stores as a constant column
index. The field names of `metrics_dt` are the column names of results tables.
Enums are IntEnum classes (blis_sweep.sim_config re-exports them); the kernel compares
against the plain integer constants derived from them below, which Numba folds as globals.
"""
from enum import IntEnum

import numpy as np

_I = np.int64
_F = np.float64


def records(fields) -> np.dtype:
    """An aligned record dtype whose elements are np.record: fields read and written as
    attributes (`row.status`) both in compiled code and in plain Python (NUMBA_DISABLE_JIT=1)."""
    return np.dtype((np.record, np.dtype(fields, align=True)))


# ---- policies
class Scheduler(IntEnum):
    FCFS = 0
    PRIORITY_FCFS = 1
    SJF = 2
    REVERSE_PRIORITY = 3


class PriorityPolicy(IntEnum):
    CONSTANT = 0
    SLO_BASED = 1
    INVERTED_SLO = 2


class AdmissionPolicy(IntEnum):
    ALWAYS_ADMIT = 0
    TOKEN_BUCKET = 1
    REJECT_ALL = 2


class RoutingPolicy(IntEnum):
    ROUND_ROBIN = 0
    LEAST_LOADED = 1
    WEIGHTED = 2
    PREFIX_AFFINITY = 3
    ALWAYS_BUSIEST = 4


SCHED_FCFS = int(Scheduler.FCFS)
SCHED_PRIORITY_FCFS = int(Scheduler.PRIORITY_FCFS)
SCHED_SJF = int(Scheduler.SJF)
SCHED_REVERSE_PRIORITY = int(Scheduler.REVERSE_PRIORITY)
PRIO_CONSTANT = int(PriorityPolicy.CONSTANT)
PRIO_SLO_BASED = int(PriorityPolicy.SLO_BASED)
PRIO_INVERTED_SLO = int(PriorityPolicy.INVERTED_SLO)
ADMIT_ALWAYS = int(AdmissionPolicy.ALWAYS_ADMIT)
ADMIT_TOKEN_BUCKET = int(AdmissionPolicy.TOKEN_BUCKET)
ADMIT_REJECT_ALL = int(AdmissionPolicy.REJECT_ALL)
ROUTE_ROUND_ROBIN = int(RoutingPolicy.ROUND_ROBIN)
ROUTE_LEAST_LOADED = int(RoutingPolicy.LEAST_LOADED)
ROUTE_WEIGHTED = int(RoutingPolicy.WEIGHTED)
ROUTE_PREFIX_AFFINITY = int(RoutingPolicy.PREFIX_AFFINITY)
ROUTE_ALWAYS_BUSIEST = int(RoutingPolicy.ALWAYS_BUSIEST)

# ---- one configuration's inputs: cfgs[c]. Names follow blis_sweep.sim_config.SimConfig and
# RooflineParams, so that blis_sweep.engine.pack_configs copies those fields by name.
cfg_dt = records([
    ("total_kv_blocks", _I),
    ("block_size", _I),
    ("max_running_reqs", _I),
    ("max_scheduled_tokens", _I),
    ("long_prefill_token_threshold", _I),
    ("horizon", _I),
    ("scheduler", _I),
    ("priority_policy", _I),
    ("num_instances", _I),
    ("admission_policy", _I),
    ("admission_latency", _I),
    ("routing_latency", _I),
    ("routing_policy", _I),
    ("kv_cpu_blocks", _I),
    ("kv_transfer_base_latency", _I),
    ("workload", _I),  # index into the packed workloads
    ("roofline", _I),  # 1: analytical step time (the fields below), 0: blackbox (beta)
    ("tp", _I),
    ("capacity_scale", _I),  # multiplies working-memory estimates; raised on overflow retry
    ("trace_k", _I),  # -1: no decision trace; k >= 0: record decisions with top-k counterfactual candidates
    ("alpha0", _F),
    ("alpha1", _F),
    ("alpha2", _F),
    ("beta0", _F),
    ("beta1", _F),
    ("beta2", _F),
    ("token_bucket_capacity", _F),
    ("token_bucket_refill_rate", _F),
    ("routing_cache_weight", _F),
    ("routing_load_weight", _F),
    ("kv_offload_threshold", _F),
    ("kv_transfer_bandwidth", _F),
    ("num_layers", _F),
    ("hidden_dim", _F),
    ("num_heads", _F),
    ("num_kv_heads", _F),
    ("intermediate_dim", _F),
    ("bytes_per_param", _F),
    ("tflops_peak", _F),
    ("bw_peak_tbs", _F),
    ("bw_eff_constant", _F),
    ("t_overhead_micros", _F),
    ("per_layer_overhead", _F),
    ("mfu_prefill", _F),
    ("mfu_decode", _F),
    ("all_reduce_latency", _F),
])

# ---- metrics of one block (the cluster, or one instance): out_cluster[c], out_instances[c, i].
# (column name, whether it counts something): all are stored as float64 (NaN: not defined),
# counts are cast back to integers in tables. `status` is not a results column.
METRIC_FIELDS = (
    ("completed_requests", True),
    ("total_input_tokens", True),
    ("total_output_tokens", True),
    ("sim_ended_ticks", True),
    ("duration_s", False),
    ("responses_per_sec", False),
    ("tokens_per_sec", False),
    ("e2e_mean_ms", False),
    ("e2e_p50_ms", False),
    ("e2e_p90_ms", False),
    ("e2e_p95_ms", False),
    ("e2e_p99_ms", False),
    ("ttft_mean_ms", False),
    ("ttft_p50_ms", False),
    ("ttft_p90_ms", False),
    ("ttft_p95_ms", False),
    ("ttft_p99_ms", False),
    ("itl_mean_ms", False),
    ("itl_p50_ms", False),
    ("itl_p90_ms", False),
    ("itl_p95_ms", False),
    ("itl_p99_ms", False),
    ("tpot_mean_ms", False),
    ("tpot_p50_ms", False),
    ("tpot_p90_ms", False),
    ("tpot_p99_ms", False),
    ("scheduling_delay_mean_ms", False),
    ("scheduling_delay_p99_ms", False),
    ("preemptions", True),
    ("cache_hit_rate", False),
    ("kv_peak_blocks", True),
    ("kv_block_ticks", False),  # integral of used blocks over time
    ("priority_inversions", True),
    ("hol_blocking_events", True),
    ("rejected_requests", True),
    ("arrived_requests", True),  # requests the cluster saw arrive
    ("routed_requests", True),  # requests injected into an instance
    ("waiting_at_end", True),
    ("running_at_end", True),
    ("in_flight_at_end", True),  # admitted or routed but not yet in a wait queue when the run ended
    ("kv_used_at_end", True),
    ("kv_free_at_end", True),  # counted by walking the free list
    ("kv_total_blocks", True),
    ("steps", True),
    ("clock_regressions", True),  # events that ran before the clock: must stay 0
    ("kv_alloc_failures", True),
    ("ttft_count", True),
    ("kv_thrashing_rate", False),
    ("status", True),  # STATUS_OK, or STATUS_CAPACITY: working memory too small (caller retries larger)
)
metrics_dt = records([(name, _F) for name, _ in METRIC_FIELDS])
# the columns of results tables, in order, and those holding integers
METRIC_COLUMNS = tuple(name for name, _ in METRIC_FIELDS if name != "status")
INTEGER_COLUMNS = frozenset(name for name, count in METRIC_FIELDS if count and name != "status")

STATUS_OK = 0
STATUS_CAPACITY = 1

# ---- per-request results: out_requests[c, r] (ticks; flags are RF_* bits)
request_out_dt = records([
    ("ttft", _I),  # first-token time relative to arrival
    ("e2e", _I),
    ("itl_sum", _I),  # sum of the request's inter-token latencies
    ("sched", _I),  # last scheduling delay
    ("flag_bits", _I),  # RF_* (not `flags`: numpy scalars have an attribute of that name)
    ("instance", _I),
])

# ---- per-request flags
RF_HAS_TTFT = 1
RF_COMPLETED = 2
RF_SCHEDULED = 4
RF_ROUTED = 8
RF_REJECTED = 16
RF_ADMISSION_DECIDED = 32
RF_HAS_ITL = 64  # at least one inter-token latency recorded

# ---- decision trace: trace_route[c, r] and trace_candidates[c, r, k]
route_trace_dt = records([("clock", _F), ("regret", _F)])
candidate_dt = records([
    ("instance", _F),
    ("score", _F),
    ("queue_depth", _F),
    ("batch_size", _F),
    ("kv_utilization", _F),
    ("free_kv_blocks", _F),
])
