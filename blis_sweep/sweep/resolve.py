"""Turn grid points into SimConfigs and Workloads (cached), and into result-table rows.

Deployment resolution (latency model, coefficients, KV capacity) depends on a dozen
keys only, so it is cached by them and checked up front over the distinct
combinations the grid contains (`Resolver.validate`), before any simulation.

Workloads: lengths, tokens and prefix hashes of a generated workload depend on its
source parameters, num_requests and seed, not on the rate (workload.py draws them in a
fixed order), so one base workload is generated per (source, num_requests, seed) and
each rate / arrival process / horizon only swaps in new arrival times (truncating the
arrays when the horizon cuts requests off). Bases live in a byte-bounded LRU cache.
"""
from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow as pa

from blis_sweep.errors import BlisError
from blis_sweep.sweep.spec import DIST_FIELDS, GridSpec, freeze
from blis_sweep.sim_config import (
    ADMISSION_NAMES,
    INT64_MAX,
    PRIORITY_NAMES,
    ROUTING_NAMES,
    SCHEDULER_NAMES,
    RooflineParams,
    SimConfig,
)
from blis_sweep.workloads.arrays import Workload, request_id_ranks

DEPLOYMENT_KEYS = ("model", "hardware", "tp", "latency_model", "vllm_version", "alpha_coeffs", "beta_coeffs",
                   "model_config", "hardware_config", "total_kv_blocks", "gpu_memory_utilization", "block_size")
WORKLOAD_KEYS = ("workload", "rate")
ROUTING_KEYS = ("routing_policy", "routing_cache_weight", "routing_load_weight")


@dataclass(frozen=True)
class Deployment:
    """Resolved latency model and KV capacity of one (model, GPU, TP, ...) combination."""

    alpha: tuple[float, float, float]
    beta: tuple[float, float, float]
    roofline: RooflineParams | None
    total_kv_blocks: int  # 0 when infeasible
    kv_blocks_source: str  # given | memory | defaults
    vllm_version: str | None
    infeasible: str | None = None  # why the configuration cannot run (weights do not fit)


def _err(spec: GridSpec, lines: dict, key: str, message: str) -> BlisError:
    line = lines.get(key)
    where = f"{spec.source}:{line}" if line else spec.source
    return BlisError(f"{where}: {key}: {message}")


