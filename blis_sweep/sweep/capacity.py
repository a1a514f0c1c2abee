"""`blis-sweep capacity SPEC.yaml`: the highest stable offered rate within the SLO, per deployment.

Every point of the sweep file (its grid without a `rate` axis) is a *deployment*. A rate
*passes* when, pooled over the seeds, the runs' steady windows (blis_sweep.sweep.steady_state) are
`stable` (mean backlog growth <= max_backlog_growth) and meet every SLO bound: a percentile
bound (ttft_p99_ms <= 500) on the seeds' steady-window requests pooled into one sample (>= 99%
of them within 500 ms), attainment likewise pooled, other bounds on the seeds' mean.

Each round proposes PROBES_PER_ROUND rates per deployment: from `start_rate` (or, with
`start_rate: auto`, the default, from 90% of the throughput measured in a first round with all
requests arriving at once) in steps of 1 + 4 x tolerance that widen until one rate passes and one
fails. Where two probes give finite margins (log of measured / allowed of the tightest criterion,
> 0 failing), the rate where the margin crosses zero is interpolated (or extrapolated) in
log(rate) and the next probes straddle it one tolerance apart, so that adjacent ones close the
search; otherwise [lo, hi] is split geometrically. Until max_rate_high / max_rate_low - 1 <=
tolerance.

Convergence: then lo / (1 + tolerance) and hi are simulated again with runs at least twice as
long (and long enough for MIN_TAIL_SAMPLES pooled requests beyond every bounded percentile). If
the first still passes and the second still fails, the boundary at twice the run length lies in
[lo / (1 + tol), hi]: doubling the runs moved it by less than one tolerance either way, and the
answer lo stands (max_rate_low = lo / (1 + tol)). Otherwise the longer length becomes the
deployment's run length and the search continues from what the longer runs say, so runs are
longest where the answer is decided. `max_requests` caps the run length (`converged` is false
when it stopped the search).

Meanwhile (from the first failing rate on) each deployment is driven into sustained
overload (overload_factor x the lowest failing rate, again x overload_factor while that is
still stable) with runs of the starting length; `capacity_rps` is its saturated
throughput there (completions per second over the middle half of the completions, all of
which happen while the backlog keeps the server full).

Every round, the next probes of every deployment still searching are simulated in one batch
through `evaluate` (default: the grid's own chunk code, one kernel call per round), so a
row of a probe is exactly the row `grid` would write for that configuration.
"""
from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import polars as pl

from blis_sweep.errors import BlisError
from blis_sweep.sweep.spec import GridSpec, load_grid_spec
from blis_sweep.sweep.slo_classes import CLASS_FLOAT_COLUMNS, CLASS_INT_COLUMNS
from blis_sweep.sweep.steady_state import (ATTAINMENT_BOUNDS, STEADY_FLOAT_COLUMNS, Attainment, SteadySettings,
                                     WINDOW_COLUMNS)

CAPACITY_FILE = "capacity.parquet"
PROBES_DIR = "probes"
MANIFEST_FILE = "manifest.json"
SWEEP_FILE = "sweep.yaml"
MIN_RUN_REQUESTS = 200  # below this the steady window is too short to judge
KV_BOUND_SHARE = 0.98  # a run that peaked at this share of its KV blocks (or preempted) is KV-bound
CAPACITY_TRIES = 4


@dataclass(frozen=True)
class SearchSettings:
    """The sweep file's `search:` block, plus the run settings the search needs."""

    tolerance: float = 0.02  # relative width of the final interval
    start_rate: float | None = None  # first probe (requests/s), doubled/halved from there; None: auto
    min_rate: float = 0.01
    max_rate: float = 100_000.0
    max_requests: int = 64_000  # longest run the convergence check may ask for
    convergence_check: bool = True
    overload_factor: float = 2.0  # capacity probe at this multiple of the lowest failing rate
    seeds: tuple[int, ...] = (42,)
    steady: SteadySettings = field(default_factory=SteadySettings)

    def as_dict(self) -> dict:
        return {"tolerance": self.tolerance, "start_rate": self.start_rate, "min_rate": self.min_rate,
                "max_rate": self.max_rate, "max_requests": self.max_requests,
                "convergence_check": self.convergence_check, "overload_factor": self.overload_factor}


@dataclass(frozen=True)
class CapacitySlo:
    """Percentile bounds (metric -> upper bound, judged on the steady window) and/or attainment."""

    bounds: dict = field(default_factory=dict)
    attainment: Attainment | None = None
    class_bounds: dict = field(default_factory=dict)  # SLO class -> {metric: bound} (slo_classes.py)

    @property
    def empty(self) -> bool:
        return not self.bounds and self.attainment is None and not self.class_bounds


@dataclass
class SearchPoint:
    """One deployment: a grid point (values without a meaningful rate) of `spec`."""

    point_id: int
    values: dict
    lines: dict
    spec: GridSpec | None = None


@dataclass
class Probe:
    """One configuration to simulate: a deployment at a rate, run length and seed."""

    deployment: int  # index into the deployments list
    point_id: int
    rate: float
    num_requests: int
    seed: int
    replicate: int
    values: dict
    lines: dict

    @property
    def key(self) -> tuple:
        return (self.point_id, self.rate, self.num_requests, self.seed)


# ---------------------------------------------------------------- judging one rate

def slo_column(metric: str, columns) -> str:
    """The column an SLO bound is judged on: the steady-window version when there is one."""
    steady = f"steady_{metric}"
    return steady if steady in columns else metric


