"""The reference's multi-client workload specs (`run --workload-spec FILE.yaml`): load and validate.

The file is decoded with the reference's rules (Go yaml.v3 into typed fields, unknown
keys rejected): string fields take the scalar's text as written (`tenant_id: 007` is
"007"), integer fields accept whole or fractional numbers (truncated), an empty value is
the zero value. Validation is the reference's plus checks for values it would turn
into garbage, hangs or panics (see README, "Workload specs"). Every error is one line
`<file>:<line>: <field>: <problem>`.

Generation lives in spec_gen.py; ServeGen data folders in servegen.py.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from blis_sweep.errors import BlisError
from blis_sweep.data.yaml_positions import compose_yaml

ARRIVAL_PROCESSES = ("poisson", "gamma", "weibull")
DIST_TYPES = ("gaussian", "exponential", "pareto_lognormal", "empirical")
CATEGORIES = ("", "language", "multimodal", "reasoning")
SLO_CLASSES = ("", "realtime", "interactive", "batch")
CONTEXT_GROWTH = ("", "fixed", "accumulate")
DIST_PARAMS = {
    "gaussian": ("mean", "std_dev", "min", "max"),
    "exponential": ("mean",),
    "pareto_lognormal": ("alpha", "xm", "mu", "sigma", "mix_weight"),
}
MULTIMODAL_DISTS = ("text_distribution", "image_distribution", "image_count_distribution", "audio_distribution",
                    "audio_count_distribution", "video_distribution", "video_count_distribution")
WEIBULL_CV_RANGE = (0.01, 10.4)  # the reference's bounds
INT64_MAX = (1 << 63) - 1
MAX_LENGTH = 1 << 31  # a token count above this is a spec error, not a workload
_INT_KEY = re.compile(r"[+-]?[0-9]+")
_NULL_TAG = "tag:yaml.org,2002:null"


# ----------------------------------------------------------------------------- typed spec

@dataclass(frozen=True)
class DistSpec:
    type: str = ""
    params: tuple = ()  # ((name, value), ...) in file order; empirical: ((token count, weight), ...)
    file: str = ""
    where: str = ""  # "<file>:<line>: <field path>" for errors about this distribution

    def param(self, name: str) -> float:
        return dict(self.params)[name]


@dataclass(frozen=True)
class MultiTurnSpec:
    max_rounds: int = 0
    think_time_us: int = 0
    context_growth: str = ""


@dataclass(frozen=True)
class ClientSpec:
    id: str = ""
    tenant_id: str = ""
    slo_class: str = ""
    rate_fraction: float = 0.0
    process: str = ""
    cv: float | None = None
    input: DistSpec = DistSpec()
    output: DistSpec = DistSpec()
    prefix_group: str = ""
    windows: tuple | None = None  # ((start_us, end_us), ...); None: always active
    multimodal: dict | None = None  # MULTIMODAL_DISTS name -> DistSpec (type "" when absent)
    reason_ratio: DistSpec | None = None
    multi_turn: MultiTurnSpec | None = None


@dataclass(frozen=True)
class ServeGenSpec:
    path: str = ""
    span_start: int = 0
    span_end: int = 0
    where: str = ""


@dataclass(frozen=True)
class WorkloadSpec:
    seed: int = 0
    category: str = ""
    aggregate_rate: float = 0.0
    horizon: int = 0
    clients: tuple = ()
    servegen: ServeGenSpec | None = None
    source: str = ""
    base_dir: Path = field(default_factory=Path.cwd)  # ServeGen paths resolve here

    def generation_horizon(self, run_horizon: int) -> int:
        """Requests are generated up to the spec's horizon if it is > 0, else up to --horizon."""
        return self.horizon if self.horizon > 0 else run_horizon


# ----------------------------------------------------------------------------- YAML as Go decodes it

@dataclass
class _Node:
    kind: str  # "map", "seq", "scalar"
    line: int
    value: object  # dict[str, _Node] | list[_Node] | constructed scalar
    raw: str = ""  # scalar text as written ("" for null)


def _nodes(text: str, source: str) -> _Node | None:
    return compose_yaml(text, source, lambda loader, node: _wrap(loader, node, source))


