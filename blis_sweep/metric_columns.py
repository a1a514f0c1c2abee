"""Names of the kernel's metric columns (kernels.layout.M_*), as they appear in results tables."""
from blis_sweep.kernels import layout as L

# column name -> index into a metrics block; names say their unit
METRIC_COLUMNS: dict[str, int] = {
    "completed_requests": L.M_COMPLETED,
    "total_input_tokens": L.M_TOTAL_INPUT_TOKENS,
    "total_output_tokens": L.M_TOTAL_OUTPUT_TOKENS,
    "sim_ended_ticks": L.M_SIM_ENDED_TICKS,
    "duration_s": L.M_DURATION_S,
    "responses_per_sec": L.M_RESPONSES_PER_SEC,
    "tokens_per_sec": L.M_TOKENS_PER_SEC,
    "e2e_mean_ms": L.M_E2E_MEAN,
    "e2e_p50_ms": L.M_E2E_P50,
    "e2e_p90_ms": L.M_E2E_P90,
    "e2e_p95_ms": L.M_E2E_P95,
    "e2e_p99_ms": L.M_E2E_P99,
    "ttft_mean_ms": L.M_TTFT_MEAN,
    "ttft_p50_ms": L.M_TTFT_P50,
    "ttft_p90_ms": L.M_TTFT_P90,
    "ttft_p95_ms": L.M_TTFT_P95,
    "ttft_p99_ms": L.M_TTFT_P99,
    "itl_mean_ms": L.M_ITL_MEAN,
    "itl_p50_ms": L.M_ITL_P50,
    "itl_p90_ms": L.M_ITL_P90,
    "itl_p95_ms": L.M_ITL_P95,
    "itl_p99_ms": L.M_ITL_P99,
    "tpot_mean_ms": L.M_TPOT_MEAN,
    "tpot_p50_ms": L.M_TPOT_P50,
    "tpot_p90_ms": L.M_TPOT_P90,
    "tpot_p99_ms": L.M_TPOT_P99,
    "scheduling_delay_mean_ms": L.M_SCHED_DELAY_MEAN,
    "scheduling_delay_p99_ms": L.M_SCHED_DELAY_P99,
    "preemptions": L.M_PREEMPTIONS,
    "cache_hit_rate": L.M_CACHE_HIT_RATE,
    "kv_peak_blocks": L.M_KV_PEAK_BLOCKS,
    "kv_block_ticks": L.M_KV_BLOCK_TICKS,
    "priority_inversions": L.M_PRIORITY_INVERSIONS,
    "hol_blocking_events": L.M_HOL_BLOCKING,
    "rejected_requests": L.M_REJECTED,
    "arrived_requests": L.M_ARRIVED,
    "routed_requests": L.M_ROUTED,
    "waiting_at_end": L.M_WAITING_END,
    "running_at_end": L.M_RUNNING_END,
    "in_flight_at_end": L.M_IN_FLIGHT_END,
    "kv_used_at_end": L.M_KV_USED_END,
    "kv_free_at_end": L.M_KV_FREE_END,
    "kv_total_blocks": L.M_KV_TOTAL,
    "steps": L.M_STEPS,
    "clock_regressions": L.M_CLOCK_REGRESSIONS,
    "kv_alloc_failures": L.M_KV_ALLOC_FAILURES,
    "ttft_count": L.M_TTFT_COUNT,
    "kv_thrashing_rate": L.M_KV_THRASHING_RATE,
}

# counts stored as floats in the kernel output; cast back to integers in tables
INTEGER_COLUMNS = frozenset({
    "completed_requests", "total_input_tokens", "total_output_tokens", "sim_ended_ticks", "preemptions",
    "kv_peak_blocks", "priority_inversions", "hol_blocking_events", "rejected_requests", "arrived_requests",
    "routed_requests", "waiting_at_end", "running_at_end", "in_flight_at_end", "kv_used_at_end",
    "kv_free_at_end", "kv_total_blocks", "steps", "clock_regressions", "kv_alloc_failures", "ttft_count",
})


def block_to_dict(block) -> dict:
    """One metrics block (a row of kernel output) as {column: value}."""
    out = {}
    for name, idx in METRIC_COLUMNS.items():
        v = float(block[idx])
        out[name] = int(v) if name in INTEGER_COLUMNS and v == v else v
    return out
