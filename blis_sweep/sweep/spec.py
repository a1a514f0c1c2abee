"""Sweep files for `blis-sweep grid`: parse, validate, normalise and expand into points.

A sweep file is YAML::

    name: h100_tp                  # results go to results/<name>/ by default
    base:                          # one full configuration (see BASE_KEYS)
      model: meta-llama/llama-3.1-8b-instruct
      hardware: H100
      latency_model: roofline
      workload: {preset: chatbot}
      rate: 10
    axes:                          # key -> list of values; the grid is their Cartesian product
      tp: [1, 2, 4, 8]
      rate: [5, 10, 20]
    zip: [[max_num_running_reqs, max_num_scheduled_tokens]]   # optional: keys that vary together
    replicates: 3                  # or seeds: [1, 2, 3]
    slo: {ttft_p99_ms: 500}        # optional, used by `curves`

Every error is a BlisError of one line, `<file>:<line>: <key path>: <problem>`, and
unknown names list the allowed ones. Cross-key checks (coefficients that must exist
for a model/GPU/TP, distribution ranges, ...) happen later, in sweep.resolve, over the
distinct combinations that the grid actually contains.

Points are not materialised: point p is decoded from its mixed-radix digits (the first
axis is the outermost), so a grid of any size costs no memory up front. Configuration
ids are point_id * len(seeds) + replicate.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Callable, Iterator

from blis_sweep.errors import BlisError
from blis_sweep.limits import range_problem
from blis_sweep.kernels.layout import METRIC_COLUMNS
from blis_sweep.sweep.steady_state import (Attainment, SettingError, SteadySettings, parse_attainment,
                                     parse_steady_settings)
from blis_sweep.sweep.slo_classes import CLASS_COLUMN_NAMES, parse_class_slo
from blis_sweep.sim_config import ADMISSION_NAMES, PRIORITY_NAMES, ROUTING_NAMES, SCHEDULER_NAMES
from blis_sweep.data.yaml_positions import Positions, load_yaml_file_with_positions, load_yaml_with_positions

SPEC_FORMAT = 1  # bump when the meaning of a normalised spec changes (part of the spec hash)
DEFAULT_CHUNK_SIZE = 256
REQUIRED = object()

DIST_FIELDS = {  # the reference's distribution flags and their defaults
    "prefix_tokens": 0,
    "prompt_tokens": 512, "prompt_tokens_stdev": 256, "prompt_tokens_min": 2, "prompt_tokens_max": 7000,
    "output_tokens": 512, "output_tokens_stdev": 256, "output_tokens_min": 2, "output_tokens_max": 7000,
}
WORKLOAD_KINDS = ("preset", "distribution", "trace", "spec")
LATENCY_MODELS = ("blackbox", "roofline")
ARRIVALS = ("constant", "poisson")


class _Bad(Exception):
    """A value problem; the caller adds file, line and key path."""


# ---------------------------------------------------------------- value checkers

def _is_number(v) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, float))


def _int(lo: int) -> Callable:
    def check(v, ctx):
        if isinstance(v, bool) or not isinstance(v, int):
            raise _Bad(f"must be an integer >= {lo}, got {v!r}")
        if v < lo:
            raise _Bad(f"must be an integer >= {lo}, got {v}")
        return v
    return check


def _num(lo: float, lo_open: bool = False, hi: float | None = None) -> Callable:
    bound = f"{'>' if lo_open else '>='} {lo:g}" + (f" and <= {hi:g}" if hi is not None else "")

    def check(v, ctx):
        if not _is_number(v) or not math.isfinite(v):
            raise _Bad(f"must be a finite number {bound}, got {v!r}")
        if v < lo or (lo_open and v == lo) or (hi is not None and v > hi):
            raise _Bad(f"must be a number {bound}, got {v:g}")
        return float(v)
    return check


def _choice(names) -> Callable:
    names = tuple(names)

    def check(v, ctx):
        if not isinstance(v, str) or v not in names:
            raise _Bad(f"unknown value {v!r} (allowed: {', '.join(names)})")
        return v
    return check


def _string(v, ctx):
    if not isinstance(v, str) or not v.strip():
        raise _Bad(f"must be a non-empty string, got {v!r}")
    return v


def _optional(check: Callable) -> Callable:
    def inner(v, ctx):
        return None if v is None else check(v, ctx)
    return inner


def _path(v, ctx):
    v = _string(v, ctx)
    p = Path(v).expanduser()
    return str(p if p.is_absolute() else (ctx.base_dir / p))


def _coeffs(v, ctx):
    if not isinstance(v, list) or len(v) < 3:
        raise _Bad(f"must be a list of at least 3 numbers, got {v!r}")
    for x in v:
        if not _is_number(x) or not math.isfinite(x):
            raise _Bad(f"must hold finite numbers, got {x!r}")
    return tuple(float(x) for x in v)


def _kv_blocks(v, ctx):
    if v == "auto":
        return v
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise _Bad(f"must be an integer >= 1 or auto, got {v!r}")
    return v


def _distribution(v, ctx, path, lines):
    if not isinstance(v, dict):
        raise _Bad(f"must be a mapping of {', '.join(DIST_FIELDS)}, got {v!r}")
    out = dict(DIST_FIELDS)
    for key, value in v.items():
        if key not in DIST_FIELDS:
            raise _Located(path + (key,), f"unknown key (allowed: {', '.join(DIST_FIELDS)})")
        try:
            out[key] = _in_range(key, _int(0)(value, ctx))
        except _Bad as exc:
            raise _Located(path + (key,), str(exc)) from None
    return out


def _in_range(key: str, value):
    """The documented range of an integer key (blis_sweep.limits), beyond its type check."""
    problem = range_problem(key, value)
    if problem:
        raise _Bad(problem)
    return value


def _workload(v, ctx, path=(), lines=None):
    if isinstance(v, str) and v in ctx.presets:
        v = {"preset": v}  # shorthand: `workload: chatbot`
    if not isinstance(v, dict) or len(v) != 1:
        raise _Bad(f"must be a mapping with exactly one of {', '.join(WORKLOAD_KINDS)} "
                   f"(e.g. {{preset: chatbot}}), got {v!r}")
    (kind, value), = v.items()
    if kind not in WORKLOAD_KINDS:
        raise _Located(path + (kind,), f"unknown workload kind (allowed: {', '.join(WORKLOAD_KINDS)})")
    try:
        if kind == "preset":
            return {"preset": _choice(ctx.presets)(value, ctx)}
        if kind == "trace":
            return {"trace": _path(value, ctx)}
        if kind == "spec":  # a workload-spec YAML (workload_spec.py); axes may set fields inside it
            return {"spec": _path(value, ctx)}
    except _Bad as exc:
        raise _Located(path + (kind,), str(exc)) from None
    return {"distribution": _distribution(value, ctx, path + (kind,), lines)}


class _Located(Exception):
    """A problem at a sub-path of the value being checked."""

    def __init__(self, path: tuple, message: str):
        super().__init__(message)
        self.path = path


@dataclass(frozen=True)
class KeySpec:
    default: object
    check: Callable
    doc: str


BASE_KEYS: dict[str, KeySpec] = {
    "model": KeySpec(REQUIRED, _string, "model id, e.g. meta-llama/llama-3.1-8b-instruct"),
    "hardware": KeySpec(REQUIRED, _string, "GPU name (hardware_config.json for roofline, defaults.yaml for blackbox)"),
    "tp": KeySpec(1, _int(1), "tensor parallelism"),
    "latency_model": KeySpec("roofline", _choice(LATENCY_MODELS), "blackbox (trained coefficients) or roofline"),
    "vllm_version": KeySpec(None, _optional(_string), "blackbox: defaults.yaml vllm_version to match"),
    "alpha_coeffs": KeySpec(None, _optional(_coeffs), "blackbox: explicit alpha coefficients"),
    "beta_coeffs": KeySpec(None, _optional(_coeffs), "blackbox: explicit beta coefficients"),
    "model_config": KeySpec(None, _optional(_path), "HF config.json (or its folder); default: bundled"),
    "hardware_config": KeySpec(None, _optional(_path), "GPU calibration JSON; default: bundled"),
    "total_kv_blocks": KeySpec("auto", _kv_blocks, "KV blocks per instance, or auto (from memory / defaults.yaml)"),
    "gpu_memory_utilization": KeySpec(0.9, _num(0.0, lo_open=True, hi=1.0), "share of GPU memory for weights+KV"),
    "block_size": KeySpec(16, _int(1), "tokens per KV block"),
    "max_num_running_reqs": KeySpec(256, _int(1), "max requests in a batch"),
    "max_num_scheduled_tokens": KeySpec(2048, _int(1), "max new tokens per step"),
    "long_prefill_token_threshold": KeySpec(0, _int(0), "chunk prefills longer than this (0: off)"),
    "scheduler": KeySpec("fcfs", _choice(SCHEDULER_NAMES), "wait-queue order"),
    "priority_policy": KeySpec("constant", _choice(PRIORITY_NAMES), "request priority"),
    "horizon": KeySpec(None, _optional(_int(1)), "simulated time limit in µs (null: none)"),
    "seed": KeySpec(42, _int(0), "workload seed (use seeds:/replicates: to vary it)"),
    "workload": KeySpec(REQUIRED, _workload, "{preset: NAME} | {distribution: {...}} | {trace: PATH} | {spec: PATH}"),
    "rate": KeySpec(None, _optional(_num(0.0, lo_open=True)), "offered requests/s (generated workloads)"),
    "num_requests": KeySpec(100, _int(1), "requests per generated workload"),
    "arrival": KeySpec("constant", _choice(ARRIVALS), "arrival process of generated workloads"),
    "num_instances": KeySpec(1, _int(1), "instances in the cluster"),
    "routing_policy": KeySpec("round-robin", _choice(ROUTING_NAMES), "cluster routing"),
    "admission_policy": KeySpec("always-admit", _choice(ADMISSION_NAMES), "cluster admission"),
    "admission_latency": KeySpec(0, _int(0), "µs"),
    "routing_latency": KeySpec(0, _int(0), "µs"),
    "token_bucket_capacity": KeySpec(10000.0, _num(0.0), "token-bucket admission"),
    "token_bucket_refill_rate": KeySpec(1000.0, _num(0.0), "token-bucket admission"),
    "routing_cache_weight": KeySpec(0.6, _num(0.0), "weighted routing"),
    "routing_load_weight": KeySpec(0.4, _num(0.0), "weighted routing"),
    "kv_cpu_blocks": KeySpec(0, _int(0), "tiered KV: CPU blocks"),
    "kv_offload_threshold": KeySpec(0.9, _num(0.0, hi=1.0), "tiered KV"),
    "kv_transfer_bandwidth": KeySpec(100.0, _num(0.0, lo_open=True), "tiered KV"),
    "kv_transfer_base_latency": KeySpec(0, _int(0), "tiered KV, µs"),
}

TOP_KEYS = ("name", "description", "base", "axes", "zip", "seeds", "replicates", "slo", "chunk_size",
            "steady_state", "search")
WORKLOAD_SUBKEYS = ("workload.preset", "workload.trace") + tuple(f"workload.distribution.{k}" for k in DIST_FIELDS)
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def axis_key_names() -> list[str]:
    return [k for k in BASE_KEYS if k != "seed"] + list(WORKLOAD_SUBKEYS)


@dataclass
class _Ctx:
    base_dir: Path
    presets: tuple


@dataclass(frozen=True)
class AxisGroup:
    """One dimension of the grid: a single axis, or a zip group whose keys vary together."""

    keys: tuple[str, ...]
    values: tuple[tuple, ...]  # values[i][k]: value of keys[k] in setting i
    lines: tuple[tuple[int, ...], ...]

    def __len__(self) -> int:
        return len(self.values)


@dataclass
class GridSpec:
    name: str
    source: str
    description: str
    base: dict
    base_lines: dict
    groups: list[AxisGroup]
    axis_keys: list[str]
    seeds: list[int]
    seeds_line: int | None
    slo: dict[str, float]
    chunk_size: int
    positions: Positions = field(repr=False, default_factory=Positions)
    steady: SteadySettings = field(default_factory=SteadySettings)  # `steady_state:` block
    attainment: Attainment | None = None  # `slo: {attainment: {...}}`
    search: dict | None = None  # raw `search:` block (checked by `capacity`)
    class_slo: dict = field(default_factory=dict)  # `slo: {realtime: {ttft_p99_ms: 200}, ...}` (slo_classes.py)

    @property
    def num_points(self) -> int:
        n = 1
        for g in self.groups:
            n *= len(g)
        return n

    @property
    def num_configs(self) -> int:
        return self.num_points * len(self.seeds)

    # ---------------------------------------------------------------- expansion

    def digits(self, point_id: int) -> list[int]:
        out = []
        for g in reversed(self.groups):
            point_id, d = divmod(point_id, len(g))
            out.append(d)
        return out[::-1]

    def point(self, point_id: int) -> tuple[dict, dict]:
        """(values, lines) of a point: every base key with the axes applied."""
        return self._apply(list(zip(self.groups, self.digits(point_id))))

    def _apply(self, chosen) -> tuple[dict, dict]:
        values = dict(self.base)
        lines = dict(self.base_lines)
        dotted = []
        for g, d in chosen:
            for key, value, line in zip(g.keys, g.values[d], g.lines[d]):
                if key.startswith("workload."):
                    dotted.append((key, value, line))
                else:
                    values[key] = value
                    lines[key] = line
        for key, value, line in dotted:
            values["workload"] = _override_workload(values["workload"], key, value, line, self.source)
            lines["workload"] = line
        return values, lines

    def distinct(self, keys) -> Iterator[tuple[dict, dict]]:
        """Each distinct combination of `keys` that occurs in the grid (zip groups respected)."""
        keys = tuple(keys)
        roots = {k.split(".", 1)[0] for k in keys}
        touching = [g for g in self.groups if any(k.split(".", 1)[0] in roots for k in g.keys)]
        seen = set()
        for digits in product(*(range(len(g)) for g in touching)):
            values, lines = self._apply(list(zip(touching, digits)))
            sig = tuple(freeze(values.get(k)) for k in roots)
            if sig not in seen:
                seen.add(sig)
                yield values, lines

    # ---------------------------------------------------------------- normalised form

    def normalized(self) -> dict:
        """The expanded, normalised sweep (written as sweep.yaml; its hash identifies the run)."""
        axes = {}
        for g in self.groups:
            for k, key in enumerate(g.keys):
                axes[key] = [plain(v[k]) for v in g.values]
        return {
            "format": SPEC_FORMAT,
            "name": self.name,
            "description": self.description,
            "base": {k: plain(v) for k, v in self.base.items()},
            "axes": axes,
            "zip": [list(g.keys) for g in self.groups if len(g.keys) > 1],
            "seeds": list(self.seeds),
            "slo": dict(self.slo, **({"attainment": self.attainment.as_dict()} if self.attainment else {}),
                        **self.class_slo),
            "steady_state": self.steady.as_dict(),
            **({"search": plain(self.search)} if self.search is not None else {}),
            "chunk_size": self.chunk_size,
            "num_points": self.num_points,
            "num_configs": self.num_configs,
        }

    def spec_hash(self) -> str:
        """Identity of the results: the normalised sweep without name, description and slo
        (which do not change what is simulated; editing them keeps a run resumable)."""
        sim = {k: v for k, v in self.normalized().items() if k not in ("name", "description", "slo", "search")}
        if self.attainment is not None:  # per-request SLO attainment is computed while simulating
            sim["attainment"] = self.attainment.as_dict()
        if self.class_slo:  # so are the per-class attainments
            sim["class_slo"] = self.class_slo
        text = json.dumps(sim, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def line_of(self, path: tuple) -> int | None:
        return self.positions.line(path)


def freeze(v):
    """A hashable form of a normalised value (dicts and lists become tuples)."""
    if isinstance(v, dict):
        return tuple(sorted((k, freeze(x)) for k, x in v.items()))
    if isinstance(v, (list, tuple)):
        return tuple(freeze(x) for x in v)
    return v


def plain(v):
    """YAML/JSON-friendly form of a normalised value."""
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    return v


def _override_workload(workload: dict, key: str, value, line: int, source: str) -> dict:
    parts = key.split(".")
    kind = parts[1]
    have = next(iter(workload))
    if have != kind:
        raise BlisError(f"{source}:{line}: axes.{key}: applies to {kind} workloads, but this point's workload "
                        f"is a {have} ({plain(workload)})")
    if kind in ("preset", "trace"):
        return {kind: value}
    if kind == "spec":  # `workload.spec.clients.0.rate_fraction` -> set["clients.0.rate_fraction"]
        return {"spec": workload["spec"], "set": {**workload.get("set", {}), ".".join(parts[2:]): value}}
    inner = dict(workload["distribution"])
    inner[parts[2]] = value
    return {"distribution": inner}


# ---------------------------------------------------------------- parsing

def load_grid_spec(path: str | Path) -> GridSpec:
    path = Path(path)
    data, positions = load_yaml_file_with_positions(path)
    return parse_grid_spec(data, positions, source=str(path), base_dir=path.resolve().parent,
                           default_name=path.stem)


def parse_grid_spec_text(text: str, source: str = "<sweep>", base_dir: Path | None = None,
                         default_name: str = "sweep") -> GridSpec:
    data, positions = load_yaml_with_positions(text, source)
    return parse_grid_spec(data, positions, source, base_dir or Path.cwd(), default_name)


def parse_grid_spec(data, positions: Positions, source: str, base_dir: Path, default_name: str) -> GridSpec:
    from blis_sweep.data.defaults import workload_preset_names

    def fail(path: tuple, message: str):
        line = positions.line(path)
        where = f"{source}:{line}" if line else source
        dotted = ".".join(str(p) for p in path)
        raise BlisError(f"{where}: {dotted + ': ' if dotted else ''}{message}")

    if not isinstance(data, dict):
        fail((), "a sweep file must be a YAML mapping with at least `base:`")
    for key in data:
        if key not in TOP_KEYS:
            fail((key,), f"unknown key (allowed: {', '.join(TOP_KEYS)})")
    ctx = _Ctx(base_dir=base_dir, presets=tuple(workload_preset_names()))

    name = data.get("name", default_name)
    if not isinstance(name, str) or not _NAME_RE.match(name):
        fail(("name",), f"must be a name of letters, digits, '.', '_' or '-', got {name!r}")
    description = data.get("description", "") or ""
    if not isinstance(description, str):
        fail(("description",), "must be a string")

    def check_value(key: str, value, path: tuple):
        spec = BASE_KEYS[key]
        try:
            if spec.check is _workload:
                return _workload(value, ctx, path)
            return _in_range(key, spec.check(value, ctx))
        except _Located as exc:
            fail(exc.path, str(exc))
        except _Bad as exc:
            fail(path, str(exc))

    def check_sub(key: str, value, path: tuple):
        """Value of a dotted workload axis key."""
        sub = key.split(".")
        try:
            if sub[1] == "preset":
                return _choice(ctx.presets)(value, ctx)
            if sub[1] == "trace":
                return _path(value, ctx)
            if sub[1] == "spec":  # checked with the spec file, in sweep.resolve
                if isinstance(value, (dict, list)) or value is None:
                    raise _Bad(f"must be a number or a name, got {value!r}")
                return value
            return _in_range(sub[2], _int(0)(value, ctx))
        except _Bad as exc:
            fail(path, str(exc))

    # base
    if "base" not in data:
        fail((), "missing `base:` (the configuration that axes vary)")
    base_raw = data["base"]
    if not isinstance(base_raw, dict):
        fail(("base",), "must be a mapping of configuration keys")
    base, base_lines = {}, {}
    for key, value in base_raw.items():
        if key not in BASE_KEYS:
            fail(("base", key), f"unknown key (allowed: {', '.join(BASE_KEYS)})")
        base[key] = check_value(key, value, ("base", key))
        base_lines[key] = positions.line(("base", key))

    # axes
    axes_raw = data.get("axes", {})
    if "axes" in data and not isinstance(axes_raw, dict):
        fail(("axes",), "must be a mapping of key -> list of values")
    if "axes" in data and not axes_raw:
        fail(("axes",), "is empty: give at least one key with a list of values, or remove `axes:`")
    allowed_axes = axis_key_names()
    axes: dict[str, tuple[list, list]] = {}
    for key, values in axes_raw.items():
        if key == "seed":
            fail(("axes", key), "use `seeds:` or `replicates:` to vary the seed")
        if key not in allowed_axes and not (key.startswith("workload.spec.") and len(key) > len("workload.spec.")):
            fail(("axes", key), f"unknown axis (allowed: any base key, or workload.preset, workload.trace, "
                                f"workload.distribution.<field>, workload.spec.<field path>; base keys: {', '.join(allowed_axes[:len(BASE_KEYS) - 1])})")
        if not isinstance(values, list):
            fail(("axes", key), f"must be a list of values, got {values!r}")
        if not values:
            fail(("axes", key), "empty list: an axis needs at least one value")
        checked = []
        for i, v in enumerate(values):
            path = ("axes", key, i)
            checked.append(check_sub(key, v, path) if "." in key else check_value(key, v, path))
        lines = [positions.line(("axes", key, i)) for i in range(len(values))]
        axes[key] = (checked, lines)
    # required keys
    for key, spec in BASE_KEYS.items():
        if spec.default is REQUIRED and key not in base and key not in axes:
            fail(("base",), f"missing required key {key} ({spec.doc})")
    for key, spec in BASE_KEYS.items():
        if key not in base:
            base[key] = check_value(key, spec.default, ("base",)) if spec.default is not REQUIRED else None
            base_lines[key] = None

    # zip groups
    zip_raw = data.get("zip", [])
    if not isinstance(zip_raw, list):
        fail(("zip",), "must be a list of groups, each a list of axis keys")
    grouped: dict[str, int] = {}
    zip_groups = []
    for gi, group in enumerate(zip_raw):
        if not isinstance(group, list) or len(group) < 2:
            fail(("zip", gi), f"must be a list of at least two axis keys, got {group!r}")
        for ki, key in enumerate(group):
            if not isinstance(key, str) or key not in axes:
                fail(("zip", gi, ki), f"{key!r} is not an axis (axes: {', '.join(axes) or 'none'})")
            if key in grouped:
                fail(("zip", gi, ki), f"{key} is already in zip group {grouped[key]}")
            grouped[key] = gi
        lengths = {key: len(axes[key][0]) for key in group}
        if len(set(lengths.values())) != 1:
            fail(("zip", gi), "zipped axes must have equal lengths, got "
                              + ", ".join(f"{k}: {n}" for k, n in lengths.items()))
        zip_groups.append(group)
    # an axis may repeat a value only inside a zip group, and only if the zipped tuples differ
    for key, (checked, _) in axes.items():
        keys = zip_groups[grouped[key]] if key in grouped else [key]
        if keys[0] != key:
            continue
        seen = {}
        for i in range(len(checked)):
            f = freeze(tuple(axes[k][0][i] for k in keys))
            if f in seen:
                what = (f"duplicate value {plain(checked[i])!r} (also item {seen[f]} of this axis)" if len(keys) == 1
                        else f"duplicate setting {plain(f)!r} of zip group [{', '.join(keys)}] (also item {seen[f]})")
                fail(("axes", key, i), what)
            seen[f] = i

    groups: list[AxisGroup] = []
    emitted = set()
    for key in axes:  # file order; a zip group sits where its first key is
        if key in emitted:
            continue
        keys = zip_groups[grouped[key]] if key in grouped else [key]
        n = len(axes[keys[0]][0])
        groups.append(AxisGroup(
            keys=tuple(keys),
            values=tuple(tuple(axes[k][0][i] for k in keys) for i in range(n)),
            lines=tuple(tuple(axes[k][1][i] for k in keys) for i in range(n)),
        ))
        emitted.update(keys)

    # seeds
    seeds_line = None
    if "seeds" in data and "replicates" in data:
        fail(("replicates",), "give either seeds: or replicates:, not both")
    if "seeds" in data:
        seeds = data["seeds"]
        seeds_line = positions.line(("seeds",))
        if not isinstance(seeds, list) or not seeds:
            fail(("seeds",), f"must be a non-empty list of integers, got {seeds!r}")
        for i, s in enumerate(seeds):
            if isinstance(s, bool) or not isinstance(s, int) or s < 0:
                fail(("seeds", i), f"must be an integer >= 0, got {s!r}")
            if range_problem("seed", s):
                fail(("seeds", i), range_problem("seed", s))
        if len(set(seeds)) != len(seeds):
            fail(("seeds",), "seeds must be distinct")
        seeds = list(seeds)
    elif "replicates" in data:
        n = data["replicates"]
        seeds_line = positions.line(("replicates",))
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            fail(("replicates",), f"must be an integer >= 1, got {n!r}")
        if range_problem("replicates", n) or range_problem("seed", base["seed"] + n - 1):
            fail(("replicates",), range_problem("replicates", n) or "base.seed + replicates - 1 must stay "
                                                                   f"<= {2**63 - 1}")
        seeds = [base["seed"] + i for i in range(n)]
    else:
        seeds = [base["seed"]]

    # slo
    slo_raw = data.get("slo", {}) or {}
    if not isinstance(slo_raw, dict):
        fail(("slo",), "must be a mapping of metric -> upper bound, e.g. {ttft_p99_ms: 500}")
    slo = {}
    attainment = None
    class_slo: dict[str, dict[str, float]] = {}
    for key, value in slo_raw.items():
        if key == "attainment":
            try:
                attainment = parse_attainment(value)
            except SettingError as exc:
                fail(("slo", key) + ((exc.key,) if exc.key else ()), str(exc))
            continue
        if key in CLASS_COLUMN_NAMES:  # per-SLO-class bounds of workload specs
            try:
                class_slo[key] = parse_class_slo(key, value)
            except ValueError as exc:
                fail(("slo", key), str(exc))
            continue
        try:
            slo[key] = check_slo_entry(key, value)
        except BlisError as exc:
            fail(("slo", key), str(exc))

    chunk_size = data.get("chunk_size", DEFAULT_CHUNK_SIZE)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        fail(("chunk_size",), f"must be an integer >= 1, got {chunk_size!r}")
    if range_problem("chunk_size", chunk_size):
        fail(("chunk_size",), range_problem("chunk_size", chunk_size))

    try:
        steady = parse_steady_settings(data.get("steady_state"))
    except SettingError as exc:
        fail(("steady_state",) + ((exc.key,) if exc.key else ()), str(exc))
    search = data.get("search")
    if "search" in data and not isinstance(search, dict):
        fail(("search",), "must be a mapping of search settings (see `blis-sweep capacity --help`)")

    spec = GridSpec(name=name, source=source, description=description, base=base, base_lines=base_lines,
                    groups=groups, axis_keys=list(axes), seeds=seeds, seeds_line=seeds_line, slo=slo,
                    chunk_size=chunk_size, positions=positions, steady=steady, attainment=attainment,
                    search=search, class_slo=class_slo)
    # dotted workload axes must fit every workload they meet
    if any(k.startswith("workload.") for k in axes):
        for _ in spec.distinct(("workload",)):
            pass
    return spec


SLO_HINT = "ttft_p99_ms, tpot_p99_ms, e2e_p99_ms, itl_p99_ms, ... (any metric column; bound is an upper limit)"


def check_slo_entry(key, value) -> float:
    if not isinstance(key, str) or key not in METRIC_COLUMNS:
        ms = [k for k in METRIC_COLUMNS if k.endswith("_ms")]
        raise BlisError(f"unknown SLO metric {key!r} (allowed: {', '.join(ms)}, or any other metric column)")
    if not _is_number(value) or not math.isfinite(value) or value < 0:
        raise BlisError(f"SLO bound for {key} must be a finite number >= 0, got {value!r}")
    return float(value)


def parse_slo_args(items: list[str] | None) -> dict[str, float]:
    """CLI `--slo ttft_p99_ms=200` entries."""
    out = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep:
            raise BlisError(f"--slo expects METRIC=BOUND (e.g. ttft_p99_ms=200), got {item!r}")
        try:
            value = float(raw)
        except ValueError:
            raise BlisError(f"--slo {key.strip()}: bound must be a number, got {raw!r}") from None
        out[key.strip()] = check_slo_entry(key.strip(), value)
    return out
