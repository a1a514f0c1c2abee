"""What the reference's `run` prints and writes, byte for byte.

Metrics blocks are Go's json.MarshalIndent of the reference's metrics record (fixed
field order, two-space indent, encoding/json number and string spelling). A block is
printed only when some request completed; the --results-path file is written either
way, with a per-request list. Fitness, anomaly and trace-summary blocks use fmt's
%.6f / %d layouts.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np

from blis_sweep.go.format import go_float, go_fmt_f, go_json_string

__all__ = [
    "METRICS_FIELDS", "RequestResults", "go_float", "metrics_json", "metrics_block", "results_file_json",
    "metrics_written_line", "save_results_output", "fitness_block", "anomaly_block", "trace_summary_block",
]

METRICS_HEADER = "=== Simulation Metrics ==="

# (json key, is_int) in the reference's field order, after instance_id and the two timestamps
METRICS_FIELDS = (
    ("completed_requests", True), ("total_input_tokens", True), ("total_output_tokens", True),
    ("vllm_estimated_duration_s", False), ("simulation_duration_s", False),
    ("responses_per_sec", False), ("tokens_per_sec", False),
    ("e2e_mean_ms", False), ("e2e_p90_ms", False), ("e2e_p95_ms", False), ("e2e_p99_ms", False),
    ("ttft_mean_ms", False), ("ttft_p90_ms", False), ("ttft_p95_ms", False), ("ttft_p99_ms", False),
    ("itl_mean_ms", False), ("itl_p90_ms", False), ("itl_p95_ms", False), ("itl_p99_ms", False),
    ("scheduling_delay_p99_ms", False),
)


# Fields the reference sets whether or not any request completed.
COUNTED_WITHOUT_COMPLETIONS = ("completed_requests", "total_input_tokens", "total_output_tokens",
                               "vllm_estimated_duration_s")


@dataclass(frozen=True)
class RequestResults:
    """Per-request outcomes as the engine holds them, one entry per request (row r is
    `request_<r>` unless ids are given). Times are integer ticks (microseconds);
    itl is the reference's per-request ITL value (microseconds per token, float)."""

    arrival_ticks: np.ndarray
    input_len: np.ndarray
    output_len: np.ndarray
    ttft_ticks: np.ndarray
    e2e_ticks: np.ndarray
    itl: np.ndarray
    scheduling_delay_ticks: np.ndarray
    has_ttft: np.ndarray  # bool: a first token was produced
    completed: np.ndarray  # bool
    ids: list | None = None
    slo_class: list | None = None  # written only when non-empty (omitempty)
    tenant_id: list | None = None


def _timestamp(ts) -> str:
    return ts.strftime("%Y-%m-%d %H:%M:%S") if isinstance(ts, datetime) else str(ts)


def _number(value, is_int: bool) -> str:
    return str(int(value)) if is_int else go_float(value)


def _request_records(req: RequestResults) -> list[list[tuple[str, str]]]:
    """The file's "requests": every request with a first token, by arrival time.
    Unfinished ones carry e2e and itl 0 (the reference reads missing map entries as 0).
    The reference's sort is unstable over a random map order; ties keep row order here."""
    rows = np.flatnonzero(np.asarray(req.has_ttft, dtype=bool))
    arrived = np.asarray(req.arrival_ticks, dtype=np.int64)[rows].astype(np.float64) / 1e6
    order = rows[np.argsort(arrived, kind="stable")]
    completed = np.asarray(req.completed, dtype=bool)
    records = []
    for r in order:
        done = bool(completed[r])
        fields = [
            ("arrived_at", go_float(float(req.arrival_ticks[r]) / 1e6)),
            ("requestID", go_json_string(req.ids[r] if req.ids is not None else f"request_{r}")),
            ("num_prefill_tokens", str(int(req.input_len[r]))),
            ("num_decode_tokens", str(int(req.output_len[r]))),
            ("ttft_ms", go_float(float(req.ttft_ticks[r]) / 1e3)),
            ("itl_ms", go_float(float(req.itl[r]) if done else 0.0)),
            ("e2e_ms", go_float(float(req.e2e_ticks[r]) / 1e3 if done else 0.0)),
            ("scheduling_delay_ms", go_float(float(req.scheduling_delay_ticks[r]))),
        ]
        for key, values in (("slo_class", req.slo_class), ("tenant_id", req.tenant_id)):
            if values is not None and values[r]:
                fields.append((key, go_json_string(values[r])))
        records.append(fields)
    return records


def _indent_object(fields: list[tuple[str, str]], depth: int) -> str:
    pad, inner = "  " * depth, "  " * (depth + 1)
    body = ",\n".join(f"{inner}{go_json_string(k)}: {v}" for k, v in fields)
    return "{\n" + body + "\n" + pad + "}"


