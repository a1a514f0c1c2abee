"""Requests of a workload spec, exactly as the reference generates them (sim/workload at d25e1935).

One Go math/rand source seeded with `seed XOR FNV-1a-64("workload-gen")` draws the shared
prefixes (50 token ids per prefix group, in order of first appearance), then one Int63
per client (in file order) that seeds the client's own source; everything else for the
client comes from its own source (kernels/go_rand.spec_client_requests_nb). Clients are
merged by a stable sort on arrival time and only then numbered request_0, request_1, ...
"""
from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path

import numpy as np

from blis_sweep.errors import BlisError
from blis_sweep.go.rand import MAX_TOKEN_ID, go_tables
from blis_sweep.kernels import go_rand as G
from blis_sweep.workloads.arrays import RequestLabels, Workload, build_workload_from_packed
from blis_sweep.workloads.spec import INT64_MAX, SLO_CLASSES, ClientSpec, DistSpec, WorkloadSpec

PREFIX_LENGTH = 50  # tokens per prefix group
MAX_ARRIVAL_DRAWS = 20_000_000  # expected inter-arrival draws of a whole spec
MAX_TOKENS = 200_000_000  # token ids of a whole spec
_MIN_RATE_PER_US = 1e-15  # the reference's floor
_DIST_KIND = {"gaussian": G.LENGTH_GAUSSIAN, "exponential": G.LENGTH_EXPONENTIAL,
              "pareto_lognormal": G.LENGTH_PARETO_LOGNORMAL, "empirical": G.LENGTH_EMPIRICAL}
_MM_COLUMNS = (("text_distribution", G.CS_TEXT), ("image_distribution", G.CS_IMAGE),
               ("image_count_distribution", G.CS_IMAGE_COUNT), ("audio_distribution", G.CS_AUDIO),
               ("audio_count_distribution", G.CS_AUDIO_COUNT), ("video_distribution", G.CS_VIDEO),
               ("video_count_distribution", G.CS_VIDEO_COUNT))


@lru_cache(maxsize=1)
def go_exp_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ke as int64, we, fe as float32) of Go's ExpFloat64, from the bundled table file."""
    data = json.loads((Path(__file__).parents[1] / "go" / "go_math_rand_exp_tables.json").read_text())
    ke = np.array(data["ke"], dtype=np.int64)
    we = np.array([np.float32(v) for v in data["we"]], dtype=np.float32)
    fe = np.array([np.float32(v) for v in data["fe"]], dtype=np.float32)
    return ke, we, fe


def fnv1a64(text: str) -> int:
    h = 0xCBF29CE484222325
    for byte in text.encode():
        h = ((h ^ byte) * 0x100000001B3) % (1 << 64)
    return h


def _int64(u: int) -> int:
    u %= 1 << 64
    return u - (1 << 64) if u >= 1 << 63 else u


def workload_gen_seed(seed: int) -> int:
    """The seed of the reference's "workload-gen" source: seed XOR int64(FNV-1a-64(name))."""
    return _int64(seed ^ fnv1a64("workload-gen"))


def client_rates(clients) -> list[float]:
    """Requests per µs per client: aggregate * fraction / sum(fractions) / 1e6 (the caller multiplies)."""
    total = 0.0
    for c in clients:
        total += c.rate_fraction
    return [0.0 if total == 0 else c.rate_fraction / total for c in clients]


# ----------------------------------------------------------------------------- samplers as arrays

class _Samplers:
    """Length samplers packed for the kernel: kind, float and int parameters, empirical CDFs."""

    def __init__(self):
        self.kinds, self.fparams, self.iparams = [], [], []
        self.offsets, self.values, self.cdf = [0], [], []

    def add(self, dist: DistSpec) -> int:
        f = [0.0] * 5
        i = [0, 0]
        if dist.type == "empirical":
            values, cdf = empirical_cdf(dist.params)
            self.values += values
            self.cdf += cdf
        else:
            params = dict(dist.params)
            names = {"gaussian": ("mean", "std_dev", "min", "max"), "exponential": ("mean",),
                     "pareto_lognormal": ("alpha", "xm", "mu", "sigma", "mix_weight")}[dist.type]
            for k, name in enumerate(names):
                f[k] = params.get(name, 0.0)
            if dist.type == "gaussian":
                i = [int(params.get("min", 0.0)), int(params.get("max", 0.0))]  # Go's int(): truncation
        self.kinds.append(_DIST_KIND[dist.type])
        self.fparams.append(f)
        self.iparams.append(i)
        self.offsets.append(len(self.values))
        return len(self.kinds) - 1

    def arrays(self):
        return (np.asarray(self.kinds, dtype=np.int64), np.asarray(self.fparams, dtype=np.float64).reshape(-1, 5),
                np.asarray(self.iparams, dtype=np.int64).reshape(-1, 2), np.asarray(self.offsets, dtype=np.int64),
                np.asarray(self.values, dtype=np.int64), np.asarray(self.cdf, dtype=np.float64))