class Resolver:
    """Caches everything derived from point values for one grid."""

    def __init__(self, spec: GridSpec):
        self.spec = spec
        self._deployments: dict = {}
        self._model_cfgs: dict = {}
        self._gpus: dict = {}
        self._traces: dict = {}

    # ---------------------------------------------------------------- up-front checks

    def validate(self) -> None:
        """Raise the first BlisError any point would meet; fills the deployment cache."""
        spec = self.spec
        for values, lines in spec.distinct(DEPLOYMENT_KEYS):
            self.deployment(values, lines)
        for values, lines in spec.distinct(WORKLOAD_KEYS):
            self._check_workload(values, lines)
        for values, lines in spec.distinct(WORKLOAD_KEYS + ("horizon", "num_requests")):
            if "spec" in values["workload"]:
                self._check_spec(values, lines)
            elif "trace" in values["workload"] and values["horizon"] is not None:
                self._check_trace_order(values, lines)
        for values, lines in spec.distinct(ROUTING_KEYS):
            routing_weights(values, lambda key, msg: _err(spec, lines, key, msg))

    def _check_trace_order(self, values: dict, lines: dict) -> None:
        """With a horizon, `run` (like the reference) stops reading a trace at its first row past
        the horizon; a later row within it would be simulated here but not there, so refuse it."""
        horizon = values["horizon"]
        arrivals = self.trace_workload(values["workload"]["trace"]).arrival_ticks
        past = np.flatnonzero(arrivals > horizon)
        if past.size and np.any(arrivals[past[0]:] <= horizon):
            k = int(past[0])
            j = k + int(np.flatnonzero(arrivals[k:] <= horizon)[0])
            raise _err(self.spec, lines, "horizon",
                       f"trace {values['workload']['trace']}: row {j} arrives within the horizon ({horizon} us) "
                       f"after row {k}, which arrives past it; with a horizon the rows must be sorted by arrived_at "
                       f"(reading stops at the first row past the horizon, as the reference does)")

    def _check_workload(self, values: dict, lines: dict) -> None:
        wl = values["workload"]
        kind = next(iter(wl))
        if kind == "trace":
            path = Path(wl["trace"])
            if not path.is_file():
                raise _err(self.spec, lines, "workload", f"trace file {path} does not exist")
            return
        if kind == "spec":
            return  # checked with the horizon too, in validate()
        if values["rate"] is None:
            raise _err(self.spec, lines, "rate", f"is required for {kind} workloads (offered requests/s)")
        if kind == "distribution":
            d = wl["distribution"]
            for what in ("prompt", "output"):
                mean, std = d[f"{what}_tokens"], d[f"{what}_tokens_stdev"]
                lo, hi = d[f"{what}_tokens_min"], d[f"{what}_tokens_max"]
                if not (lo <= mean <= hi and lo <= std <= hi):
                    raise _err(self.spec, lines, "workload",
                               f"{what}_tokens ({mean}) and {what}_tokens_stdev ({std}) must lie in "
                               f"[{what}_tokens_min, {what}_tokens_max] = [{lo}, {hi}] (as in the reference)")

    def _check_spec(self, values: dict, lines: dict) -> None:
        """Load the spec with this point's settings (every seed: the seed is part of the spec) and check
        that its generation ends within bounds."""
        from blis_sweep.workloads.spec_gen import prepare_spec, sweep_spec

        horizon = INT64_MAX if values["horizon"] is None else values["horizon"]
        for seed in self.spec.seeds:
            try:
                prepare_spec(sweep_spec(values["workload"], seed, values["rate"], values["num_requests"],
                                        values["horizon"]), horizon)
            except BlisError as exc:
                raise _err(self.spec, lines, "workload", str(exc)) from None

    # ---------------------------------------------------------------- deployments

    def deployment(self, values: dict, lines: dict) -> Deployment:
        key = tuple(freeze(values[k]) for k in DEPLOYMENT_KEYS)
        dep = self._deployments.get(key)
        if dep is None:
            dep = self._deployments[key] = self._resolve_deployment(values, lines)
        return dep

    def _model_cfg(self, values: dict, lines: dict):
        from blis_sweep.data.model_config import load_model_config
        from blis_sweep.data.paths import model_config_dir_for

        where = values["model_config"] or values["model"]
        if where not in self._model_cfgs:
            try:
                path = values["model_config"] or model_config_dir_for(values["model"])
                self._model_cfgs[where] = load_model_config(path)
            except BlisError as exc:
                raise _err(self.spec, lines, "model_config" if values["model_config"] else "model", str(exc)) from None
        return self._model_cfgs[where]

    def _gpu(self, values: dict, lines: dict):
        from blis_sweep.data.hardware import gpu_calib

        key = (values["hardware"], values["hardware_config"])
        if key not in self._gpus:
            try:
                self._gpus[key] = gpu_calib(values["hardware"], values["hardware_config"])
            except BlisError as exc:
                raise _err(self.spec, lines, "hardware", str(exc)) from None
        return self._gpus[key]

    def _memory_kv(self, values: dict, lines: dict) -> tuple[int, str | None]:
        from blis_sweep.data.model_config import auto_kv_blocks, weight_bytes

        mc = self._model_cfg(values, lines)
        gpu = self._gpu(values, lines)
        if gpu.memory_gib is None:
            raise _err(self.spec, lines, "total_kv_blocks",
                       f"auto needs memory_gib for GPU {gpu.name} in the hardware config; give an integer")
        tp, util = values["tp"], values["gpu_memory_utilization"]
        blocks = auto_kv_blocks(mc, gpu.memory_gib, tp, values["block_size"], util)
        if blocks > 0:
            return blocks, None
        return 0, (f"weights need {weight_bytes(mc) / 2**30:.1f} GiB but {tp} x {gpu.memory_gib:g} GiB x {util:g} "
                   f"leaves {util * gpu.memory_gib * tp:.1f} GiB, no room for one KV block")

    def _resolve_deployment(self, values: dict, lines: dict) -> Deployment:
        spec = self.spec
        kv = values["total_kv_blocks"]
        if values["latency_model"] == "roofline":
            from blis_sweep.data.model_config import roofline_params

            for key in ("alpha_coeffs", "beta_coeffs", "vllm_version"):
                if values[key] is not None:
                    raise _err(spec, lines, key, "applies to latency_model: blackbox only")
            rf = roofline_params(self._model_cfg(values, lines), self._gpu(values, lines), values["tp"])
            if kv == "auto":
                blocks, why = self._memory_kv(values, lines)
                return Deployment((0.0,) * 3, (0.0,) * 3, rf, blocks, "memory", None, why)
            return Deployment((0.0,) * 3, (0.0,) * 3, rf, kv, "given", None)

        # blackbox (model_config / hardware_config matter only for total_kv_blocks: auto without a trained entry)
        entry = self._defaults_entry(values, lines,
                                     required=values["alpha_coeffs"] is None and values["beta_coeffs"] is None)
        if values["alpha_coeffs"] is not None or values["beta_coeffs"] is not None:
            alpha = tuple((values["alpha_coeffs"] or (0.0, 0.0, 0.0))[:3])
            beta = tuple((values["beta_coeffs"] or (0.0, 0.0, 0.0))[:3])
        else:
            alpha, beta = tuple(entry[1][:3]), tuple(entry[2][:3])
        version = entry[0] if entry else values["vllm_version"]
        if kv != "auto":
            return Deployment(alpha, beta, None, kv, "given", version)
        if entry is not None:
            return Deployment(alpha, beta, None, entry[3], "defaults", version)
        try:
            blocks, why = self._memory_kv(values, lines)
        except BlisError as exc:
            raise _err(spec, lines, "total_kv_blocks",
                       f"auto: no defaults.yaml entry for this model/GPU/TP and no memory sizing ({exc}); "
                       f"give an integer") from None
        return Deployment(alpha, beta, None, blocks, "memory", version, why)

    def _defaults_entry(self, values: dict, lines: dict, required: bool):
        """(vllm_version, alpha, beta, total_kv_blocks) of defaults.yaml for (model, GPU, TP), or None."""
        from blis_sweep.data.defaults import coefficients, default_specs, load_defaults

        model, gpu, tp, version = values["model"].lower(), values["hardware"], values["tp"], values["vllm_version"]
        data = load_defaults()
        entries = [e for e in data["models"] if str(e.get("id", "")).lower() == model]
        matches = [e for e in entries if e.get("GPU") == gpu and e.get("tensor_parallelism") == tp
                   and (version is None or e.get("vllm_version") == version)]
        if not matches:
            if not required:
                return None
            if not entries:
                known = sorted({str(e.get("id")) for e in data["models"]})
                raise _err(self.spec, lines, "model",
                           f"no trained coefficients for {model!r} in defaults.yaml (models with coefficients: "
                           f"{', '.join(known)}); use latency_model: roofline or give alpha_coeffs/beta_coeffs")
            combos = sorted({(str(e.get("GPU")), int(e.get("tensor_parallelism") or 0), str(e.get("vllm_version")))
                             for e in entries})
            listed = ", ".join(f"{g} tp={t}" + (f" {v}" if version is not None else "") for g, t, v in combos)
            want = f"hardware={gpu}, tp={tp}" + (f", vllm_version={version}" if version is not None else "")
            raise _err(self.spec, lines, "hardware" if not any(e.get("GPU") == gpu for e in entries) else "tp",
                       f"no trained coefficients for {model} with {want} (available: {listed}); "
                       f"use latency_model: roofline or give alpha_coeffs/beta_coeffs")
        versions = [e.get("vllm_version") for e in matches]
        if version is None:
            preferred = default_specs(model)[2]
            version = preferred if preferred in versions else versions[0]
        found = coefficients(model, tp, gpu, version)
        return (version, *found)

    # ---------------------------------------------------------------- configs

    def sim_config(self, values: dict, dep: Deployment, seed: int) -> SimConfig:
        cache_w, load_w = values["routing_cache_weight"], values["routing_load_weight"]
        if values["routing_policy"] == "weighted":
            cache_w, load_w = cache_w / (cache_w + load_w), load_w / (cache_w + load_w)
        return SimConfig(
            total_kv_blocks=dep.total_kv_blocks,
            block_size=values["block_size"],
            max_running_reqs=values["max_num_running_reqs"],
            max_scheduled_tokens=values["max_num_scheduled_tokens"],
            long_prefill_token_threshold=values["long_prefill_token_threshold"],
            horizon=INT64_MAX if values["horizon"] is None else values["horizon"],
            alpha_coeffs=dep.alpha,
            beta_coeffs=dep.beta,
            roofline=dep.roofline,
            scheduler=SCHEDULER_NAMES[values["scheduler"]],
            priority_policy=PRIORITY_NAMES[values["priority_policy"]],
            num_instances=values["num_instances"],
            admission_policy=ADMISSION_NAMES[values["admission_policy"]],
            admission_latency=values["admission_latency"],
            routing_latency=values["routing_latency"],
            token_bucket_capacity=values["token_bucket_capacity"],
            token_bucket_refill_rate=values["token_bucket_refill_rate"],
            routing_policy=ROUTING_NAMES[values["routing_policy"]],
            routing_cache_weight=cache_w,
            routing_load_weight=load_w,
            kv_cpu_blocks=values["kv_cpu_blocks"],
            kv_offload_threshold=values["kv_offload_threshold"],
            kv_transfer_bandwidth=values["kv_transfer_bandwidth"],
            kv_transfer_base_latency=values["kv_transfer_base_latency"],
            seed=seed,
            labels={"model": values["model"], "gpu": values["hardware"], "tp": values["tp"]},
        )

    def trace_workload(self, path: str) -> Workload:
        if path not in self._traces:
            from blis_sweep.workloads.requests import read_trace

            self._traces[path] = read_trace(path)
        return self._traces[path]