def percentile_key(key: str) -> tuple[str, float] | None:
    """(latency, quantile) of a per-request percentile bound name such as ttft_p99_ms, else None."""
    parts = key.split("_")
    if (len(parts) == 3 and f"{parts[0]}_ms" in ATTAINMENT_BOUNDS and parts[1][:1] == "p" and parts[1][1:].isdigit()
            and parts[2] == "ms"):
        return parts[0], int(parts[1][1:]) / 100.0
    return None


def derived_attainment(bounds: dict) -> Attainment | None:
    """Per-request bounds implied by percentile bounds (ttft_p99_ms <= 500: a request is good at ttft <= 500)."""
    per_request, fractions = {}, []
    for key, bound in bounds.items():
        pk = percentile_key(key)
        if pk is not None:
            name = f"{pk[0]}_ms"
            per_request[name] = min(bound, per_request.get(name, math.inf))
            fractions.append(pk[1])
    if not per_request:
        return None
    return Attainment(**per_request, min_fraction=min(fractions))


AUTO_START_SHARE = 0.9  # auto start: this share of the saturated throughput
MIN_TAIL_SAMPLES = 100  # requests beyond a percentile bound (pooled over seeds) before it can be trusted
PROBES_PER_ROUND = 3  # search probes per deployment and round (one batch holds them all)
# throughput alone (round 0's saturated-throughput guess, the capacity probe) varies little between
# seeds: those probes run the first THROUGHPUT_SEEDS seeds only; SLO tails need all of them
THROUGHPUT_SEEDS = 2


def tail_samples(judged: Judged, slo: CapacitySlo) -> float:
    """Fewest requests beyond any bounded percentile in these runs (inf without percentile bounds)."""
    fewest = math.inf
    window = sum(int(r.get("steady_requests") or 0) for r in judged.rows)
    for key in slo.bounds:
        pk = percentile_key(key)
        if pk is not None:
            fewest = min(fewest, window * (1 - pk[1]))
    if slo.attainment is not None:
        fewest = min(fewest, window * (1 - slo.attainment.min_fraction))
    return fewest


@dataclass
class Judged:
    """A rate's probes pooled over seeds."""

    rate: float
    num_requests: int
    rows: list[dict]
    passed: bool
    stable: bool
    fail_reason: str | None
    mean: dict
    margin: float | None = None  # log(measured / allowed) of the tightest criterion (> 0: violated)

    @property
    def requests(self) -> int:
        return sum(int(r["num_requests"] or 0) for r in self.rows)


def _mean(values) -> float | None:
    vals = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return sum(vals) / len(vals) if vals else None


def pooled_share(rows: list[dict], column: str) -> tuple[float, int] | None:
    """Share of the seeds' steady-window requests pooled together (column: a per-run share), and the pool size."""
    total = good = 0.0
    for r in rows:
        n, v = int(r.get("steady_requests") or 0), r.get(column)
        if v is None or (isinstance(v, float) and math.isnan(v)):
            continue
        total, good = total + n, good + v * n
    return (good / total, int(total)) if total > 0 else None


def _share_margin(share: float, pool: int, needed: float) -> float:
    """log(missing share / allowed missing share); an empty miss counts as half a request."""
    return math.log(max(1.0 - share, 0.5 / max(pool, 1)) / max(1.0 - needed, 1e-12))


def _value_margin(value: float, bound: float) -> float:
    if not math.isfinite(value):
        return math.inf
    return math.log(max(value, 1e-12) / bound) if bound > 0 else (math.inf if value > bound else -math.inf)


def judge(rows: list[dict], slo: CapacitySlo, steady: SteadySettings) -> Judged:
    """Pool one rate's runs over the seeds: stable (mean backlog growth) and within every SLO bound.

    A percentile bound (ttft_p99_ms <= 500) is judged on the seeds' steady windows pooled into one
    sample - the share of them within 500 ms must be >= 99% - not on the mean of per-seed p99s: a
    tail percentile of a short run misses the rare congestion episodes that a pooled sample (and a
    long run) contains, so the mean of per-seed percentiles is biased low. Bounds the per-request
    shares cannot express (means, other percentiles of the same latency) use the seeds' mean.
    """
    first = rows[0]
    if first.get("infeasible"):
        return Judged(first["rate"], first["num_requests"], rows, False, False, "infeasible", {})
    mean = {c: _mean(r.get(c) for r in rows) for c in first if isinstance(first[c], (int, float))
            and not isinstance(first[c], bool)}
    growth = mean.get("backlog_growth")
    stable = growth is not None and growth <= steady.max_backlog_growth
    reasons = []
    if not stable:
        kv_bound = any((r.get("preemptions") or 0) > 0
                       or (r.get("kv_peak_blocks") or 0) >= KV_BOUND_SHARE * (r.get("kv_total_blocks") or math.inf)
                       for r in rows)
        reasons.append("kv_cache" if kv_bound else "throughput")
    per_request = slo.attainment or derived_attainment(slo.bounds)  # what the runs measured shares against
    margins = []
    for key, bound in slo.bounds.items():
        pk = percentile_key(key)
        pooled = None
        if pk is not None and per_request is not None and getattr(per_request, f"{pk[0]}_ms") == bound:
            pooled = pooled_share(rows, f"{pk[0]}_attainment")
        if pooled is not None:
            margin = _share_margin(pooled[0], pooled[1], pk[1])
            ok = pooled[0] >= pk[1]
        else:
            value = mean.get(slo_column(key, first))
            ok = value is not None and value <= bound
            margin = _value_margin(value, bound) if value is not None else math.inf
        margins.append(margin)
        if not ok:
            reasons.append(key)
    for cls, bounds in slo.class_bounds.items():  # per SLO class of workload specs
        for key, bound in bounds.items():
            value = mean.get(f"{cls}_{key}")
            if value is not None:  # None: no request of that class
                margins.append(_value_margin(value, bound))
                if not value <= bound:
                    reasons.append(f"{cls}.{key}")
    if slo.attainment is not None:
        pooled = pooled_share(rows, "slo_attainment")
        if pooled is not None:
            mean["slo_attainment"] = pooled[0]
            margins.append(_share_margin(pooled[0], pooled[1], slo.attainment.min_fraction))
        if pooled is None or pooled[0] < slo.attainment.min_fraction:
            reasons.append("attainment")
    if growth is not None and math.isfinite(growth):  # the backlog test's margin, for interpolation
        margins.append(math.log(max(growth, 1e-4) / steady.max_backlog_growth))
    return Judged(first["rate"], first["num_requests"], rows, not reasons, stable, ",".join(reasons) or None, mean,
                  max(margins) if margins else None)