def empirical_cdf(pdf) -> tuple[list[int], list[float]]:
    """The reference's empirical sampler: keys ascending, total over every weight, entries with
    weight <= 0 dropped, cum += w/total, the last entry set to 1."""
    items = sorted(pdf)
    total = 0.0
    for _, w in items:
        total += w
    values, cdf, cum = [], [], 0.0
    for k, w in items:
        if w <= 0:
            continue
        cum += w / total
        values.append(int(k))
        cdf.append(cum)
    if cdf:
        cdf[-1] = 1.0
    return values, cdf


# ----------------------------------------------------------------------------- arrivals

def _weibull_cv(k: float) -> float:
    try:
        g1 = math.gamma(1.0 + 1.0 / k)
        g2 = math.gamma(1.0 + 2.0 / k)
    except OverflowError:
        return math.inf
    x = g2 / (g1 * g1) - 1.0
    return math.sqrt(x) if x >= 0 else math.nan


def weibull_shape(target_cv: float) -> float:
    """Bisection on k in [0.1, 100] until |cv(k) - target| < 0.001 (at most 100 steps), as the reference."""
    lo, hi = 0.1, 100.0
    for _ in range(100):
        mid = (lo + hi) / 2.0
        cv = _weibull_cv(mid)
        if abs(cv - target_cv) < 0.001:
            return mid
        if cv > target_cv:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2.0


def arrival_params(client: ClientSpec, rate_per_us: float) -> tuple[int, float, float]:
    """(kind, p0, p1) of the client's inter-arrival sampler (see kernels.go_rand.spec_iat_nb)."""
    rate = max(rate_per_us, _MIN_RATE_PER_US)
    cv = client.cv if client.cv is not None and client.cv > 0 else 1.0
    if client.process == "gamma":
        shape = 1.0 / (cv * cv)
        scale = (1.0 / rate) * cv * cv
        if shape < 0.01:
            return G.ARRIVAL_POISSON, rate, 0.0
        return G.ARRIVAL_GAMMA, shape, scale
    if client.process == "weibull":
        k = weibull_shape(cv)
        return G.ARRIVAL_WEIBULL, k, (1.0 / rate) / math.gamma(1.0 + 1.0 / k)
    return G.ARRIVAL_POISSON, rate, 0.0


# ----------------------------------------------------------------------------- generation

def sweep_spec(workload: dict, seed: int, rate: float | None, num_requests: int | None = None,
               horizon: int | None = None) -> WorkloadSpec:
    """The spec of a sweep point `{spec: path, set: {dotted field: value}}`: the sweep's seed replaces the
    spec's, `rate` (when given) its aggregate_rate, and the run length is the sweep's: requests are
    generated up to the sweep's `horizon`, else for num_requests / rate seconds (about num_requests
    requests), whatever the spec's own `horizon` says."""
    from dataclasses import replace

    from blis_sweep.workloads.spec import load_workload_spec

    overrides = [(key, value) for key, value in workload.get("set", {}).items()]
    overrides.append(("seed", seed))
    if rate is not None:
        overrides.append(("aggregate_rate", rate))
    spec = load_workload_spec(workload["spec"], overrides=tuple(overrides))
    if horizon is not None:
        return replace(spec, horizon=horizon)
    if num_requests:
        return replace(spec, horizon=max(1, int(num_requests / spec.aggregate_rate * 1e6)))
    return spec


def prepare_spec(spec: WorkloadSpec, run_horizon: int) -> tuple[WorkloadSpec, int, list[float]]:
    """(spec with its ServeGen clients loaded, generation horizon, rates per µs); checks that generation
    ends and stays within bounds. Nothing is loaded when the horizon is <= 0 (no requests, as the reference)."""
    horizon = spec.generation_horizon(run_horizon)
    if horizon <= 0:
        return spec, horizon, []
    if spec.servegen is not None and not spec.clients:
        from blis_sweep.workloads.servegen import servegen_clients
        spec = servegen_clients(spec)
    rates = [spec.aggregate_rate * f / 1e6 for f in client_rates(spec.clients)]
    _check_size(spec, rates, horizon)
    return spec, horizon, rates


def generate_spec_workload(spec: WorkloadSpec, run_horizon: int) -> Workload:
    """The requests the reference's `run --workload-spec` simulates (those arriving by run_horizon)."""
    arrivals, in_len, out_len, tokens, labels = generate_spec_requests(spec, run_horizon)
    return build_workload_from_packed(arrivals, in_len, out_len, tokens, rate_per_s=spec.aggregate_rate,
                                      labels=labels)