def metrics_json(instance_id: str, m: dict, start_ts, end_ts, sim_duration_s: float,
                 requests: RequestResults | None = None) -> str:
    """json.MarshalIndent(output, "", "  ") of the metrics record (no trailing newline).
    Missing metric keys are 0, as in the reference's zero-valued record when nothing
    completed. Raises ValueError on NaN/Inf, which Go's json refuses."""
    fields = [("instance_id", go_json_string(instance_id)),
              ("sim_start_timestamp", go_json_string(_timestamp(start_ts))),
              ("sim_end_timestamp", go_json_string(_timestamp(end_ts)))]
    values = dict(m, simulation_duration_s=sim_duration_s)
    fields += [(key, _number(values.get(key, 0), is_int)) for key, is_int in METRICS_FIELDS]
    records = _request_records(requests) if requests is not None else []
    if records:  # omitempty
        items = ",\n".join("    " + _indent_object(rec, 2) for rec in records)
        fields.append(("requests", "[\n" + items + "\n  ]"))
    return _indent_object(fields, 0)


def _unsupported(exc: ValueError) -> str:
    return str(exc)  # "json: unsupported value: +Inf"


def _metrics_block(instance_id, m, start_ts, end_ts, sim_duration_s) -> tuple[str, bool]:
    try:
        return f"{METRICS_HEADER}\n{metrics_json(instance_id, m, start_ts, end_ts, sim_duration_s)}\n", True
    except ValueError as exc:  # the header is already out when Go's marshalling fails
        return f"{METRICS_HEADER}\nError marshalling: {_unsupported(exc)}\n", False


def metrics_block(instance_id: str, m: dict, start_ts, end_ts, sim_duration_s: float) -> str:
    """The `=== Simulation Metrics ===` block as printed (with its final newline)."""
    return _metrics_block(instance_id, m, start_ts, end_ts, sim_duration_s)[0]


def results_file_json(instance_id: str, m: dict, requests: RequestResults | None, start_ts, end_ts,
                      sim_duration_s: float) -> str:
    """Content of the --results-path file (no trailing newline, like os.WriteFile of the JSON)."""
    return metrics_json(instance_id, m, start_ts, end_ts, sim_duration_s, requests)


def metrics_written_line(path: str) -> str:
    return f"\nMetrics written to: {path}\n"


def save_results_output(instance_id: str, m: dict, start_ts, end_ts, sim_duration_s: float,
                        results_path: str = "", requests: RequestResults | None = None) -> tuple[str, str | None]:
    """(stdout text, results-file content or None), following the reference's order:
    the block only if something completed; a marshalling failure there stops everything,
    including the file; then the file (if a path is set) and its confirmation line."""
    out = ""
    if int(m.get("completed_requests", 0)) <= 0:
        # The reference fills the latency and throughput fields only when something
        # completed; otherwise they keep their zero value (and the file is still written).
        m = {key: m[key] for key in COUNTED_WITHOUT_COMPLETIONS if key in m}
    else:
        out, ok = _metrics_block(instance_id, m, start_ts, end_ts, sim_duration_s)
        if not ok:
            return out, None
    if not results_path:
        return out, None
    try:
        content = results_file_json(instance_id, m, requests, start_ts, end_ts, sim_duration_s)
    except ValueError as exc:
        return out + f"Error marshalling metrics to JSON: {_unsupported(exc)}\n", None
    return out + metrics_written_line(results_path), content


def fitness_block(score: float, components: dict[str, float]) -> str:
    lines = ["", "=== Fitness Evaluation ===", f"Score: {go_fmt_f(score)}"]
    lines += [f"  {key}: {go_fmt_f(components[key])}" for key in sorted(components)]
    return "\n".join(lines) + "\n"


def anomaly_block(priority_inversions: int, hol_blocking_events: int, rejected_requests: int) -> str:
    """Printed only when some counter is positive; "" otherwise."""
    if priority_inversions <= 0 and hol_blocking_events <= 0 and rejected_requests <= 0:
        return ""
    return ("\n=== Anomaly Counters ===\n"
            f"Priority Inversions: {priority_inversions}\n"
            f"HOL Blocking Events: {hol_blocking_events}\n"
            f"Rejected Requests: {rejected_requests}\n")


def trace_summary_block(total_decisions: int, admitted: int, rejected: int, target_distribution: dict[str, int],
                        mean_regret: float, max_regret: float) -> str:
    """Unique targets is the number of instances that received at least one request."""
    lines = ["", "=== Trace Summary ===", f"Total Decisions: {total_decisions}", f"  Admitted: {admitted}",
             f"  Rejected: {rejected}", f"Unique Targets: {len(target_distribution)}"]
    if target_distribution:
        lines.append("Target Distribution:")
        lines += [f"  {key}: {target_distribution[key]}" for key in sorted(target_distribution)]
    lines += [f"Mean Regret: {go_fmt_f(mean_regret)}", f"Max Regret: {go_fmt_f(max_regret)}"]
    return "\n".join(lines) + "\n"