def routing_weights(values: dict, error) -> None:
    if values["routing_policy"] != "weighted":
        return
    total = values["routing_cache_weight"] + values["routing_load_weight"]
    if total <= 0:
        raise error("routing_cache_weight", "weighted routing needs routing_cache_weight + routing_load_weight > 0")


# ---------------------------------------------------------------- workloads

def workload_key(values: dict, seed: int) -> tuple:
    """Identity of the workload a point simulates (rate included)."""
    wl = values["workload"]
    if "trace" in wl:
        return ("trace", wl["trace"])
    if "spec" in wl:
        return ("spec", freeze(wl), seed, values["rate"], values["num_requests"], values["horizon"])
    return ("gen", freeze(wl), values["num_requests"], seed, values["rate"], values["arrival"],
            INT64_MAX if values["horizon"] is None else values["horizon"])


def _thaw_workload(frozen) -> dict:
    """{spec: path, set: {...}} back from its freeze() form."""
    out = dict(frozen)
    if "set" in out:
        out["set"] = dict(out["set"])
    return out


def workload_bytes(w: Workload) -> int:
    return int(w.prefix_hash.nbytes + w.arrival_ticks.nbytes * 5 + w.seq_offset.nbytes)


def preset_lengths(name: str) -> dict:
    from blis_sweep.data.defaults import workload_preset

    return workload_preset(name)