def generate_spec_requests(spec: WorkloadSpec, run_horizon: int):
    """(arrival ticks, input lengths, output lengths, token ids packed input-then-output, RequestLabels)
    of the requests arriving by run_horizon, in request-id order."""
    spec, horizon, rates = prepare_spec(spec, run_horizon)
    if horizon <= 0:
        return _pack([], [], run_horizon)

    cooked, kn, wn, fn = go_tables()
    ke, we, fe = go_exp_tables()
    state = G.go_seed_nb(np.int64(workload_gen_seed(spec.seed)), cooked)
    prefixes: dict[str, np.ndarray] = {}
    for c in spec.clients:
        if c.prefix_group and c.prefix_group not in prefixes:
            ids = np.empty(PREFIX_LENGTH, dtype=np.int64)
            G.go_token_ids_nb(state, ids, MAX_TOKEN_ID)
            prefixes[c.prefix_group] = ids

    samplers = _Samplers()
    plans = []
    for c in spec.clients:
        cols = np.full(10, -1, dtype=np.int64)
        cols[G.CS_INPUT] = samplers.add(c.input)
        cols[G.CS_OUTPUT] = samplers.add(c.output)
        if c.multimodal is not None:
            for name, col in _MM_COLUMNS:
                if c.multimodal[name].type:
                    cols[col] = samplers.add(c.multimodal[name])
        if c.reason_ratio is not None and c.reason_ratio.type:
            cols[G.CS_REASON_RATIO] = samplers.add(c.reason_ratio)
        plans.append(cols)
    table = G.LengthSamplers(*samplers.arrays())

    parts = []
    budget = MAX_TOKENS
    for index, (c, rate, cols) in enumerate(zip(spec.clients, rates, plans)):
        if not rate > 0:
            continue  # the reference skips zero-rate clients before drawing their seed
        client_seed = G.go_int63_nb(state)
        if c.multi_turn is not None:
            arrivals, in_len, out_len, tokens = _multi_turn(c, client_seed, cols, table, budget)
        else:
            kind, p0, p1 = arrival_params(c, rate)
            windows = np.asarray(c.windows or (), dtype=np.int64).reshape(-1, 2)
            status, arrivals, in_len, out_len, tokens = G.spec_client_requests_nb(
                np.int64(client_seed), (np.int64(kind), float(p0), float(p1)), np.int64(horizon), windows,
                c.windows is not None, c.multimodal is not None, cols, table,
                (np.int64(MAX_TOKEN_ID), np.int64(4 * MAX_ARRIVAL_DRAWS), np.int64(budget)), cooked,
                G.Ziggurats(kn, wn, fn, ke, we, fe))
            if status < 0:
                _too_big(spec, index, status)
        budget -= tokens.shape[0]
        prefix = prefixes.get(c.prefix_group, np.empty(0, np.int64)) if c.multi_turn is None \
            else np.empty(0, np.int64)
        parts.append((index, arrivals, in_len, out_len, tokens, prefix))
    return _pack(spec.clients, parts, run_horizon)


def _check_size(spec: WorkloadSpec, rates: list[float], horizon: int) -> None:
    if horizon >= INT64_MAX:
        raise BlisError(f"{spec.source}: the spec has no `horizon` and --horizon is unbounded, so requests would be "
                        f"generated forever (the reference never finishes); give either")
    expected = sum(max(r, _MIN_RATE_PER_US) * horizon for r, c in zip(rates, spec.clients) if c.multi_turn is None)
    if expected > MAX_ARRIVAL_DRAWS:
        raise BlisError(f"{spec.source}: aggregate_rate {spec.aggregate_rate:g} req/s up to the generation horizon "
                        f"{horizon} µs means about {expected:.3g} arrivals (limit {MAX_ARRIVAL_DRAWS:,}); "
                        f"set a shorter `horizon` in the spec or --horizon")


def _too_big(spec: WorkloadSpec, index: int, status: int) -> None:
    what = {G.SPEC_TOO_MANY_DRAWS: f"more than {4 * MAX_ARRIVAL_DRAWS:,} arrival draws",
            G.SPEC_TOO_MANY_TOKENS: f"more than {MAX_TOKENS:,} token ids in all",
            G.SPEC_NEGATIVE_LENGTH: "a negative token count"}[status]
    raise BlisError(f"{spec.source}: clients[{index}] generates {what}; the workload is too large or malformed")