def _wrap(loader, node, source: str) -> _Node:
    line = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # `<<: *anchor` merge keys, which yaml.v3 also honours
        out: dict[str, _Node] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise BlisError(f"{source}:{key_node.start_mark.line + 1}: mapping keys must be plain names")
            key = key_node.value
            if key in out:
                raise BlisError(f"{source}:{key_node.start_mark.line + 1}: mapping key {key!r} already defined "
                                f"at line {out[key].line}")
            out[key] = _wrap(loader, value_node, source)
            out[key].line = key_node.start_mark.line + 1
        return _Node("map", line, out)
    if isinstance(node, yaml.SequenceNode):
        return _Node("seq", line, [_wrap(loader, item, source) for item in node.value])
    raw = "" if node.tag == _NULL_TAG else node.value
    return _Node("scalar", line, loader.construct_object(node, deep=True), raw)


class _Decoder:
    """Typed field access on the node tree; errors name file, line and the field path."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, node: _Node | None, path: str, message: str):
        where = f"{self.source}:{node.line}" if node is not None else self.source
        raise BlisError(f"{where}: {path + ': ' if path else ''}{message}")

    def where(self, node: _Node | None, path: str) -> str:
        return f"{self.source}:{node.line}: {path}" if node is not None else f"{self.source}: {path}"

    def fields(self, node: _Node | None, path: str, allowed: tuple) -> dict:
        if node is None or (node.kind == "scalar" and node.value is None):
            return {}
        if node.kind != "map":
            self.fail(node, path, f"must be a mapping of {', '.join(allowed)}")
        for key, child in node.value.items():
            if key not in allowed:
                self.fail(child, _join(path, key), f"unknown field (allowed: {', '.join(allowed)})")
        return node.value

    def string(self, node: _Node | None, path: str) -> str:
        if node is None:
            return ""
        if node.kind != "scalar":
            self.fail(node, path, "must be a string")
        return node.raw

    def number(self, node: _Node | None, path: str, default=0.0) -> float:
        if node is None or (node.kind == "scalar" and node.value is None):
            return default
        v = node.value if node.kind == "scalar" else None
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            self.fail(node, path, f"must be a number, got {node.raw!r}" if node.kind == "scalar"
                      else "must be a number")
        return float(v)

    def integer(self, node: _Node | None, path: str, bits: int = 64) -> int:
        if node is None or (node.kind == "scalar" and node.value is None):
            return 0
        v = node.value if node.kind == "scalar" else None
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            self.fail(node, path, f"must be an integer, got {node.raw!r}" if node.kind == "scalar"
                      else "must be an integer")
        if isinstance(v, float):
            if not math.isfinite(v):
                self.fail(node, path, f"must be an integer, got {node.raw!r}")
            v = int(v)  # yaml.v3 truncates a number written with a fraction
        if not -(1 << (bits - 1)) <= v < (1 << (bits - 1)):
            self.fail(node, path, f"{node.raw} is out of range for a {bits}-bit integer")
        return v

    def boolean(self, node: _Node | None, path: str) -> bool:
        if node is None or (node.kind == "scalar" and node.value is None):
            return False
        if node.kind != "scalar" or not isinstance(node.value, bool):
            self.fail(node, path, "must be true or false")
        return node.value

    def seq(self, node: _Node | None, path: str) -> list:
        if node is None or (node.kind == "scalar" and node.value is None):
            return []
        if node.kind != "seq":
            self.fail(node, path, "must be a list")
        return node.value


def _join(path: str, key) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


# ----------------------------------------------------------------------------- parse + validate

_TOP = ("version", "seed", "category", "clients", "aggregate_rate", "horizon", "servegen_data")
_CLIENT = ("id", "tenant_id", "slo_class", "rate_fraction", "arrival", "input_distribution",
           "output_distribution", "prefix_group", "streaming", "network", "lifecycle", "multimodal", "reasoning")


def load_workload_spec(path: str | Path, source: str | None = None, overrides: tuple = (),
                       base_dir: Path | None = None) -> WorkloadSpec:
    """Read, decode and validate a spec file. `overrides`: ((dotted path, value), ...) set before
    decoding (sweep axes such as `clients.0.rate_fraction`).
    base_dir: where a ServeGen `path` resolves (default: the spec's folder; `run` uses its cwd)."""
    path = Path(path)
    source = source or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BlisError(f"cannot read workload spec {source}: {exc.strerror or exc}") from None
    root = _nodes(text, source)
    for dotted, value in overrides:
        root = _override(root, dotted, value, source)
    return parse_workload_spec(root, source, base_dir if base_dir is not None else path.resolve().parent)


def parse_workload_spec_text(text: str, source: str = "<spec>", base_dir: Path | None = None) -> WorkloadSpec:
    return parse_workload_spec(_nodes(text, source), source, base_dir or Path.cwd())


def parse_workload_spec(root: _Node | None, source: str, base_dir: Path) -> WorkloadSpec:
    dec = _Decoder(source)
    top = dec.fields(root, "", _TOP)
    dec.string(top.get("version"), "version")  # unused by the reference, but must be a scalar
    seed = dec.integer(top.get("seed"), "seed")
    category = dec.string(top.get("category"), "category")
    if category not in CATEGORIES:
        dec.fail(top.get("category"), "category", f"unknown category {category!r} (allowed: language, multimodal, "
                                                  "reasoning, or empty)")
    rate = dec.number(top.get("aggregate_rate"), "aggregate_rate")
    if not (math.isfinite(rate) and rate > 0):
        dec.fail(top.get("aggregate_rate") or root, "aggregate_rate",
                 f"must be a finite number > 0 (requests/s), got {_shown(top.get('aggregate_rate'), rate)}")
    horizon = dec.integer(top.get("horizon"), "horizon")
    clients = tuple(_client(dec, node, f"clients[{i}]")
                    for i, node in enumerate(dec.seq(top.get("clients"), "clients")))
    servegen = None
    sg_node = top.get("servegen_data")
    if sg_node is not None and not (sg_node.kind == "scalar" and sg_node.value is None):
        sg = dec.fields(sg_node, "servegen_data", ("path", "span_start", "span_end"))
        servegen = ServeGenSpec(path=dec.string(sg.get("path"), "servegen_data.path"),
                                span_start=dec.integer(sg.get("span_start"), "servegen_data.span_start"),
                                span_end=dec.integer(sg.get("span_end"), "servegen_data.span_end"),
                                where=dec.where(sg_node, "servegen_data"))
        if clients:
            dec.fail(sg_node, "servegen_data", "is ignored by the reference when clients are given; "
                                               "remove one of the two")
        if not servegen.path:
            dec.fail(sg.get("path") or sg_node, "servegen_data.path", "missing: the folder of chunk-*-trace.csv "
                                                                      "and chunk-*-dataset.json files")
    if not clients and servegen is None:
        dec.fail(root, "clients", "at least one client or servegen_data is required")
    return WorkloadSpec(seed=seed, category=category, aggregate_rate=rate, horizon=horizon, clients=clients,
                        servegen=servegen, source=source, base_dir=base_dir)


def _shown(node: _Node | None, value) -> str:
    return repr(node.raw) if node is not None and node.kind == "scalar" and node.raw else repr(value)


def _client(dec: _Decoder, node: _Node, path: str) -> ClientSpec:
    f = dec.fields(node, path, _CLIENT)
    if node.kind != "map":
        dec.fail(node, path, "must be a mapping")
    slo = dec.string(f.get("slo_class"), _join(path, "slo_class"))
    if slo not in SLO_CLASSES:
        dec.fail(f.get("slo_class"), _join(path, "slo_class"),
                 f"unknown slo_class {slo!r} (allowed: realtime, interactive, batch, or empty)")
    frac_node = f.get("rate_fraction")
    frac = dec.number(frac_node, _join(path, "rate_fraction"))
    if not (math.isfinite(frac) and frac > 0):
        dec.fail(frac_node or node, _join(path, "rate_fraction"),
                 f"must be a finite number > 0, got {_shown(frac_node, frac)}")
    arrival_path = _join(path, "arrival")
    arrival = dec.fields(f.get("arrival"), arrival_path, ("process", "cv"))
    process = dec.string(arrival.get("process"), _join(arrival_path, "process"))
    if process not in ARRIVAL_PROCESSES:
        dec.fail(arrival.get("process") or f.get("arrival") or node, _join(arrival_path, "process"),
                 f"unknown arrival process {process!r} (allowed: {', '.join(ARRIVAL_PROCESSES)})")
    cv = None
    cv_node = arrival.get("cv")
    if cv_node is not None and not (cv_node.kind == "scalar" and cv_node.value is None):
        cv = dec.number(cv_node, _join(arrival_path, "cv"))
        check_cv(process, cv, lambda msg: dec.fail(cv_node, _join(arrival_path, "cv"), msg))
    _network(dec, f.get("network"), _join(path, "network"))
    dec.boolean(f.get("streaming"), _join(path, "streaming"))
    windows = None
    life_node = f.get("lifecycle")
    if life_node is not None and not (life_node.kind == "scalar" and life_node.value is None):
        life = dec.fields(life_node, _join(path, "lifecycle"), ("windows",))
        wins = []
        for i, w in enumerate(dec.seq(life.get("windows"), _join(path, "lifecycle.windows"))):
            wp = f"{path}.lifecycle.windows[{i}]"
            wf = dec.fields(w, wp, ("start_us", "end_us"))
            wins.append((dec.integer(wf.get("start_us"), wp + ".start_us"), dec.integer(wf.get("end_us"), wp + ".end_us")))
        windows = tuple(wins)
    multimodal = None
    mm_node = f.get("multimodal")
    if mm_node is not None and not (mm_node.kind == "scalar" and mm_node.value is None):
        mm = dec.fields(mm_node, _join(path, "multimodal"), MULTIMODAL_DISTS)
        multimodal = {name: _dist(dec, mm.get(name), f"{path}.multimodal.{name}", optional=True)
                      for name in MULTIMODAL_DISTS}
        for kind in ("image", "audio", "video"):
            size, count = multimodal[f"{kind}_distribution"], multimodal[f"{kind}_count_distribution"]
            if bool(size.type) != bool(count.type):
                given, missing = (f"{kind}_distribution", f"{kind}_count_distribution") if size.type \
                    else (f"{kind}_count_distribution", f"{kind}_distribution")
                dec.fail(mm.get(given), f"{path}.multimodal.{given}",
                         f"has no effect without {missing} (the reference draws {kind} tokens only with both)")
    reason_ratio = multi_turn = None
    rs_node = f.get("reasoning")
    if rs_node is not None and not (rs_node.kind == "scalar" and rs_node.value is None):
        rs = dec.fields(rs_node, _join(path, "reasoning"), ("reason_ratio_distribution", "multi_turn"))
        mt_node = rs.get("multi_turn")
        if mt_node is not None and not (mt_node.kind == "scalar" and mt_node.value is None):
            mp = f"{path}.reasoning.multi_turn"
            mt = dec.fields(mt_node, mp, ("max_rounds", "think_time_us", "context_growth"))
            growth = dec.string(mt.get("context_growth"), mp + ".context_growth")
            if growth not in CONTEXT_GROWTH:
                dec.fail(mt.get("context_growth"), mp + ".context_growth",
                         f"unknown value {growth!r} (allowed: accumulate, fixed, or empty)")
            multi_turn = MultiTurnSpec(max_rounds=dec.integer(mt.get("max_rounds"), mp + ".max_rounds"),
                                       think_time_us=dec.integer(mt.get("think_time_us"), mp + ".think_time_us"),
                                       context_growth=growth)
            if multi_turn.max_rounds > 100_000:
                dec.fail(mt.get("max_rounds"), mp + ".max_rounds", f"must be <= 100000, got {multi_turn.max_rounds}")
            if multi_turn.think_time_us < 0:
                dec.fail(mt.get("think_time_us"), mp + ".think_time_us",
                         f"must be >= 0 (arrivals would go back in time), got {multi_turn.think_time_us}")
            reason_ratio = _dist(dec, rs.get("reason_ratio_distribution"),
                                 f"{path}.reasoning.reason_ratio_distribution", optional=True)
        elif rs.get("reason_ratio_distribution") is not None:  # decoded (types checked), never used
            _dist(dec, rs.get("reason_ratio_distribution"), f"{path}.reasoning.reason_ratio_distribution",
                  optional=True)
    return ClientSpec(
        id=dec.string(f.get("id"), _join(path, "id")),
        tenant_id=dec.string(f.get("tenant_id"), _join(path, "tenant_id")),
        slo_class=slo, rate_fraction=frac, process=process, cv=cv,
        input=_dist(dec, f.get("input_distribution"), _join(path, "input_distribution"), anchor=node),
        output=_dist(dec, f.get("output_distribution"), _join(path, "output_distribution"), anchor=node),
        prefix_group=dec.string(f.get("prefix_group"), _join(path, "prefix_group")),
        windows=windows, multimodal=multimodal, reason_ratio=reason_ratio, multi_turn=multi_turn,
    )


def check_cv(process: str, cv: float, fail) -> None:
    """The reference's cv checks (finite, > 0; weibull within [0.01, 10.4])."""
    if not math.isfinite(cv) or cv <= 0:
        fail(f"must be a finite number > 0, got {cv!r}")
    lo, hi = WEIBULL_CV_RANGE
    if process == "weibull" and not lo <= cv <= hi:
        fail(f"weibull cv must be in [{lo}, {hi}], got {cv!r}")


def _network(dec: _Decoder, node, path: str) -> None:
    """Accepted for compatibility; the reference adds no network latency."""
    if node is None or (node.kind == "scalar" and node.value is None):
        return
    f = dec.fields(node, path, ("rtt_ms", "bandwidth_mbps"))
    for key in ("rtt_ms", "bandwidth_mbps"):
        dec.number(f.get(key), _join(path, key))


def _dist(dec: _Decoder, node, path: str, optional: bool = False, anchor=None) -> DistSpec:
    """A distribution; `optional` ones may be absent (type "") and are then never drawn."""
    f = dec.fields(node, path, ("type", "params", "file"))
    dtype = dec.string(f.get("type"), _join(path, "type"))
    where = dec.where(node if node is not None else anchor, path)
    if dtype == "" and optional and not f.get("params") and not f.get("file"):
        return DistSpec(where=where)
    if dtype not in DIST_TYPES:
        dec.fail(f.get("type") or node or anchor, _join(path, "type"),
                 f"unknown distribution type {dtype!r} (allowed: {', '.join(DIST_TYPES)})")
    file = dec.string(f.get("file"), _join(path, "file"))
    params_node = f.get("params")
    items = []
    raw_params = {}
    if params_node is not None and params_node.kind == "map":
        raw_params = params_node.value
    elif params_node is not None and not (params_node.kind == "scalar" and params_node.value is None):
        dec.fail(params_node, _join(path, "params"), "must be a mapping of name -> number")
    for key, value_node in raw_params.items():
        value = dec.number(value_node, f"{path}.params.{key}")
        if not math.isfinite(value):
            dec.fail(value_node, f"{path}.params.{key}", f"must be a finite number, got {value_node.raw!r}")
        items.append((key, value, value_node))
    if dtype == "empirical":
        return _empirical(dec, path, where, items, file, params_node or node or anchor)
    names = DIST_PARAMS[dtype]
    for key, _, value_node in items:
        if key not in names:
            dec.fail(value_node, f"{path}.params.{key}", f"unknown parameter of {dtype} (allowed: {', '.join(names)})")
    given = {key: value for key, value, _ in items}
    for name in names:
        if name not in given:
            dec.fail(params_node or f.get("type") or node or anchor, f"{path}.params",
                     f"missing {name} (a {dtype} distribution needs {', '.join(names)})")
    nodes = {key: n for key, _, n in items}

    def bad(name, message):
        dec.fail(nodes[name], f"{path}.params.{name}", message)

    if dtype == "gaussian":
        for name in ("min", "max"):
            if abs(given[name]) >= MAX_LENGTH:
                bad(name, f"must be a token count below {MAX_LENGTH}, got {given[name]!r}")
        if given["std_dev"] < 0:
            bad("std_dev", f"must be >= 0, got {given['std_dev']!r}")
        if int(given["min"]) > int(given["max"]):
            bad("min", f"min ({given['min']!r}) must be <= max ({given['max']!r})")
        if int(given["min"]) == int(given["max"]) < 0:
            bad("min", f"a fixed length (min == max) must be >= 0, got {int(given['min'])}")
    elif dtype == "exponential":
        if given["mean"] <= 0:
            bad("mean", f"must be > 0, got {given['mean']!r}")
    else:
        for name in ("alpha", "xm"):
            if given[name] <= 0:
                bad(name, f"must be > 0, got {given[name]!r}")
        if given["sigma"] < 0:
            bad("sigma", f"must be >= 0, got {given['sigma']!r}")
        if not 0 <= given["mix_weight"] <= 1:
            bad("mix_weight", f"must be in [0, 1], got {given['mix_weight']!r}")
    return DistSpec(type=dtype, params=tuple((k, v) for k, v, _ in items), file=file, where=where)


def _empirical(dec: _Decoder, path: str, where: str, items: list, file: str, anchor) -> DistSpec:
    if not items:
        hint = " (the reference never reads `file`; give the weights inline)" if file else ""
        dec.fail(anchor, _join(path, "params"), f"an empirical distribution needs inline params "
                                               f"{{token count: weight, ...}}{hint}")
    seen: dict[int, str] = {}
    pdf = []
    for key, weight, node in items:
        if not _INT_KEY.fullmatch(key):
            dec.fail(node, f"{path}.params.{key}", "keys must be integer token counts")
        count = int(key)
        if not 0 <= count < MAX_LENGTH:
            dec.fail(node, f"{path}.params.{key}", f"token count must be in [0, {MAX_LENGTH}), got {count}")
        if count in seen:
            dec.fail(node, f"{path}.params.{key}", f"same token count as key {seen[count]!r}")
        if weight < 0:
            dec.fail(node, f"{path}.params.{key}", f"weight must be >= 0, got {weight!r}")
        seen[count] = key
        pdf.append((count, weight))
    if not any(w > 0 for _, w in pdf):
        dec.fail(anchor, _join(path, "params"), "needs at least one positive weight")
    return DistSpec(type="empirical", params=tuple(pdf), file=file, where=where)


# ----------------------------------------------------------------------------- overrides (sweep axes)

def _override(root: _Node | None, dotted: str, value, source: str) -> _Node:
    """Set `dotted` (e.g. `aggregate_rate`, `clients.1.arrival.cv`) to a plain value."""
    if root is None:
        root = _Node("map", 1, {})
    parts = dotted.split(".")
    node = root
    for part in parts[:-1]:
        node = _child(node, part, dotted, source)
    last = parts[-1]
    leaf = _plain_node(value, node.line)
    if node.kind == "seq":
        if not part_is_index(last) or int(last) >= len(node.value):
            raise BlisError(f"{dotted}: {source} has no item {last} there")
        node.value[int(last)] = leaf
    elif node.kind == "map":
        node.value[last] = leaf
    else:
        raise BlisError(f"{dotted}: {source} has a value, not a mapping, before {last!r}")
    return root


def part_is_index(part: str) -> bool:
    return part.isdigit()


def _child(node: _Node, part: str, dotted: str, source: str) -> _Node:
    if node.kind == "seq":
        if not part_is_index(part) or int(part) >= len(node.value):
            raise BlisError(f"{dotted}: {source} has no item {part} there "
                            f"({len(node.value)} items)")
        return node.value[int(part)]
    if node.kind != "map":
        raise BlisError(f"{dotted}: {source} has a value, not a mapping, before {part!r}")
    if part not in node.value or (node.value[part].kind == "scalar" and node.value[part].value is None):
        node.value[part] = _Node("map", node.line, {})
    return node.value[part]


def _plain_node(value, line: int) -> _Node:
    if isinstance(value, dict):
        return _Node("map", line, {str(k): _plain_node(v, line) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return _Node("seq", line, [_plain_node(v, line) for v in value])
    raw = "" if value is None else ("true" if value is True else "false" if value is False else str(value))
    return _Node("scalar", line, value, raw)


def with_clients(spec: WorkloadSpec, clients) -> WorkloadSpec:
    return replace(spec, clients=tuple(clients))