class WorkloadCache:
    """Base workloads per (source, num_requests, seed) in a byte-bounded LRU; rates derive from them."""

    def __init__(self, resolver: Resolver, budget_bytes: int = 512 << 20):
        self.resolver = resolver
        self.budget = budget_bytes
        self._bases: OrderedDict = OrderedDict()  # base key -> [Workload, bytes, {derived key: Workload}]
        self._bytes = 0
        self.generated = 0

    def get(self, key: tuple) -> Workload:
        if key[0] == "trace":
            return self.resolver.trace_workload(key[1])
        if key[0] == "spec":
            return self._spec_workload(key)
        _, source, num_requests, seed, rate, arrival, horizon = key
        base_key = (source, num_requests, seed)
        entry = self._bases.get(base_key)
        if entry is None:
            entry = self._insert(base_key, self._generate(dict(source), num_requests, seed))
        else:
            self._bases.move_to_end(base_key)
        derived = entry[2].get((rate, arrival, horizon))
        if derived is None:
            derived = entry[2][(rate, arrival, horizon)] = with_arrivals(entry[0], rate, arrival, horizon, seed)
            entry[1] += derived.arrival_ticks.nbytes  # new arrays; the rest are views of the base
            self._bytes += derived.arrival_ticks.nbytes
        return derived

    def _spec_workload(self, key: tuple) -> Workload:
        """A workload spec is generated whole per (spec and its settings, seed, rate, horizon): every draw
        depends on the rate, so nothing is shared across rates."""
        from blis_sweep.workloads.spec_gen import generate_spec_workload, sweep_spec

        entry = self._bases.get(key)
        if entry is None:
            _, source, seed, rate, num_requests, horizon = key
            sim_horizon = INT64_MAX if horizon is None else horizon
            entry = self._insert(key, generate_spec_workload(
                sweep_spec(_thaw_workload(source), seed, rate, num_requests, horizon), sim_horizon))
        else:
            self._bases.move_to_end(key)
        return entry[0]

    def _insert(self, key: tuple, workload: Workload) -> list:
        """Cache a generated workload (evicting the least recently used beyond the byte budget)."""
        entry = self._bases[key] = [workload, workload_bytes(workload), {}]
        self._bytes += entry[1]
        self.generated += 1
        while self._bytes > self.budget and len(self._bases) > 1:
            _, old = self._bases.popitem(last=False)
            self._bytes -= old[1]
        return entry

    @staticmethod
    def _generate(source: dict, num_requests: int, seed: int) -> Workload:
        from blis_sweep.workloads.requests import distribution_workload, preset_workload

        if "preset" in source:
            return preset_workload(source["preset"], 1.0, num_requests, seed)
        d = dict(source["distribution"])
        return distribution_workload(1.0, num_requests, d["prefix_tokens"], d["prompt_tokens"],
                                     d["prompt_tokens_stdev"], d["prompt_tokens_min"], d["prompt_tokens_max"],
                                     d["output_tokens"], d["output_tokens_stdev"], d["output_tokens_min"],
                                     d["output_tokens_max"], seed)