def _finite(j: Judged) -> bool:
    return j.margin is not None and math.isfinite(j.margin)


def crossing(a: Judged, b: Judged) -> float | None:
    """Rate where the margin crosses zero on the line through two probes in (log(rate), margin):
    interpolated between a passing and a failing rate, extrapolated from two on the same side
    (None when a margin is not finite or the margin does not rise with the rate)."""
    if not (_finite(a) and _finite(b)) or a.rate == b.rate:
        return None
    (x0, y0), (x1, y1) = sorted(((math.log(a.rate), a.margin), (math.log(b.rate), b.margin)))
    if not y1 > y0:
        return None
    return math.exp(x0 - y0 * (x1 - x0) / (y1 - y0))


# ---------------------------------------------------------------- one deployment's search

@dataclass
class _Search:
    """One deployment's search. Each round it proposes PROBES_PER_ROUND rates (bracketing, then
    narrowing [lo, hi] around the interpolated SLO crossing), then, once hi / lo - 1 <= tolerance,
    the convergence check: lo and hi again with runs at least twice as long (and long enough for
    MIN_TAIL_SAMPLES beyond every bounded percentile). Converged when lo still passes and hi still
    fails there - the boundary at both run lengths lies in [lo, hi], so doubling the run moved the
    answer by less than the tolerance. Otherwise the longer length becomes the run length and the
    search continues from what the longer runs say."""

    index: int
    point: SearchPoint
    length: int
    settings: SearchSettings
    slo: CapacitySlo = field(default_factory=lambda: CapacitySlo())
    lo: Judged | None = None
    hi: Judged | None = None
    phase: str = "bracket"  # estimate, bracket, confirm, done
    start: float | None = None  # first rate of the bracket
    step: float = 2.0
    converged: bool = False
    confirm_length: int = 0
    check: tuple | None = None  # (below, above): the convergence check's runs, when it passed
    capacity: Judged | None = None
    capacity_rate: float | None = None
    capacity_state: str = "waiting"  # waiting, probing, done
    capacity_tries: int = 0
    note: str | None = None
    requests: int = 0
    probes: int = 0
    rounds: int = 0
    start_length: int = 0
    seen: list = field(default_factory=list)  # search probes judged at the current run length

    def __post_init__(self):
        self.start_length = self.start_length or self.length

    @property
    def done(self) -> bool:
        return self.phase == "done" and self.capacity_state == "done"

    def _estimate(self) -> float | None:
        """Where the boundary is, from the margins seen at this run length (None: no usable estimate)."""
        lo, hi = self.lo, self.hi
        if lo is not None and hi is not None:
            c = crossing(lo, hi) if (_finite(lo) and _finite(hi) and lo.margin < 0 < hi.margin) else None
            return c if c is not None and lo.rate < c < hi.rate else None
        side = [j for j in self.seen if _finite(j) and j.passed == (hi is None)]
        if len(side) < 2:
            return None
        side.sort(key=lambda j: j.rate, reverse=hi is None)  # the two nearest the boundary
        c = crossing(side[0], side[1])
        ref = side[0].rate
        if c is None or (hi is None and c <= ref) or (lo is None and c >= ref):
            return None
        return min(max(c, ref / self.step ** 2), ref * self.step ** 2)

    def _bracket_rates(self) -> list[float]:
        s = self.settings
        g, k = 1 + s.tolerance, PROBES_PER_ROUND
        lo = self.lo.rate if self.lo is not None else 0.0
        hi = self.hi.rate if self.hi is not None else math.inf
        rates = []
        c = self._estimate()
        if c is not None:  # three rates one tolerance apart around the estimate: adjacent ones close the search
            rates = [r for r in (c / g, c, c * g) if lo * (1 + s.tolerance / 8) < r < hi / (1 + s.tolerance / 8)]
        if not rates:
            if self.lo is None and self.hi is None:  # around the start
                rates = [self.start * self.step ** (j - (k - 1) / 2) for j in range(k)]
            elif self.hi is None:
                rates = [lo * self.step ** ((j + 1) / k) for j in range(k)]
            elif self.lo is None:
                rates = [hi / self.step ** ((j + 1) / k) for j in range(k)]
            else:  # split [lo, hi] into k + 1 equal parts of log(rate)
                rates = [lo * (hi / lo) ** ((j + 1) / (k + 1)) for j in range(k)]
        return sorted({min(max(r, s.min_rate), s.max_rate) for r in rates})

    def next_rates(self) -> list[tuple[float, int, tuple]]:
        """(rate, run length, seeds) of this round's probes: the search's, then the capacity probe's."""
        s = self.settings
        seeds, few = tuple(s.seeds), tuple(s.seeds[:THROUGHPUT_SEEDS])
        out = []
        if self.phase == "estimate":
            # all requests at once: the deployment's saturated throughput, a cheap first guess
            out.append((s.max_rate, self.length, few))
        elif self.phase == "bracket":
            out += [(r, self.length, seeds) for r in self._bracket_rates()]
        elif self.phase == "confirm":
            below = self.lo.rate / (1 + s.tolerance)
            out += [(below, self.confirm_length, seeds), (self.hi.rate, self.confirm_length, seeds)]
        if self.capacity_state == "waiting" and (self.hi is not None or self.phase == "done"):
            ref = self.hi.rate if self.hi is not None else self.lo.rate
            self.capacity_rate, self.capacity_state = ref * s.overload_factor, "probing"
        if self.capacity_state == "probing":
            out.append((self.capacity_rate, self.start_length, few))
        return out

    def update(self, judged: list[Judged]) -> None:
        self.rounds += 1
        for j in judged:
            self.requests += j.requests
            self.probes += len(j.rows)
        if judged[0].fail_reason == "infeasible":
            self.hi, self.note, self.phase, self.capacity_state = judged[0], "infeasible", "done", "done"
            return
        if self.capacity_state == "probing":
            self._capacity(judged[-1])
            judged = judged[:-1]
        if self.phase == "estimate":
            s = self.settings
            mu = judged[0].mean.get("saturated_rps")
            guess = mu * AUTO_START_SHARE if mu is not None and math.isfinite(mu) and mu > 0 else 1.0
            self.start = min(max(guess, s.min_rate), s.max_rate)
            self.phase, self.step = "bracket", 1 + 4 * s.tolerance
        elif self.phase == "bracket":
            self._search(judged)
        elif self.phase == "confirm":
            self._confirm(*judged)
        if self.phase == "done" and self.capacity_state == "waiting" and self.hi is None and self.lo is None:
            self.capacity_state = "done"

    def _search(self, judged: list[Judged]) -> None:
        s = self.settings
        had_bracket = self.lo is not None and self.hi is not None
        self.seen += judged
        for j in judged:  # the lowest failing rate first; a passing rate above it is noise and ignored
            if not j.passed and (self.hi is None or j.rate < self.hi.rate):
                self.hi = j
        if self.lo is not None and self.hi is not None and self.lo.rate >= self.hi.rate:
            self.lo = None
        for j in judged:
            if j.passed and (self.hi is None or j.rate < self.hi.rate) and (self.lo is None or j.rate > self.lo.rate):
                self.lo = j
        if self.lo is not None and self.hi is None and self.lo.rate >= s.max_rate:
            self.note, self.phase = "search_limit", "done"
            return
        if self.hi is not None and self.lo is None and self.hi.rate <= s.min_rate:
            self.note, self.phase = "below_min_rate", "done"
            return
        if self.lo is None or self.hi is None:
            if not had_bracket:
                self.step = self.step * self.step  # widen until the boundary is bracketed
            return
        if self.hi.rate / self.lo.rate - 1 <= s.tolerance * (1 + 1e-9):
            self._search_closed()

    def _search_closed(self) -> None:
        s = self.settings
        if not s.convergence_check:
            self.converged, self.phase = True, "done"
        elif 2 * self.length > s.max_requests:
            self.note, self.phase = "max_requests", "done"
        else:
            # at least twice as long, and long enough for MIN_TAIL_SAMPLES beyond every bounded percentile
            have = tail_samples(self.lo, self.slo)
            doublings = 1 if have >= MIN_TAIL_SAMPLES else max(1, math.ceil(math.log2(MIN_TAIL_SAMPLES / max(have, 1))))
            self.confirm_length = min(self.length * 2 ** doublings, s.max_requests)
            self.phase = "confirm"

    def _confirm(self, below: Judged, above: Judged) -> None:
        s = self.settings
        self.length = self.confirm_length
        self.seen = [below, above]
        if below.passed and not above.passed and tail_samples(below, self.slo) >= MIN_TAIL_SAMPLES:
            # the boundary at twice the run length lies in [lo / (1 + tol), hi]: doubling moved it by
            # less than one tolerance either way; the answer stays lo (runs of the search's length)
            self.check = (below, above)
            self.converged, self.phase = True, "done"
            return
        # not converged: continue at the longer length from what these runs say (once that length
        # cannot double within max_requests, the search closes there and stops unconverged)
        if not below.passed:  # the boundary moved down by more than the tolerance
            self.lo, self.hi = None, below
        elif above.passed:  # ... or up, past hi
            self.lo, self.hi = above, None
        else:  # too few tail samples: the longer runs' bracket
            self.lo, self.hi = below, above
        if self.lo is not None and self.hi is not None and self.hi.rate / self.lo.rate - 1 <= s.tolerance * (1 + 1e-9):
            self._search_closed()
        else:
            self.phase, self.step = "bracket", 1 + 4 * s.tolerance

    def _capacity(self, j: Judged) -> None:
        if not j.stable:
            self.capacity, self.capacity_state = j, "done"
            return
        self.capacity_tries += 1
        if self.capacity_tries >= CAPACITY_TRIES or self.capacity_rate >= self.settings.max_rate:
            self.capacity_state = "done"
        else:
            self.capacity_rate *= self.settings.overload_factor


