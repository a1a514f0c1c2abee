"""Steady-state metrics of one simulated run, from its per-request arrays (pure numpy).

A run starts empty (the batch fills, TPOT rises) and ends with a drain (arrivals stop,
the last requests see an emptying server); neither is the steady state a capacity
answer is about. So every run gets:

* a **warm-up cut**: by default (`warmup: auto`) MSER-5, the standard truncation rule of
  simulation output analysis, applied to the requests-in-system count seen by each
  arrival and to the E2E latency series (in arrival order); the larger cut wins, and no
  cut exceeds half the run. Or a fixed fraction of the requests.
* a **cool-down cut**: by default the requests still in the system when the last request
  arrives (they finish during the drain), at most a quarter of the run; or a fraction.
* the **steady window**: requests arriving between the cuts, and the time span of their
  arrivals. Offered and achieved throughput (arrivals and completions per second inside
  that span), latency percentiles (TTFT, TPOT, E2E, scheduling delay) of those requests
  (a request that never finished counts as infinitely late), output tokens/s.
* a **verdict**: `overloaded` when the backlog (requests in the system, sampled at
  BACKLOG_SAMPLES times across the window) grows: its least-squares slope divided by
  the offered rate (`backlog_growth`, the share of arrivals that pile up) exceeds
  `max_backlog_growth`, and its fitted rise over the window (backlog_end - backlog_start)
  exceeds BACKLOG_Z standard deviations of the backlog around its trend line (and one
  request); otherwise `stable`. The numbers that decided it are columns:
  backlog at the window's start and end (fitted), slope, growth, and the Little's-law
  ratio mean backlog / (achieved rate x mean E2E), near 1 in a steady state.
* `saturated_rps`: completions per second over the middle half of all completions; under
  sustained overload the server is full throughout them, so it is the capacity.
* with an attainment SLO: `slo_attainment` (share of window requests that meet every
  per-request bound), `goodput_rps` (those requests per second of the window) and, per
  bound, `ttft_attainment` / `tpot_attainment` / `e2e_attainment` (share meeting that bound).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MSER_BATCH = 5
MAX_WARMUP_FRACTION = 0.5
MAX_COOLDOWN_FRACTION = 0.25
MIN_WINDOW_REQUESTS = 10
BACKLOG_SAMPLES = 64
DEFAULT_MAX_BACKLOG_GROWTH = 0.02
# a backlog rise smaller than this many standard deviations of the backlog around its
# trend line is indistinguishable from the fluctuations of a stable queue
BACKLOG_Z = 2.0
PERCENTILES = (50, 90, 99)
LATENCIES = ("ttft", "tpot", "e2e", "scheduling_delay")
ATTAINMENT_BOUNDS = ("ttft_ms", "tpot_ms", "e2e_ms")

# throughput over the steady window (the names grid rows have always used)
WINDOW_COLUMNS = ("offered_rps", "achieved_rps", "achieved_ratio")
STEADY_FLOAT_COLUMNS = (
    ("steady_start_s", "steady_end_s", "steady_output_tokens_per_s", "saturated_rps")
    + tuple(f"steady_{m}_{s}_ms" for m in LATENCIES for s in ("mean", *(f"p{q}" for q in PERCENTILES)))
    + ("backlog_start", "backlog_end", "backlog_slope_rps", "backlog_growth", "little_ratio",
       "slo_attainment", "goodput_rps")
    + tuple(f"{b[:-3]}_attainment" for b in ATTAINMENT_BOUNDS)
)
STEADY_INT_COLUMNS = ("warmup_requests", "cooldown_requests", "steady_requests")
STEADY_STRING_COLUMNS = ("verdict",)
STEADY_COLUMNS = WINDOW_COLUMNS + STEADY_INT_COLUMNS + STEADY_FLOAT_COLUMNS + STEADY_STRING_COLUMNS
STABLE, OVERLOADED = "stable", "overloaded"


@dataclass(frozen=True)
class SteadySettings:
    """How the steady window is cut and judged (the sweep file's `steady_state:` block)."""

    warmup: str | float = "auto"  # "auto" or a fraction of the requests in [0, 0.5]
    cooldown: str | float = "auto"  # "auto" or a fraction of the requests in [0, 0.25]
    max_backlog_growth: float = DEFAULT_MAX_BACKLOG_GROWTH

    def as_dict(self) -> dict:
        return {"warmup": self.warmup, "cooldown": self.cooldown, "max_backlog_growth": self.max_backlog_growth}


@dataclass(frozen=True)
class Attainment:
    """Per-request SLO: a request is good when it meets every given bound (ms)."""

    ttft_ms: float | None = None
    tpot_ms: float | None = None
    e2e_ms: float | None = None
    min_fraction: float = 0.99

    def as_dict(self) -> dict:
        return {k: v for k, v in (("ttft_ms", self.ttft_ms), ("tpot_ms", self.tpot_ms), ("e2e_ms", self.e2e_ms),
                                  ("min_fraction", self.min_fraction)) if v is not None}


def mser_cut(series: np.ndarray, batch: int = MSER_BATCH, max_fraction: float = MAX_WARMUP_FRACTION) -> int:
    """MSER-b truncation point (in series items): argmin over d of the variance of the kept
    batch means divided by their count squared, d limited to max_fraction of the series."""
    m = series.shape[0] // batch
    if m < 4:
        return 0
    z = series[: m * batch].reshape(m, batch).mean(axis=1)
    tail_sum = np.cumsum(z[::-1])[::-1]
    tail_sq = np.cumsum((z * z)[::-1])[::-1]
    kept = m - np.arange(m, dtype=np.float64)
    stat = (tail_sq - tail_sum * tail_sum / kept) / (kept * kept)
    last = max(int(max_fraction * m), 0)
    return int(np.argmin(stat[: last + 1])) * batch


def percentiles_or_inf(values: np.ndarray, qs) -> list[float]:
    """Linear-interpolated percentiles; infinite where one reaches into requests that never
    finished (their latency is infinite)."""
    finite = np.isfinite(values)
    if finite.all():
        return [float(v) for v in np.percentile(values, qs)]
    top = float(values[finite].max()) if finite.any() else 0.0
    return [math.inf if q > top else float(q) for q in np.percentile(np.where(finite, values, 1e300), qs)]


def _percentiles(values: np.ndarray) -> list[float]:
    """[mean, *PERCENTILES] of one latency; NaN for no requests."""
    if values.size == 0:
        return [math.nan] * (1 + len(PERCENTILES))
    return [float(values.mean()), *percentiles_or_inf(values, PERCENTILES)]


def window_latencies_ms(sl: slice, completed: np.ndarray, has_ttft: np.ndarray, ttft_us: np.ndarray,
                        e2e_us: np.ndarray, itl_sum_us: np.ndarray, output_len: np.ndarray) -> dict[str, np.ndarray]:
    """TTFT, TPOT and E2E (ms) of the requests in `sl`; a request that never got that far is infinitely late."""
    out_len = output_len[sl]
    return {
        "ttft": np.where(has_ttft[sl], ttft_us[sl] / 1000.0, np.inf),
        "tpot": np.where(completed[sl], np.where(out_len > 1, itl_sum_us[sl] / np.maximum(out_len - 1, 1), 0.0)
                         / 1000.0, np.inf),
        "e2e": np.where(completed[sl], e2e_us[sl] / 1000.0, np.inf),
    }


def overloaded(growth: float, rise: float, residual_std: float, settings: SteadySettings) -> bool:
    """The backlog-drift test: the backlog grows by more than the allowed share of arrivals, and by more
    than its fluctuations around the trend."""
    return bool(growth > settings.max_backlog_growth and rise > max(BACKLOG_Z * residual_std, 1.0))


def in_system(arrival: np.ndarray, completion_sorted: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Requests arrived and not completed at each time (both arrays sorted; completion may hold inf)."""
    return (np.searchsorted(arrival, times, side="right")
            - np.searchsorted(completion_sorted, times, side="right")).astype(np.float64)


def steady_metrics(arrival_us: np.ndarray, completed: np.ndarray, has_ttft: np.ndarray, ttft_us: np.ndarray,
                   e2e_us: np.ndarray, itl_sum_us: np.ndarray, sched_us: np.ndarray, scheduled: np.ndarray,
                   output_len: np.ndarray, settings: SteadySettings = SteadySettings(),
                   attainment: Attainment | None = None) -> dict:
    """STEADY_COLUMNS of one run. arrival_us sorted; the other arrays per request, same order."""
    out: dict = {c: math.nan for c in STEADY_FLOAT_COLUMNS + WINDOW_COLUMNS}
    out.update({c: 0 for c in STEADY_INT_COLUMNS}, verdict=None)
    n = int(arrival_us.shape[0])
    if n < MIN_WINDOW_REQUESTS:
        return out
    arrival = arrival_us.astype(np.float64)
    completion = np.where(completed, arrival + e2e_us, np.inf)
    completion_sorted = np.sort(completion)
    e2e = np.where(completed, e2e_us / 1000.0, np.inf)

    if settings.warmup == "auto":
        backlog_at_arrival = in_system(arrival, completion_sorted, arrival)
        finite = np.isfinite(e2e)
        finite_e2e = np.where(finite, e2e, float(e2e[finite].max()) if finite.any() else 0.0)
        warm = max(mser_cut(backlog_at_arrival), mser_cut(finite_e2e))
    else:
        warm = int(math.floor(float(settings.warmup) * n))
    if settings.cooldown == "auto":
        cool = int(np.count_nonzero(completion > arrival[-1]))
        cool = min(cool, int(MAX_COOLDOWN_FRACTION * n))
    else:
        cool = int(math.floor(float(settings.cooldown) * n))
    lo, hi = warm, n - cool  # window requests: [lo, hi)
    if hi - lo < MIN_WINDOW_REQUESTS:
        out.update(warmup_requests=warm, cooldown_requests=cool, steady_requests=max(hi - lo, 0))
        return out
    # service rate while saturated: completions per second over the middle half of all completions.
    # In an overloaded run the backlog keeps the server full through them (it drains only after the
    # last arrival), so this is the deployment's capacity; in a stable run it is about the offered rate.
    done_sorted = completion_sorted[np.isfinite(completion_sorted)]
    if done_sorted.shape[0] >= MIN_WINDOW_REQUESTS:
        k1, k2 = done_sorted.shape[0] // 4, (3 * done_sorted.shape[0]) // 4
        span = (done_sorted[k2] - done_sorted[k1]) / 1e6
        out["saturated_rps"] = (k2 - k1) / span if span > 0 else math.nan
    t0, t1 = arrival[lo], arrival[hi - 1]
    span_s = (t1 - t0) / 1e6
    out.update(warmup_requests=warm, cooldown_requests=cool, steady_requests=hi - lo,
               steady_start_s=t0 / 1e6, steady_end_s=t1 / 1e6)
    if span_s <= 0:
        return out

    # throughput inside the window's time span
    arrived = (hi - 1 - lo) / span_s
    in_span = (completion > t0) & (completion <= t1)
    achieved = float(np.count_nonzero(in_span)) / span_s
    out.update(offered_rps=arrived, achieved_rps=achieved, achieved_ratio=achieved / arrived if arrived > 0 else math.nan,
               steady_output_tokens_per_s=float(output_len[in_span].sum()) / span_s)

    # latencies of the window's requests (never finished = infinitely late)
    sl = slice(lo, hi)
    latencies = window_latencies_ms(sl, completed, has_ttft, ttft_us, e2e_us, itl_sum_us, output_len)
    ttft, tpot = latencies["ttft"], latencies["tpot"]
    sched = np.where(scheduled[sl], sched_us[sl] / 1000.0, np.inf)
    for name, values in (("ttft", ttft), ("tpot", tpot), ("e2e", e2e[sl]), ("scheduling_delay", sched)):
        stats = _percentiles(values)
        out[f"steady_{name}_mean_ms"] = stats[0]
        for q, v in zip(PERCENTILES, stats[1:]):
            out[f"steady_{name}_p{q}_ms"] = v

    # backlog drift over the window
    times = np.linspace(t0, t1, BACKLOG_SAMPLES)
    backlog = in_system(arrival, completion_sorted, times)
    x = (times - t0) / 1e6
    slope, intercept = np.polyfit(x, backlog, 1)
    growth = slope / arrived if arrived > 0 else math.nan
    mean_e2e_s = float(np.mean(e2e[sl])) / 1000.0
    # time-average backlog over the window, exactly: each request's time in the system inside it
    mean_backlog = float(np.clip(np.minimum(completion, t1) - np.maximum(arrival, t0), 0, None).sum()) / (t1 - t0)
    little = mean_backlog / (achieved * mean_e2e_s) if achieved > 0 and 0 < mean_e2e_s < math.inf else math.nan
    out.update(backlog_start=float(intercept), backlog_end=float(intercept + slope * x[-1]),
               backlog_slope_rps=float(slope), backlog_growth=float(growth), little_ratio=little,
               verdict=OVERLOADED if overloaded(growth, slope * x[-1], float(np.std(backlog - intercept - slope * x)),
                                                settings) else STABLE)

    if attainment is not None:
        good = np.ones(hi - lo, dtype=bool)
        for name, bound, values in (("ttft", attainment.ttft_ms, ttft), ("tpot", attainment.tpot_ms, tpot),
                                    ("e2e", attainment.e2e_ms, e2e[sl])):
            if bound is not None:
                meets = values <= bound
                good &= meets
                # per bound too: pooled over seeds, these shares decide a percentile bound (capacity.judge)
                out[f"{name}_attainment"] = float(meets.mean())
        out.update(slo_attainment=float(good.mean()), goodput_rps=float(np.count_nonzero(good)) / span_s)
    return out


class SettingError(ValueError):
    """A bad entry of a `steady_state:` or `slo.attainment:` block: (key, message)."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


def _fraction(key: str, value, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 <= value <= hi):
        raise SettingError(key, f"must be auto or a fraction of the requests in [0, {hi:g}], got {value!r}")
    return float(value)


def parse_steady_settings(raw) -> SteadySettings:
    if raw is None:
        return SteadySettings()
    if not isinstance(raw, dict):
        raise SettingError("", "must be a mapping with warmup, cooldown, max_backlog_growth")
    allowed = ("warmup", "cooldown", "max_backlog_growth")
    for key in raw:
        if key not in allowed:
            raise SettingError(key, f"unknown key (allowed: {', '.join(allowed)})")
    warm = raw.get("warmup", "auto")
    cool = raw.get("cooldown", "auto")
    warm = "auto" if warm == "auto" else _fraction("warmup", warm, MAX_WARMUP_FRACTION)
    cool = "auto" if cool == "auto" else _fraction("cooldown", cool, MAX_COOLDOWN_FRACTION)
    growth = raw.get("max_backlog_growth", DEFAULT_MAX_BACKLOG_GROWTH)
    if isinstance(growth, bool) or not isinstance(growth, (int, float)) or not (0 < growth < 1):
        raise SettingError("max_backlog_growth", f"must be a number in (0, 1) (share of arrivals that may pile "
                                                 f"up), got {growth!r}")
    return SteadySettings(warm, cool, float(growth))


def parse_attainment(raw) -> Attainment:
    allowed = ATTAINMENT_BOUNDS + ("min_fraction",)
    if not isinstance(raw, dict) or not raw:
        raise SettingError("", f"must be a mapping of per-request bounds ({', '.join(allowed)}), "
                               f"e.g. {{ttft_ms: 200, tpot_ms: 50, min_fraction: 0.99}}")
    for key, value in raw.items():
        if key not in allowed:
            raise SettingError(key, f"unknown per-request bound (allowed: {', '.join(allowed)})")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise SettingError(key, f"must be a finite number > 0, got {value!r}")
    if not any(k in raw for k in ATTAINMENT_BOUNDS):
        raise SettingError("", f"needs at least one of {', '.join(ATTAINMENT_BOUNDS)}")
    fraction = raw.get("min_fraction", 0.99)
    if fraction > 1:
        raise SettingError("min_fraction", f"must be in (0, 1], got {fraction!r}")
    return Attainment(*(None if raw.get(k) is None else float(raw[k]) for k in ATTAINMENT_BOUNDS),
                      min_fraction=float(fraction))
