"""Workloads: a trace file, or requests generated from clamped Gaussian lengths.

Generated requests follow the reference's distribution workload (lengths,
shared prefix, constant-interval arrivals and their stopping rule) but draw
random numbers from numpy's PCG64, so token ids differ from the reference's.
Draw order is fixed so that the same seed gives the same requests whatever the
rate, horizon or arrival process: prefix tokens, all prompt lengths, all output
lengths, then the tokens of the requests that arrive; Poisson gaps come from a
separate (jumped) stream.
"""
from __future__ import annotations

import math
import operator
from itertools import accumulate

import numpy as np

from blis_sweep.data.defaults import workload_preset
from blis_sweep.errors import BlisError
from blis_sweep.go.rand import reference_requests
from blis_sweep.sim_config import INT64_MAX
from blis_sweep.workloads.traces import read_trace  # noqa: F401  (public here: workload sources live together)
from blis_sweep.workloads.arrays import Workload, build_workload_from_packed

ARRIVALS = ("constant", "poisson")


def constant_arrival_ticks(rate_per_s: float, num_requests: int, horizon: int) -> np.ndarray:
    """Request k arrives at k * int(1 / (rate/1e6)) and exists only if that is < horizon.

    This is the reference's loop (`while t < horizon and k < n: emit; t += interval;
    if t > horizon: break`) in closed form.
    """
    interval_f = 1.0 / (rate_per_s / 1e6)
    interval = INT64_MAX if interval_f >= 2.0**63 else int(interval_f)
    if horizon <= 0:
        count = 0
    elif interval == 0:
        count = num_requests
    else:
        count = min(num_requests, -(-horizon // interval))
    return np.arange(count, dtype=np.int64) * np.int64(interval)


def poisson_arrival_ticks(rate_per_s: float, num_requests: int, horizon: int,
                          rng: np.random.Generator) -> np.ndarray:
    """First request at 0, then exponential gaps (mean 1e6/rate µs, truncated); same stopping rule."""
    gaps = np.minimum(np.trunc(rng.exponential(1e6 / rate_per_s, size=max(num_requests - 1, 0))), 2.0**62)
    if float(np.sum(gaps)) < 2.0**62:
        times = np.zeros(num_requests, dtype=np.int64)
        np.cumsum(gaps.astype(np.int64), out=times[1:])
    else:  # exact big-integer sums; saturate so nothing wraps around
        times = np.array([min(t, INT64_MAX) for t in accumulate((int(g) for g in gaps), initial=0)],
                         dtype=np.int64)
    return times[: int(np.searchsorted(times, horizon, side="left"))]


def _as_int(name: str, value) -> int:
    if isinstance(value, bool):
        raise BlisError(f"{name} must be an integer, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise BlisError(f"{name} must be an integer, got {value!r}") from None


def _check_common(rate_per_s, num_requests, seed, horizon, arrival, lengths: dict) -> None:
    if isinstance(rate_per_s, bool) or not isinstance(rate_per_s, (int, float)) \
            or not math.isfinite(rate_per_s) or rate_per_s <= 0:
        raise BlisError(f"rate must be a finite number > 0 requests/s, got {rate_per_s!r}")
    if _as_int("num requests", num_requests) < 1:
        raise BlisError(f"num requests must be >= 1, got {num_requests}")
    _as_int("seed", seed)
    _as_int("horizon", horizon)
    if arrival not in ARRIVALS:
        raise BlisError(f"arrival must be one of {', '.join(ARRIVALS)}, got {arrival!r}")
    for name, value in lengths.items():
        if _as_int(name, value) < 0:
            raise BlisError(f"{name} must be >= 0, got {value}")


def _check_reference_ranges(kind: str, mean: int, std: int, lo: int, hi: int) -> None:
    # The reference requires the mean *and the stdev* to lie in [min, max] (cmd/root.go).
    if not (lo <= mean <= hi and lo <= std <= hi):
        raise BlisError(
            f"{kind}-tokens ({mean}) and {kind}-tokens-stdev ({std}) should be in range "
            f"[{kind}-tokens-min, {kind}-tokens-max] = [{lo}, {hi}]"
        )


def distribution_workload(rate_per_s: float, num_requests: int, prefix_tokens: int,
                          prompt_mean: int, prompt_std: int, prompt_min: int, prompt_max: int,
                          output_mean: int, output_std: int, output_min: int, output_max: int,
                          seed: int, horizon: int = INT64_MAX, arrival: str = "constant") -> Workload:
    lengths = {
        "prefix-tokens": prefix_tokens,
        "prompt-tokens": prompt_mean, "prompt-tokens-stdev": prompt_std,
        "prompt-tokens-min": prompt_min, "prompt-tokens-max": prompt_max,
        "output-tokens": output_mean, "output-tokens-stdev": output_std,
        "output-tokens-min": output_min, "output-tokens-max": output_max,
    }
    _check_common(rate_per_s, num_requests, seed, horizon, arrival, lengths)
    _check_reference_ranges("prompt", prompt_mean, prompt_std, prompt_min, prompt_max)
    _check_reference_ranges("output", output_mean, output_std, output_min, output_max)
    return _generate(rate_per_s, num_requests, prefix_tokens, (prompt_mean, prompt_std, prompt_min, prompt_max),
                     (output_mean, output_std, output_min, output_max), seed, horizon, arrival)


def preset_workload(name: str, rate_per_s: float, num_requests: int, seed: int, horizon: int = INT64_MAX,
                    arrival: str = "constant", defaults_path=None) -> Workload:
    """A defaults.yaml preset (chatbot, summarization, contentgen, multidoc).

    The reference does not apply the distribution range checks to presets, so neither do we.
    """
    p = workload_preset(name, defaults_path)
    _check_common(rate_per_s, num_requests, seed, horizon, arrival, {f"{name}.{k}": v for k, v in p.items()})
    return _generate(rate_per_s, num_requests, p["prefix_tokens"],
                     (p["prompt_tokens"], p["prompt_tokens_stdev"], p["prompt_tokens_min"], p["prompt_tokens_max"]),
                     (p["output_tokens"], p["output_tokens_stdev"], p["output_tokens_min"], p["output_tokens_max"]),
                     seed, horizon, arrival)


def _generate(rate_per_s, num_requests, prefix_tokens, prompt, output, seed, horizon, arrival) -> Workload:
    """Lengths and tokens exactly as the reference draws them (Go math/rand with this seed), so
    `run` replays the reference's distribution workloads; arrivals by the chosen rule."""
    if arrival == "constant":
        arrivals = constant_arrival_ticks(rate_per_s, num_requests, horizon)
    else:
        seed64 = int(seed) % 2**64  # PCG64 takes non-negative seeds; the reference's are int64
        arrivals = poisson_arrival_ticks(rate_per_s, num_requests, horizon,
                                         np.random.Generator(np.random.PCG64(seed64).jumped()))
    in_len, output_len, tokens = reference_requests(int(seed), int(arrivals.shape[0]), int(prefix_tokens),
                                                    prompt, output)
    return build_workload_from_packed(arrivals, in_len, output_len, tokens, rate_per_s=float(rate_per_s))