_RANK_CACHE: dict[int, np.ndarray] = {}


def with_arrivals(base: Workload, rate: float, arrival: str, horizon: int, seed: int) -> Workload:
    """`base` (generated for all its requests) with the arrivals of another rate / process / horizon.

    Matches workload.py: constant arrivals at k * int(1e6 / rate); Poisson gaps from the
    jumped PCG64 stream of the seed; only requests arriving before the horizon exist.
    """
    from blis_sweep.workloads.requests import constant_arrival_ticks, poisson_arrival_ticks

    n = base.num_requests
    if arrival == "constant":
        ticks = constant_arrival_ticks(rate, n, horizon)
    else:
        rng = np.random.Generator(np.random.PCG64(int(seed) % 2**64).jumped())
        ticks = poisson_arrival_ticks(rate, n, horizon, rng)
    k = ticks.shape[0]
    if k == n:
        return replace(base, arrival_ticks=ticks, rate_per_s=float(rate))
    if k not in _RANK_CACHE:
        if len(_RANK_CACHE) > 64:
            _RANK_CACHE.clear()
        _RANK_CACHE[k] = request_id_ranks(k)
    return Workload(
        arrival_ticks=ticks,
        input_len=base.input_len[:k],
        output_len=base.output_len[:k],
        seq_offset=base.seq_offset[:k + 1],
        prefix_hash=base.prefix_hash[:int(base.seq_offset[k])],
        id_rank=_RANK_CACHE[k],
        rate_per_s=float(rate),
    )


# ---------------------------------------------------------------- result rows

