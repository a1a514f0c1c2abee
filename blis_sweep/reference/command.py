"""`blis-sweep run`: the reference simulator's `run` command, through the batch engine (a batch of one)."""
from __future__ import annotations

import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np

from blis_sweep.atomic_io import write_text_atomic
from blis_sweep.engine import simulate
from blis_sweep.errors import BlisError
from blis_sweep.reference.fitness import fitness_score
from blis_sweep.reference.output import (
    RequestResults, anomaly_block, fitness_block, save_results_output, trace_summary_block,
)
from blis_sweep.reference.args import ResolvedRun, resolve_run
from blis_sweep.reference.argv import parse_run_argv
from blis_sweep.workloads.requests import distribution_workload, preset_workload, read_trace
from blis_sweep.workloads.arrays import Workload
from blis_sweep.kernels import layout as L
from blis_sweep.limits import WorkloadSize, check_memory, expected_size, kernel_bytes

# reference metrics-block key -> kernel metric (kernels.layout.metrics_dt field)
_BLOCK_KEYS = {
    "completed_requests": "completed_requests",
    "total_input_tokens": "total_input_tokens",
    "total_output_tokens": "total_output_tokens",
    "vllm_estimated_duration_s": "duration_s",
    "responses_per_sec": "responses_per_sec",
    "tokens_per_sec": "tokens_per_sec",
    **{key: key for key in ("e2e_mean_ms", "e2e_p90_ms", "e2e_p95_ms", "e2e_p99_ms", "ttft_mean_ms", "ttft_p90_ms",
                            "ttft_p95_ms", "ttft_p99_ms", "itl_mean_ms", "itl_p90_ms", "itl_p95_ms", "itl_p99_ms",
                            "scheduling_delay_p99_ms")},
}


def metrics_dict(block: np.ndarray) -> dict:
    """A kernel metrics block as the reference's metrics-block fields."""
    return {key: float(block[field]) for key, field in _BLOCK_KEYS.items()}


def build_run_workload(resolved: ResolvedRun) -> Workload:
    spec = resolved.workload
    horizon = resolved.config.horizon
    seed = resolved.config.seed
    if spec.kind == "traces":
        return read_trace(spec.traces_path, horizon=horizon)
    if spec.kind == "distribution":
        return distribution_workload(
            spec.rate_per_s, spec.max_prompts, spec.prefix_tokens, spec.prompt_tokens, spec.prompt_tokens_stdev,
            spec.prompt_tokens_min, spec.prompt_tokens_max, spec.output_tokens, spec.output_tokens_stdev,
            spec.output_tokens_min, spec.output_tokens_max, seed, horizon=horizon)
    if spec.kind == "preset":
        return preset_workload(spec.preset, spec.rate_per_s, spec.max_prompts, seed, horizon=horizon)
    if spec.kind == "spec":
        from blis_sweep.workloads.spec_gen import generate_spec_workload

        return generate_spec_workload(spec.spec, horizon)
    raise BlisError(f"unknown workload kind {spec.kind!r}")


def check_run_memory(resolved: ResolvedRun) -> None:
    """Refuse a generated workload too big for this machine before generating it."""
    spec = resolved.workload
    if spec.kind not in ("distribution", "preset"):
        return  # a trace is measured once read
    cfg = resolved.config
    lengths = {k: getattr(spec, k) for k in ("prefix_tokens", "prompt_tokens", "prompt_tokens_stdev",
                                             "prompt_tokens_max", "output_tokens", "output_tokens_stdev",
                                             "output_tokens_max")}
    need = kernel_bytes(expected_size(spec.max_prompts, lengths), cfg.num_instances, cfg.block_size,
                        cfg.total_kv_blocks, resolved.counterfactual_k if resolved.tracing else -1)
    check_memory(need, f"this run ({spec.max_prompts} requests, {cfg.num_instances} instance(s))")


def _distribution(values: np.ndarray) -> dict:
    """The reference's cluster Distribution (raw ticks): mean of sorted values, interpolated percentiles."""
    if values.size == 0:
        return {"mean": 0.0, "p50": 0.0, "p95": 0.0, "p99": 0.0}
    s = np.sort(values.astype(np.float64))
    total = 0.0
    for v in s:
        total += float(v)
    out = {"mean": total / len(s)}
    for p in (50, 95, 99):
        if len(s) == 1:
            out[f"p{p}"] = float(s[0])
            continue
        rank = p / 100.0 * float(len(s) - 1)
        lo, hi = int(np.floor(rank)), int(np.ceil(rank))
        out[f"p{p}"] = float(s[lo]) if lo == hi else float(s[lo]) + (rank - lo) * (float(s[hi]) - float(s[lo]))
    return out


def raw_cluster_metrics(block: np.ndarray, ttft: np.ndarray, e2e: np.ndarray) -> dict:
    """Inputs of the fitness score, as the reference's CollectRawMetrics builds them."""
    completed = block["completed_requests"]
    ended = block["sim_ended_ticks"]
    rps = tps = 0.0
    if ended > 0 and completed > 0:
        rps = completed / (ended / 1e6)
        tps = block["total_output_tokens"] / (ended / 1e6)
    raw = {"requests_per_sec": rps, "tokens_per_sec": tps}
    for name, values in (("ttft", ttft), ("e2e", e2e)):
        d = _distribution(values)
        raw.update({f"{name}_mean": d["mean"], f"{name}_p50": d["p50"], f"{name}_p99": d["p99"]})
    return raw


