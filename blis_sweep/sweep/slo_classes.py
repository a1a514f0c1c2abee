"""Per-SLO-class results of workload-spec runs (`grid`, `capacity`): latency percentiles and attainment.

A workload spec gives each client an SLO class (realtime, interactive, batch, or none:
"unclassified"). For every class, over the run's steady window (the requests between the
warm-up and cool-down cuts of blis_sweep.sweep.steady_state), a configuration row gets the
class's request count, TTFT/TPOT/E2E percentiles (a request that never finished counts
as infinitely late, as in the steady metrics) and, with class bounds in the sweep file's
`slo:` (e.g. `slo: {realtime: {ttft_p99_ms: 200}, batch: {e2e_p99_ms: 30000}}`):

* `<class>_slo_attainment`: share of the class's window requests whose own TTFT / TPOT /
  E2E is within every bound of the class (a `_p99_` bound met by 99% of them is met);
* `<class>_slo_met`: every class bound holds for the class's percentile.

Workloads without classes (traces, distributions) leave these columns null.
"""
from __future__ import annotations

import math

import numpy as np

from blis_sweep.sweep.steady_state import PERCENTILES, percentiles_or_inf, window_latencies_ms

CLASS_COLUMN_NAMES = ("realtime", "interactive", "batch", "unclassified")
SPEC_CLASS_OF = {"realtime": "realtime", "interactive": "interactive", "batch": "batch", "": "unclassified"}
LATENCIES = ("ttft", "tpot", "e2e")
CLASS_BOUND_KEYS = tuple(f"{m}_p{q}_ms" for m in LATENCIES for q in PERCENTILES)
_METRICS = CLASS_BOUND_KEYS + ("slo_attainment",)
CLASS_FLOAT_COLUMNS = tuple(f"{c}_{m}" for c in CLASS_COLUMN_NAMES for m in _METRICS)
CLASS_INT_COLUMNS = tuple(f"{c}_requests" for c in CLASS_COLUMN_NAMES)
CLASS_BOOL_COLUMNS = tuple(f"{c}_slo_met" for c in CLASS_COLUMN_NAMES)


def parse_class_slo(cls: str, raw) -> dict[str, float]:
    """One class's bounds: {metric: upper bound in ms}; ValueError(message) when malformed."""
    if not isinstance(raw, dict) or not raw:
        raise ValueError(f"must be a mapping of per-class bounds ({', '.join(CLASS_BOUND_KEYS)}), "
                         f"e.g. {{ttft_p99_ms: 200}}")
    out = {}
    for key, value in raw.items():
        if key not in CLASS_BOUND_KEYS:
            raise ValueError(f"{key}: unknown per-class bound for {cls} (allowed: {', '.join(CLASS_BOUND_KEYS)})")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise ValueError(f"{key}: must be a finite number > 0 (ms), got {value!r}")
        out[key] = float(value)
    return out


def empty_class_row() -> dict:
    row: dict = {c: None for c in CLASS_FLOAT_COLUMNS + CLASS_INT_COLUMNS + CLASS_BOOL_COLUMNS}
    return row


def class_metrics(labels, window: slice, completed: np.ndarray, has_ttft: np.ndarray, ttft_us: np.ndarray,
                  e2e_us: np.ndarray, itl_sum_us: np.ndarray, output_len: np.ndarray,
                  class_slo: dict | None = None) -> dict:
    """The per-class columns of one run. Arrays per request (arrival order, as simulated); `window`
    selects the steady-window requests; labels: the workload's RequestLabels (None: no classes)."""
    row = empty_class_row()
    if labels is None:
        return row
    latencies = window_latencies_ms(window, completed, has_ttft, ttft_us, e2e_us, itl_sum_us, output_len)
    codes = labels.slo_class[: completed.shape[0]][window]
    for code, spec_name in enumerate(labels.slo_names):
        cls = SPEC_CLASS_OF[spec_name]
        mine = codes == code
        count = int(np.count_nonzero(mine))
        row[f"{cls}_requests"] = count
        if count == 0:
            continue
        for name in LATENCIES:
            for q, value in zip(PERCENTILES, percentiles_or_inf(latencies[name][mine], PERCENTILES)):
                row[f"{cls}_{name}_p{q}_ms"] = value
        bounds = (class_slo or {}).get(cls)
        if bounds:
            good = np.ones(count, dtype=bool)
            met = True
            for key, bound in bounds.items():
                metric, q = key.split("_")[0], int(key.split("_")[1][1:])
                values = latencies[metric][mine]
                good &= values <= bound
                met &= percentiles_or_inf(values, [q])[0] <= bound
            row[f"{cls}_slo_attainment"] = float(good.mean())
            row[f"{cls}_slo_met"] = bool(met)
    return row