# ---------------------------------------------------------------- the search

def _probes(search: _Search, rates: list[tuple[float, int, tuple]]) -> list[Probe]:
    out = []
    for rate, n, seeds in rates:
        values = dict(search.point.values, rate=float(rate), num_requests=int(n))
        for rep, seed in enumerate(seeds):
            out.append(Probe(search.index, search.point.point_id, float(rate), int(n), int(seed), rep, values,
                             search.point.lines))
    return out


def search_capacity(deployments: list[SearchPoint], slo: CapacitySlo, search: SearchSettings, *,
                    evaluate: Callable[[list[Probe]], pl.DataFrame] | None = None,
                    progress: Callable[[int, int, int, int], None] | None = None) -> pl.DataFrame:
    """Search every deployment's highest passing rate; one `evaluate` call (one batch) per round.

    evaluate(probes) returns one result row per probe, in order, with the grid's configs
    columns (default: LocalEvaluator of the deployments' sweep). progress(round, done,
    total, requests_simulated) is called after every round.
    """
    if evaluate is None:
        if not deployments or deployments[0].spec is None:
            raise ValueError("search_capacity needs evaluate= when deployments carry no spec")
        evaluate = LocalEvaluator(deployments[0].spec, slo)
    searches = [_Search(i, d, int(d.values["num_requests"]), search, slo,
                        phase="estimate" if search.start_rate is None else "bracket", start=search.start_rate)
                for i, d in enumerate(deployments)]
    round_no = 0
    while True:
        active = [s for s in searches if not s.done]
        if not active:
            break
        planned = [(s, s.next_rates()) for s in active]
        probes = [p for s, rates in planned for p in _probes(s, rates)]
        rows = evaluate(probes)
        if isinstance(rows, pl.DataFrame):
            rows = rows.to_dicts()
        if len(rows) != len(probes):
            raise RuntimeError(f"evaluate returned {len(rows)} rows for {len(probes)} probes")
        at = 0
        for s, rates in planned:
            judged = []
            for _, _, seeds in rates:
                group = rows[at:at + len(seeds)]
                at += len(seeds)
                judged.append(judge(group, slo, search.steady))
            s.update(judged)
        round_no += 1
        if progress is not None:
            progress(round_no, sum(s.done for s in searches), len(searches),
                     sum(s.requests for s in searches))
    return _result_table(searches, slo)