def _multi_turn(c: ClientSpec, client_seed: int, cols, table, budget):
    """One session from t = 0 (the reference at d25e1935): per round input and output lengths, input ids
    (accumulated context when context_growth is accumulate), output ids, the reason ratio draw; the next
    round arrives think_time_us + output length later. No prefix, lifecycle or horizon."""
    cooked, kn, wn, fn = go_tables()
    ke, we, fe = go_exp_tables()
    zig = G.Ziggurats(kn, wn, fn, ke, we, fe)
    state = G.go_seed_nb(np.int64(client_seed), cooked)
    mt = c.multi_turn
    arrivals, in_lens, out_lens, pieces = [], [], [], []
    if mt.max_rounds > 0:
        G.go_int63_nb(state)  # the session id
        now, context = 0, 0
        for rnd in range(mt.max_rounds):
            n_in = int(G.spec_length_nb(state, cols[G.CS_INPUT], table, zig))
            n_out = int(G.spec_length_nb(state, cols[G.CS_OUTPUT], table, zig))
            if mt.context_growth == "accumulate" and rnd > 0:
                n_in += context
            budget -= n_in + n_out
            if budget < 0:
                raise BlisError(f"a multi_turn client generates more than {MAX_TOKENS:,} token ids")
            ids = np.empty(n_in + n_out, dtype=np.int64)
            G.go_token_ids_nb(state, ids, MAX_TOKEN_ID)
            if cols[G.CS_REASON_RATIO] >= 0:
                G.spec_length_nb(state, cols[G.CS_REASON_RATIO], table, zig)
            arrivals.append(now)
            in_lens.append(n_in)
            out_lens.append(n_out)
            pieces.append(ids)
            context += n_in + n_out
            now += mt.think_time_us + n_out
    tokens = np.concatenate(pieces) if pieces else np.empty(0, np.int64)
    return (np.asarray(arrivals, dtype=np.int64), np.asarray(in_lens, dtype=np.int64),
            np.asarray(out_lens, dtype=np.int64), tokens)


def _gather(out: np.ndarray, src: np.ndarray, dst_start: np.ndarray, src_start: np.ndarray,
            length: np.ndarray) -> None:
    """out[dst_start[k]:+length[k]] = src[src_start[k]:+length[k]] for every k (segments are long:
    one slice copy each beats building per-token index arrays)."""
    for d, s, n in zip(dst_start.tolist(), src_start.tolist(), length.tolist()):
        if n:
            out[d:d + n] = src[s:s + n]


def _pack(clients, parts, run_horizon: int):
    """Merge the clients' requests (stable sort on arrival: ties keep client, then generation order),
    prepend prefixes, keep those arriving by run_horizon (later arrivals are never simulated)."""
    slo_names = SLO_CLASSES
    tenant_names = tuple(dict.fromkeys(c.tenant_id for c in clients)) or ("",)
    if not parts:
        z = np.empty(0, np.int64)
        labels = RequestLabels(np.empty(0, np.int32), slo_names, np.empty(0, np.int32), tenant_names)
        return z, z, z, z, labels
    arrivals = np.concatenate([p[1] for p in parts])
    in_body = np.concatenate([p[2] for p in parts])
    out_len = np.concatenate([p[3] for p in parts])
    prefix_len = np.concatenate([np.full(p[1].shape[0], p[5].shape[0], dtype=np.int64) for p in parts])
    client_of = np.concatenate([np.full(p[1].shape[0], p[0], dtype=np.int64) for p in parts])
    # source offsets of each request's tokens (client arrays concatenated) and of its prefix
    all_tokens = np.concatenate([p[4] for p in parts])
    src_start = np.zeros(arrivals.shape[0], dtype=np.int64)
    np.cumsum((in_body + out_len)[:-1], out=src_start[1:])
    prefixes = np.concatenate([p[5] for p in parts])
    prefix_base = np.cumsum([0] + [p[5].shape[0] for p in parts])[:-1]
    prefix_start = np.concatenate([np.full(p[1].shape[0], b, dtype=np.int64) for p, b in zip(parts, prefix_base)])

    order = np.argsort(arrivals, kind="stable")
    order = order[arrivals[order] <= run_horizon]
    arrivals, in_body, out_len = arrivals[order], in_body[order], out_len[order]
    prefix_len, client_of = prefix_len[order], client_of[order]
    src_start, prefix_start = src_start[order], prefix_start[order]
    in_len = prefix_len + in_body
    dst = np.zeros(order.shape[0] + 1, dtype=np.int64)
    np.cumsum(in_len + out_len, out=dst[1:])
    tokens = np.empty(int(dst[-1]), dtype=np.int64)
    _gather(tokens, prefixes, dst[:-1], prefix_start, prefix_len)
    _gather(tokens, all_tokens, dst[:-1] + prefix_len, src_start, in_body + out_len)

    slo_code = np.array([slo_names.index(c.slo_class) for c in clients], dtype=np.int32)
    tenant_code = np.array([tenant_names.index(c.tenant_id) for c in clients], dtype=np.int32)
    labels = RequestLabels(slo_code[client_of], slo_names, tenant_code[client_of], tenant_names)
    return arrivals, in_len, out_len, tokens, labels
