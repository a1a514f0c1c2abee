"""The reference's --fitness-weights: parsing the "key:value,..." string and scoring.

Scores normalise each metric to [0, 1]: throughputs as v / (v + reference) and
latencies (in ticks) as 1 / (1 + v / 1000). Unknown keys are ignored with a warning.
"""
from __future__ import annotations

from blis_sweep.errors import BlisError
from blis_sweep.go.format import go_quote
from blis_sweep.go.strconv import parse_float

_REFERENCE_RPS = 100.0
_REFERENCE_TPS = 10000.0
_REFERENCE_TICKS = 1000.0

# metric key -> (raw-metrics field, higher_is_better)
FITNESS_METRICS = {
    "throughput": ("requests_per_sec", True),
    "tokens_per_sec": ("tokens_per_sec", True),
    "p99_ttft": ("ttft_p99", False),
    "p50_ttft": ("ttft_p50", False),
    "mean_ttft": ("ttft_mean", False),
    "p99_e2e": ("e2e_p99", False),
    "p50_e2e": ("e2e_p50", False),
    "mean_e2e": ("e2e_mean", False),
}

# Go's strings.TrimSpace set (unicode.IsSpace); Python's str.strip() also strips \x1c-\x1f.
_GO_SPACE = ("\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
             "\u2028\u2029\u202f\u205f\u3000")


def _trim(s: str) -> str:
    return s.strip(_GO_SPACE)


def parse_fitness_weights(text: str) -> dict[str, float]:
    """"key:value,key:value" -> weights (a repeated key keeps its last value).
    Raises BlisError worded like the reference ("Invalid fitness weights: ...")."""
    weights: dict[str, float] = {}
    if text == "":
        return weights
    for raw_pair in text.split(","):
        pair = _trim(raw_pair)
        key, sep, value = pair.partition(":")
        if not sep:
            raise BlisError(f"Invalid fitness weights: invalid fitness weight {go_quote(pair)}: expected key:value")
        key = _trim(key)
        try:
            weights[key] = parse_float(_trim(value))
        except ValueError as exc:
            raise BlisError(f"Invalid fitness weights: invalid fitness weight value for {go_quote(key)}: "
                            f"{exc}") from None
    return weights


def unknown_fitness_keys(weights: dict[str, float]) -> list[str]:
    return [k for k in weights if k not in FITNESS_METRICS]


def unknown_key_warning(key: str) -> str:
    return f"ComputeFitness: unknown metric key {go_quote(key)}, ignoring"


def fitness_score(weights: dict[str, float], raw: dict[str, float]) -> tuple[float, dict[str, float]]:
    """(score, per-key normalised components) for raw cluster metrics.

    `raw` holds requests_per_sec and tokens_per_sec (0 when nothing completed or the
    run ended at time 0) and ttft_/e2e_ mean, p50, p99 in ticks, with the cluster
    percentile convention (linear interpolation, raw ticks, 0 when empty).
    """
    score, components = 0.0, {}
    for key, weight in weights.items():
        if key not in FITNESS_METRICS:
            continue
        field, higher_is_better = FITNESS_METRICS[key]
        value = float(raw[field])
        if higher_is_better:
            ref = _REFERENCE_RPS if key == "throughput" else _REFERENCE_TPS
            normalised = value / (value + ref)
        else:
            normalised = 1.0 / (1.0 + value / _REFERENCE_TICKS)
        components[key] = normalised
        score += normalised * weight
    return score, components