# ---------------------------------------------------------------- result rows

PARAM_DROP = ("config_id", "point_id", "replicate", "seed", "rate", "num_requests")
SUMMARY_METRICS = ("preemptions", "kv_peak_blocks", "responses_per_sec")


def _result_table(searches: list[_Search], slo: CapacitySlo) -> pl.DataFrame:
    from blis_sweep.sweep.resolve import PARAM_COLUMNS

    out = []
    for s in searches:
        ref = (s.lo or s.hi or s.capacity)
        first = ref.rows[0] if ref is not None else {}
        row = {"deployment_id": s.point.point_id}
        row.update({c: first.get(c) for c in PARAM_COLUMNS if c not in PARAM_DROP})
        gpus = int(s.point.values.get("tp") or 1) * int(s.point.values.get("num_instances") or 1)
        lo = s.lo
        limited = s.note if s.note in ("infeasible", "search_limit") else (s.hi.fail_reason if s.hi else None)
        cap_rows = s.capacity.rows if s.capacity is not None else []
        cap_values = [r["saturated_rps"] for r in cap_rows if r.get("saturated_rps") is not None]
        row.update(
            max_rate_rps=lo.rate if lo else None,
            max_rate_low=(s.check[0].rate if s.check else lo.rate) if lo else None,
            max_rate_high=s.hi.rate if s.hi else None,
            capacity_rps=_mean(cap_values) if cap_values else None,
            capacity_rps_min=min(cap_values) if cap_values else None,
            capacity_rps_max=max(cap_values) if cap_values else None,
            capacity_probe_rps=s.capacity.rate if s.capacity is not None else None,
            limited_by=limited,
            converged=s.converged,
            stop_reason=s.note,
            run_requests=lo.num_requests if lo else s.length,
            check_requests=s.check[0].num_requests if s.check else None,
            gpus=gpus,
        )
        m = lo.mean if lo else {}
        for c in WINDOW_COLUMNS + tuple(c for c in STEADY_FLOAT_COLUMNS if c not in ("steady_start_s", "steady_end_s")):
            row[c] = m.get(c)
        for c in SUMMARY_METRICS:
            row[c] = m.get(c)
        for c in CLASS_INT_COLUMNS + CLASS_FLOAT_COLUMNS:  # per SLO class (workload specs), at max rate
            row[c] = m.get(c)
        if slo.attainment is None and not slo.bounds:
            row["goodput_rps"] = m.get("achieved_rps")
        row["output_tokens_per_s"] = m.get("steady_output_tokens_per_s")
        row["output_tokens_per_s_per_gpu"] = (m["steady_output_tokens_per_s"] / gpus
                                              if m.get("steady_output_tokens_per_s") is not None else None)
        row.update(requests_simulated=s.requests, probes=s.probes, rounds=s.rounds)
        out.append(row)
    df = pl.DataFrame(out, infer_schema_length=None)
    return (df.sort(["max_rate_rps", "output_tokens_per_s_per_gpu", "deployment_id"],
                    descending=[True, True, False], nulls_last=True)
            .with_columns(rank=pl.int_range(1, pl.len() + 1)))


# ---------------------------------------------------------------- simulating probes locally

KERNEL_REQUESTS = 100_000  # simulated requests per kernel call at most (an overloaded long run holds its backlog)