def _trace_summary(result, n: int, n_inst: int) -> str:
    flags = result.req_flags[0, :n]
    decided = (flags & L.RF_ADMISSION_DECIDED) != 0
    rejected = (flags & L.RF_REJECTED) != 0
    routed = np.flatnonzero((flags & L.RF_ROUTED) != 0)
    # regrets summed in routing order, as the reference accumulates them
    clocks = result.trace_route[0, routed]["clock"]
    routed = routed[np.lexsort((routed, clocks))]
    regrets = result.trace_route[0, routed]["regret"]
    total = 0.0
    for v in regrets:
        total += float(v)
    targets = result.req_instance[0, routed]
    distribution = {f"instance_{i}": int(np.count_nonzero(targets == i)) for i in range(n_inst)}
    distribution = {k: v for k, v in distribution.items() if v > 0}
    return trace_summary_block(
        total_decisions=int(decided.sum()), admitted=int((decided & ~rejected).sum()), rejected=int(rejected.sum()),
        target_distribution=distribution, mean_regret=total / len(regrets) if len(regrets) else 0.0,
        max_regret=max(0.0, float(regrets.max())) if len(regrets) else 0.0)


def run_reference(argv: list[str], cwd: Path | None = None, out=sys.stdout, err=sys.stderr) -> int:
    """Run one configuration from the reference's `run` flags; print what the reference prints."""
    cwd = Path.cwd() if cwd is None else Path(cwd)
    resolved = resolve_run(parse_run_argv(argv), cwd)
    check_run_memory(resolved)
    workload = build_run_workload(resolved)
    cfg = resolved.config
    check_memory(kernel_bytes(WorkloadSize.of(workload), cfg.num_instances, cfg.block_size, cfg.total_kv_blocks,
                              resolved.counterfactual_k if resolved.tracing else -1, generated=False),
                 f"this run ({workload.num_requests} requests, {cfg.num_instances} instance(s))")
    for warning in resolved.warnings:  # after every check, so that bad input gets its one line only
        print(f"warning: {warning}", file=err)
    n_inst = cfg.num_instances
    start_ts = datetime.now()
    started = time.perf_counter()
    trace_k = resolved.counterfactual_k if resolved.tracing else -1
    result = simulate([cfg], [workload], [0], per_request=True, per_instance=n_inst > 1, trace_k=trace_k)
    if result.cluster[0]["status"] != L.STATUS_OK:
        raise BlisError("the simulation did not finish (working-memory estimate); please report this")
    n = workload.num_requests
    pieces: list[str] = []
    if n_inst > 1:
        for i in range(n_inst):
            text, _ = save_results_output(f"instance_{i}", metrics_dict(result.instances[0, i]), start_ts,
                                          datetime.now(), time.perf_counter() - started)
            pieces.append(text)
    flags = result.req_flags[0, :n]
    completed = (flags & L.RF_COMPLETED) != 0
    has_ttft = (flags & L.RF_HAS_TTFT) != 0
    out_len = workload.output_len[:n]
    itl = np.where(out_len > 0, result.req_itl_sum[0, :n] / np.maximum(out_len - 1, 1), 0.0)
    itl = np.where(completed, itl, 0.0)
    requests = RequestResults(
        arrival_ticks=workload.arrival_ticks[:n], input_len=workload.input_len[:n], output_len=out_len,
        ttft_ticks=result.req_ttft[0, :n], e2e_ticks=np.where(completed, result.req_e2e[0, :n], 0),
        itl=itl, scheduling_delay_ticks=result.req_sched[0, :n], has_ttft=has_ttft, completed=completed,
        slo_class=workload.labels.slo_class_list() if workload.labels is not None else None,
        tenant_id=workload.labels.tenant_list() if workload.labels is not None else None)
    text, file_text = save_results_output(
        "cluster", metrics_dict(result.cluster[0]), start_ts, datetime.now(), time.perf_counter() - started,
        results_path=resolved.results_path or "", requests=requests)
    if file_text is not None and resolved.results_file:
        write_text_atomic(Path(resolved.results_file), file_text)
    pieces.append(text)

    block = result.cluster[0]
    if resolved.fitness_weights is not None:
        raw = raw_cluster_metrics(block, result.req_ttft[0, :n][has_ttft], result.req_e2e[0, :n][completed])
        score, components = fitness_score(resolved.fitness_weights, raw)
        pieces.append(fitness_block(score, components))
    pieces.append(anomaly_block(int(block["priority_inversions"]), int(block["hol_blocking_events"]),
                                int(block["rejected_requests"])))
    if resolved.prints_trace_summary:
        pieces.append(_trace_summary(result, n, n_inst))
    out.write("".join(pieces))
    out.flush()
    return 0