_LIST = pa.list_(pa.float64())
# (column, arrow type); parameters first, in this order, in every configs table
PARAM_SCHEMA: list[tuple[str, pa.DataType]] = [
    ("config_id", pa.int64()), ("point_id", pa.int64()), ("replicate", pa.int32()), ("seed", pa.int64()),
    ("model", pa.string()), ("hardware", pa.string()), ("tp", pa.int64()), ("latency_model", pa.string()),
    ("vllm_version", pa.string()), ("alpha_coeffs", _LIST), ("beta_coeffs", _LIST),
    ("total_kv_blocks", pa.int64()), ("kv_blocks_source", pa.string()), ("gpu_memory_utilization", pa.float64()),
    ("block_size", pa.int64()), ("max_num_running_reqs", pa.int64()), ("max_num_scheduled_tokens", pa.int64()),
    ("long_prefill_token_threshold", pa.int64()), ("scheduler", pa.string()), ("priority_policy", pa.string()),
    ("horizon", pa.int64()), ("workload", pa.string()), ("trace", pa.string()),
    *[(k, pa.int64()) for k in DIST_FIELDS],
    ("rate", pa.float64()), ("arrival", pa.string()), ("num_requests", pa.int64()),
    ("num_instances", pa.int64()), ("routing_policy", pa.string()), ("admission_policy", pa.string()),
    ("admission_latency", pa.int64()), ("routing_latency", pa.int64()),
    ("token_bucket_capacity", pa.float64()), ("token_bucket_refill_rate", pa.float64()),
    ("routing_cache_weight", pa.float64()), ("routing_load_weight", pa.float64()),
    ("kv_cpu_blocks", pa.int64()), ("kv_offload_threshold", pa.float64()), ("kv_transfer_bandwidth", pa.float64()),
    ("kv_transfer_base_latency", pa.int64()), ("model_config", pa.string()), ("hardware_config", pa.string()),
    ("infeasible", pa.bool_()), ("infeasible_reason", pa.string()),
]
PARAM_SCHEMA[-2:-2] = [("workload_spec", pa.string()), ("workload_spec_set", pa.string())]  # spec workloads
PARAM_COLUMNS = [name for name, _ in PARAM_SCHEMA]
# columns derived from others (constant wherever the inputs are): not grouping keys
DERIVED_COLUMNS = frozenset({"config_id", "point_id", "replicate", "seed", "vllm_version", "alpha_coeffs",
                             "beta_coeffs", "total_kv_blocks", "kv_blocks_source", "infeasible",
                             "infeasible_reason"})
_PASSTHROUGH = ("model", "hardware", "tp", "latency_model", "gpu_memory_utilization", "block_size",
                "max_num_running_reqs", "max_num_scheduled_tokens", "long_prefill_token_threshold", "scheduler",
                "priority_policy", "horizon", "num_instances", "routing_policy", "admission_policy",
                "admission_latency", "routing_latency", "token_bucket_capacity", "token_bucket_refill_rate",
                "routing_cache_weight", "routing_load_weight", "kv_cpu_blocks", "kv_offload_threshold",
                "kv_transfer_bandwidth", "kv_transfer_base_latency", "model_config", "hardware_config")


def param_row(values: dict, dep: Deployment, config_id: int, point_id: int, replicate: int, seed: int,
              workload: Workload | None) -> dict:
    wl = values["workload"]
    kind = next(iter(wl))
    row = {k: values[k] for k in _PASSTHROUGH}
    row.update(config_id=config_id, point_id=point_id, replicate=replicate, seed=seed,
               vllm_version=dep.vllm_version,
               alpha_coeffs=list(dep.alpha) if dep.roofline is None else None,
               beta_coeffs=list(dep.beta) if dep.roofline is None else None,
               total_kv_blocks=dep.total_kv_blocks if dep.infeasible is None else None,
               kv_blocks_source=dep.kv_blocks_source,
               infeasible=dep.infeasible is not None, infeasible_reason=dep.infeasible)
    row.update(workload_spec=None, workload_spec_set=None)
    if kind == "trace":
        row.update(workload="trace", trace=wl["trace"], rate=None, arrival=None,
                   num_requests=workload.num_requests if workload is not None else None)
        row.update({k: None for k in DIST_FIELDS})
    elif kind == "spec":  # rate: the aggregate rate simulated (the spec's own unless `rate` replaces it)
        row.update(workload="spec", trace=None, arrival=None,
                   rate=workload.rate_per_s if workload is not None else values["rate"],
                   num_requests=workload.num_requests if workload is not None else None,
                   workload_spec=wl["spec"], workload_spec_set=json.dumps(wl.get("set", {}), sort_keys=True))
        row.update({k: None for k in DIST_FIELDS})
    else:
        lengths = preset_lengths(wl["preset"]) if kind == "preset" else wl["distribution"]
        row.update(workload=wl["preset"] if kind == "preset" else "distribution", trace=None,
                   rate=values["rate"], arrival=values["arrival"], num_requests=values["num_requests"])
        row.update({k: lengths[k] for k in DIST_FIELDS})
    return row


def rows_to_param_arrays(rows: list[dict]) -> list[pa.Array]:
    return [pa.array([r[name] for r in rows], type=typ) for name, typ in PARAM_SCHEMA]