class LocalEvaluator:
    """Simulates a round's probes in this process with the grid's chunk code (one kernel call, or a few
    for very big rounds)."""

    def __init__(self, spec: GridSpec, slo: CapacitySlo | None = None):
        import numba

        from blis_sweep.sweep.resolve import Resolver, WorkloadCache
        from blis_sweep.sweep.run import _PackCache, _Progress

        self.spec = spec
        self.resolver = Resolver(spec)
        self.wcache = WorkloadCache(self.resolver)
        self.packs = _PackCache(self.wcache)
        self.threads = numba.get_num_threads()
        self._quiet = _Progress(False, 0, 0, "")
        slo = slo or CapacitySlo(spec.slo, spec.attainment, spec.class_slo)
        # goodput needs per-request bounds; percentile bounds imply them
        self.attainment = slo.attainment or derived_attainment(slo.bounds)
        self.requests_simulated = 0
        self.simulate_s = 0.0
        self.calls = 0
        self.cache_budget = self.wcache.budget

    def __call__(self, probes: list[Probe]) -> pl.DataFrame:
        from blis_sweep.sweep.resolve import workload_bytes, workload_key
        from blis_sweep.sweep.run import PointEntry

        entries = [PointEntry(p.values, p.lines, i, p.point_id, p.replicate, p.seed) for i, p in enumerate(probes)]
        # The round holds every workload it runs until its rows are built, so its base workloads (one per
        # run length and seed, shared by all deployments and rates) must all fit in the workload cache:
        # a budget below them makes the LRU evict a base that the next deployment's probe needs again, and
        # each regeneration is a new copy (~95 MB at 16,000 requests) that the round still holds - the
        # doubled capacity benchmark ran out of memory that way. No limit during the round (it holds them
        # anyway), then the budget is what this round's bases take, so the next round trims the rest.
        self.wcache.budget = math.inf
        table = self._simulate(probes, entries)
        bases = {}  # a generated workload's base: its key without rate, arrival and horizon
        for p, infeasible in zip(probes, table["infeasible"].to_list()):
            key = workload_key(p.values, p.seed)
            base = key[:4] if key[0] == "gen" else key
            if not infeasible and base not in bases:
                bases[base] = workload_bytes(self.wcache.get(key))  # a cache hit
        self.wcache.budget = max(self.cache_budget, sum(bases.values()))
        return table

    def _simulate(self, probes: list[Probe], entries: list) -> pl.DataFrame:
        from blis_sweep.sweep.run import KERNEL_BATCH, simulate_points

        # one kernel call per round, unless the round is so big that the simulation state of all its
        # runs at once would not fit in memory (KV block tables of large GPUs, per-request arrays):
        # then calls of the grid's KERNEL_BATCH configurations, or fewer for long runs
        longest = max((p.num_requests for p in probes), default=1)
        batch = (0 if len(probes) <= KERNEL_BATCH and len(probes) * longest <= KERNEL_REQUESTS
                 else max(2 * self.threads, min(KERNEL_BATCH, KERNEL_REQUESTS // longest)))
        res = simulate_points(entries, self.resolver, self.wcache, self.packs, False, self._quiet, self.threads,
                              self.spec.steady, self.attainment, kernel_batch=batch, class_slo=self.spec.class_slo)
        self.requests_simulated += res.requests_simulated
        self.simulate_s += res.simulate_s
        self.calls += 1
        return pl.from_arrow(res.configs)


# ---------------------------------------------------------------- the sweep file

def _num(raw: dict, key: str, default, lo: float, fail, integer: bool = False, lo_open: bool = True):
    v = raw.get(key, default)
    ok = not isinstance(v, bool) and isinstance(v, int if integer else (int, float)) and math.isfinite(v)
    if not ok or v < lo or (lo_open and v == lo):
        kind = "an integer" if integer else "a number"
        fail(key, f"must be {kind} {'>' if lo_open else '>='} {lo:g}, got {v!r}")
    return int(v) if integer else float(v)


def capacity_settings(spec: GridSpec) -> tuple[SearchSettings, CapacitySlo]:
    """Check a sweep file for `capacity` (before any work) and read its search: block."""
    def fail_at(path: tuple, message: str):
        line = spec.line_of(path)
        where = f"{spec.source}:{line}" if line else spec.source
        raise BlisError(f"{where}: {'.'.join(str(p) for p in path)}: {message}")

    if "rate" in spec.axis_keys:
        fail_at(("axes", "rate"), "capacity searches the rate itself: remove the rate axis (use `blis-sweep grid` "
                                  "for fixed rates)")
    for values, lines in spec.distinct(("workload",)):
        if "trace" in values["workload"]:
            raise BlisError(f"{spec.source}: workload: capacity needs generated workloads (preset or distribution) "
                            f"whose rate it can vary, not a trace")
    raw = spec.search or {}
    allowed = ("tolerance", "start_rate", "min_rate", "max_rate", "max_requests", "convergence_check",
               "overload_factor")
    for key in raw:
        if key not in allowed:
            fail_at(("search", key), f"unknown key (allowed: {', '.join(allowed)})")

    def fail(key, message):
        fail_at(("search", key), message)

    tol = _num(raw, "tolerance", 0.02, 0.0, fail)
    if tol >= 1:
        fail("tolerance", f"must be a relative tolerance in (0, 1), got {tol!r}")
    min_rate = _num(raw, "min_rate", 0.01, 0.0, fail)
    max_rate = _num(raw, "max_rate", 100_000.0, 0.0, fail)
    if max_rate <= min_rate * (1 + tol):
        fail("max_rate", f"empty search range: max_rate ({max_rate:g}) must exceed min_rate ({min_rate:g}) by more "
                         f"than the tolerance")
    start = None
    if raw.get("start_rate", "auto") != "auto":
        start = _num(raw, "start_rate", None, 0.0, fail)
        if not (min_rate <= start <= max_rate):
            fail("start_rate", f"must be auto or lie in [min_rate, max_rate] = [{min_rate:g}, {max_rate:g}], "
                               f"got {start:g}")
    max_requests = _num(raw, "max_requests", 64_000, 0, fail, integer=True)
    check = raw.get("convergence_check", True)
    if not isinstance(check, bool):
        fail("convergence_check", f"must be true or false, got {check!r}")
    factor = _num(raw, "overload_factor", 2.0, 1.0, fail)
    for values, lines in spec.distinct(("num_requests",)):
        n = values["num_requests"]
        if n < MIN_RUN_REQUESTS:
            line = lines.get("num_requests")
            raise BlisError(f"{spec.source}{':' + str(line) if line else ''}: num_requests: capacity runs need at "
                            f"least {MIN_RUN_REQUESTS} requests (the starting run length), got {n}")
        if n > max_requests:
            fail("max_requests", f"must be >= num_requests ({n}), got {max_requests}")
    settings = SearchSettings(tolerance=tol, start_rate=start, min_rate=min_rate, max_rate=max_rate,
                              max_requests=max_requests, convergence_check=check, overload_factor=factor,
                              seeds=tuple(spec.seeds), steady=spec.steady)
    return settings, CapacitySlo(dict(spec.slo), spec.attainment, spec.class_slo)


def capacity_hash(spec: GridSpec, settings: SearchSettings, slo: CapacitySlo) -> str:
    import hashlib

    norm = spec.normalized()
    ident = {k: v for k, v in norm.items() if k not in ("name", "description", "search", "chunk_size")}
    ident["search"] = settings.as_dict()
    text = json.dumps(ident, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# ---------------------------------------------------------------- the command

@dataclass
class CapacityRun:
    table: pl.DataFrame
    out_dir: Path
    spec_hash: str
    deployments: int
    rounds: int
    requests_simulated: int  # by this invocation (probes reused from an earlier one not counted)
    requests_total: int  # over all probes the answers rest on
    wall_s: float
    simulate_s: float
    reused_probes: int
    slo: CapacitySlo = field(default_factory=CapacitySlo)


class _ProbeStore:
    """Probe rows on disk (probes/round-NNNNN.parquet), so an interrupted search resumes where it stopped."""

    def __init__(self, out_dir: Path, spec_hash: str, inner: Callable):
        from blis_sweep.sweep.io import parquet_identity

        self.dir = out_dir / PROBES_DIR
        self.hash = spec_hash
        self.inner = inner
        self.rows: dict = {}
        self.next_file = 0
        self.reused = 0
        for path in sorted(self.dir.glob("round-[0-9][0-9][0-9][0-9][0-9].parquet")):
            h, _ = parquet_identity(path)
            self.next_file = max(self.next_file, int(path.stem.split("-")[1]) + 1)
            if h != spec_hash:
                continue
            for r in pl.read_parquet(path).to_dicts():
                self.rows[(r["point_id"], r["rate"], r["num_requests"], r["seed"])] = r

    def __call__(self, probes: list[Probe]) -> list[dict]:
        from blis_sweep.sweep.io import META_HASH, write_parquet_atomic

        missing = [p for p in probes if p.key not in self.rows]
        self.reused += len(probes) - len(missing)
        if missing:
            table = self.inner(missing)
            write_parquet_atomic(self.dir / f"round-{self.next_file:05d}.parquet", table.to_arrow(),
                                 {META_HASH: self.hash.encode()})
            self.next_file += 1
            for p, r in zip(missing, table.to_dicts()):
                self.rows[p.key] = r
        return [dict(self.rows[p.key], config_id=i) for i, p in enumerate(probes)]


def _prepare(out_dir: Path, spec_hash: str, overwrite: bool) -> None:
    import contextlib

    from blis_sweep.sweep.run import open_out_dir

    old = open_out_dir(out_dir, PROBES_DIR)
    if overwrite:
        for name in (CAPACITY_FILE, MANIFEST_FILE, SWEEP_FILE):
            with contextlib.suppress(FileNotFoundError):
                (out_dir / name).unlink()
        for p in (out_dir / PROBES_DIR).glob("round-*.parquet"):
            p.unlink()
        return
    if old is not None and old.get("spec_hash") != spec_hash:
        raise BlisError(f"{out_dir} holds results of another search (spec hash {old.get('spec_hash')}, this one "
                        f"{spec_hash}); use another --out or --overwrite")


def load_capacity_spec(spec_path: str | Path) -> tuple[GridSpec, SearchSettings, CapacitySlo]:
    from blis_sweep.sweep.resolve import Resolver

    spec = load_grid_spec(spec_path)
    settings, slo = capacity_settings(spec)
    if spec.base.get("rate") is None:  # the search sets it; validation only needs a value
        spec.base["rate"] = settings.start_rate or settings.max_rate
    Resolver(spec).validate()
    return spec, settings, slo


def run_capacity(spec_path: str | Path, out: str | Path | None = None, quiet: bool = False,
                 overwrite: bool = False, progress: bool | None = None, log=None,
                 evaluate: Callable | None = None) -> CapacityRun:
    """`blis-sweep capacity`: search, write OUT/capacity.parquet (+ probes/, manifest.json), return the run."""
    import datetime as dt

    import yaml

    from blis_sweep.sweep.io import META_HASH, atomic_write_json, atomic_write_text, write_parquet_atomic
    from blis_sweep.sweep.run import _warm_up
    from blis_sweep.sweep.run_info import git_commit, machine_info, package_versions

    t_start = time.perf_counter()
    if log is None:
        log = (lambda msg: None) if quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    if progress is None:
        progress = not quiet and sys.stderr.isatty()
    spec, settings, slo = load_capacity_spec(spec_path)
    spec_hash = capacity_hash(spec, settings, slo)
    out_dir = Path(out) if out is not None else Path("results") / f"{spec.name}"
    _prepare(out_dir, spec_hash, overwrite)

    deployments = [SearchPoint(p, *spec.point(p), spec=spec) for p in range(spec.num_points)]
    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    manifest = {"name": spec.name, "command": "capacity", "status": "running", "spec_file": str(spec_path),
                "spec_hash": spec_hash, "deployments": len(deployments), "seeds": list(spec.seeds),
                "search": settings.as_dict(), "steady_state": spec.steady.as_dict(), "slo": slo.bounds,
                "attainment": slo.attainment.as_dict() if slo.attainment else None,
                "versions": package_versions(), "commit": git_commit(), "machine": machine_info(),
                "started_at": started}
    atomic_write_text(out_dir / SWEEP_FILE, f"# blis-sweep capacity: expanded sweep of {spec.source}\n"
                      + yaml.safe_dump(spec.normalized(), sort_keys=False, default_flow_style=None))
    atomic_write_json(out_dir / MANIFEST_FILE, manifest)
    log(f"{spec.name}: {len(deployments)} deployments x {len(spec.seeds)} seeds, tolerance "
        f"{settings.tolerance:.0%}, starting at "
        + (f"{settings.start_rate:g} req/s" if settings.start_rate else "90% of the saturated throughput")
        + " with runs of "
        f"{spec.base['num_requests']} requests -> {out_dir}")

    compile_s = _warm_up(False)
    local = evaluate or LocalEvaluator(spec, slo)
    store = _ProbeStore(out_dir, spec_hash, local)
    bar = _RoundProgress(progress, len(deployments), spec.name)
    rounds = 0

    def on_round(r, done, total, requests):
        nonlocal rounds
        rounds = r
        bar.update(r, done, requests)

    try:
        table = search_capacity(deployments, slo, settings, evaluate=store, progress=on_round)
    finally:
        bar.close()
    table = table.with_columns(pl.lit(spec.name).alias("sweep"))
    write_parquet_atomic(out_dir / CAPACITY_FILE, table.to_arrow(), {META_HASH: spec_hash.encode()})
    wall = time.perf_counter() - t_start
    simulated = getattr(local, "requests_simulated", None)
    run = CapacityRun(table=table, out_dir=out_dir, spec_hash=spec_hash, deployments=len(deployments), rounds=rounds,
                      requests_simulated=simulated if simulated is not None else -1,
                      requests_total=int(table["requests_simulated"].sum()), wall_s=wall,
                      simulate_s=getattr(local, "simulate_s", float("nan")), reused_probes=store.reused, slo=slo)
    manifest.update(status="complete", finished_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                    rounds=rounds, requests_simulated=run.requests_simulated, requests_total=run.requests_total,
                    reused_probes=store.reused, wall_s=round(wall, 3), compile_s=round(compile_s, 3),
                    simulate_s=round(run.simulate_s, 3))
    atomic_write_json(out_dir / MANIFEST_FILE, manifest)
    return run


class _RoundProgress:
    def __init__(self, enabled: bool, total: int, name: str):
        self._p = None
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._p = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                           TextColumn("deployments done, round {task.fields[round]}, {task.fields[req]} requests"),
                           TimeElapsedColumn(), console=Console(stderr=True))
        self._p.start()
        self._task = self._p.add_task(name, total=total, round=0, req="0")

    def update(self, round_no: int, done: int, requests: int) -> None:
        if self._p is not None:
            self._p.update(self._task, completed=done, round=round_no, req=f"{requests:,}")

    def close(self) -> None:
        if self._p is not None:
            self._p.stop()


# ---------------------------------------------------------------- terminal table

def render_capacity_table(table: pl.DataFrame, top: int = 40, title: str | None = None, slo: CapacitySlo | None = None):
    from rich.table import Table

    from blis_sweep.sweep.resolve import PARAM_COLUMNS

    params = [c for c in PARAM_COLUMNS if c in table.columns and c not in PARAM_DROP
              and c not in ("infeasible", "infeasible_reason", "total_kv_blocks", "kv_blocks_source")]
    shown = [c for c in params if table.height > 1 and table[c].n_unique() > 1] or ["model", "hardware", "tp"]
    slo_text = "none"
    if slo is not None and not slo.empty:
        parts = [f"{k} <= {v:g}" for k, v in slo.bounds.items()]
        if slo.attainment is not None:
            parts.append("attainment " + ", ".join(f"{k}={v:g}" for k, v in slo.attainment.as_dict().items()))
        slo_text = "; ".join(parts)
    t = Table(title=title, header_style="bold", caption_justify="left",
              caption=f"rates in requests/s, latencies in ms over the steady window at max rate; SLO: {slo_text}; "
                      f"capacity = throughput under sustained overload")
    t.add_column("#", justify="right")
    for c in shown:
        t.add_column(c, justify="right" if table[c].dtype.is_numeric() else "left")
    for name in ("max rate", "interval", "capacity", "limited by", "ttft p99", "tpot p99", "goodput",
                 "out tok/s/GPU", "requests", "conv."):
        t.add_column(name, justify="left" if name in ("limited by", "interval") else "right", no_wrap=True)

    def f(v, d=1):
        return "-" if v is None else (f"{v:,.{d}f}" if isinstance(v, float) else str(v))

    for r in table.head(top).iter_rows(named=True):
        t.add_row(str(r["rank"]), *[f(r[c], 2) for c in shown], f(r["max_rate_rps"]),
                  f"[{f(r['max_rate_low'])}, {f(r['max_rate_high'])})", f(r["capacity_rps"]), r["limited_by"] or "-",
                  f(r.get("steady_ttft_p99_ms")), f(r.get("steady_tpot_p99_ms"), 2), f(r.get("goodput_rps")),
                  f(r.get("output_tokens_per_s_per_gpu"), 0), f"{r['requests_simulated']:,}",
                  "yes" if r["converged"] else "no")
    return t


def print_capacity(run: CapacityRun, slo: CapacitySlo | None = None, top: int = 40, console=None) -> None:
    from rich.console import Console

    if console is None:
        console = Console()
        if not console.is_terminal:
            console = Console(width=220)
    console.print(render_capacity_table(run.table, top=top, slo=slo or run.slo,
                                        title=f"{run.out_dir.name}: highest stable rate within the SLO, best first"))
