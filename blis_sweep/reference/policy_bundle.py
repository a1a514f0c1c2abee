"""The reference's --policy-config YAML: load it strictly and validate it.

The reference decodes the file with gopkg.in/yaml.v3 in strict mode (unknown keys
and duplicate keys are errors; quoted numbers are strings; YAML 1.2 scalars), so
this walks PyYAML's node tree and applies those rules itself instead of trusting
PyYAML's YAML 1.1 type resolution.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from blis_sweep.errors import BlisError
from blis_sweep.go.format import go_fmt_f, go_quote
from blis_sweep.go.strconv import parse_float, parse_int
from blis_sweep.sim_config import ADMISSION_NAMES, PRIORITY_NAMES, ROUTING_NAMES, SCHEDULER_NAMES


@dataclass(frozen=True)
class PolicyBundle:
    """Values found in the file; "" / None mean "not set" (the CLI value stays)."""

    admission_policy: str = ""
    token_bucket_capacity: float | None = None
    token_bucket_refill_rate: float | None = None
    routing_policy: str = ""
    cache_weight: float | None = None
    load_weight: float | None = None
    priority_policy: str = ""
    scheduler: str = ""


class _DecodeError(Exception):
    pass


_NULL = {"", "~", "null", "Null", "NULL"}
_YAML12_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_SPECIAL_FLOATS = {".inf": math.inf, ".Inf": math.inf, ".INF": math.inf,
                   "+.inf": math.inf, "+.Inf": math.inf, "+.INF": math.inf,
                   "-.inf": -math.inf, "-.Inf": -math.inf, "-.INF": -math.inf,
                   ".nan": math.nan, ".NaN": math.nan, ".NAN": math.nan}


def _line(node) -> int:
    return node.start_mark.line + 1


def _kind(node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "!!map"
    if isinstance(node, yaml.SequenceNode):
        return "!!seq"
    return "!!str"


def _is_null(node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.style is None and node.value in _NULL


def _plain_number(text: str) -> float | None:
    """A plain scalar's value if YAML 1.2 (as yaml.v3 reads it) makes it a number."""
    if text in _SPECIAL_FLOATS:
        return _SPECIAL_FLOATS[text]
    plain = text.replace("_", "")
    try:
        return float(parse_int(plain))
    except ValueError:
        pass
    if _YAML12_FLOAT.fullmatch(plain):
        try:
            return parse_float(plain)
        except ValueError:
            return None
    return None


def _as_string(node, errors: list[str]) -> str:
    if _is_null(node):
        return ""
    if not isinstance(node, yaml.ScalarNode):
        errors.append(f"line {_line(node)}: cannot unmarshal {_kind(node)} into string")
        return ""
    return node.value  # yaml.v3 keeps any scalar's source text for a string field


def _as_float(node, errors: list[str]) -> float | None:
    if _is_null(node):
        return None
    value = _plain_number(node.value) if isinstance(node, yaml.ScalarNode) and node.style is None else None
    if value is None:
        shown = f" `{node.value}`" if isinstance(node, yaml.ScalarNode) else ""
        errors.append(f"line {_line(node)}: cannot unmarshal {_kind(node)}{shown} into float64")
    return value


def _fields(node, go_type: str, known: set[str], errors: list[str]) -> dict:
    """Key -> value node of a mapping, with yaml.v3's strict-mode complaints."""
    if _is_null(node):
        return {}
    if not isinstance(node, yaml.MappingNode):
        shown = f" `{node.value}`" if isinstance(node, yaml.ScalarNode) else ""
        errors.append(f"line {_line(node)}: cannot unmarshal {_kind(node)}{shown} into {go_type}")
        return {}
    found: dict = {}
    first_line: dict = {}
    for key_node, value_node in node.value:
        key = key_node.value
        if key in first_line:
            raise _DecodeError(f"yaml: unmarshal errors: line {_line(key_node)}: mapping key "
                               f"{go_quote(key)} already defined at line {first_line[key]}")
        first_line[key] = _line(key_node)
        if key not in known:
            errors.append(f"line {_line(key_node)}: field {key} not found in type {go_type}")
            continue
        found[key] = value_node
    return found


def _decode(root) -> PolicyBundle:
    errors: list[str] = []
    top = _fields(root, "sim.PolicyBundle", {"admission", "routing", "priority", "scheduler"}, errors)
    adm = _fields(top["admission"], "sim.AdmissionConfig",
                  {"policy", "token_bucket_capacity", "token_bucket_refill_rate"}, errors) if "admission" in top else {}
    rt = _fields(top["routing"], "sim.RoutingConfig",
                 {"policy", "cache_weight", "load_weight"}, errors) if "routing" in top else {}
    pr = _fields(top["priority"], "sim.PriorityConfig", {"policy"}, errors) if "priority" in top else {}

    def text(section, key):
        return _as_string(section[key], errors) if key in section else ""

    def number(section, key):
        return _as_float(section[key], errors) if key in section else None

    bundle = PolicyBundle(
        admission_policy=text(adm, "policy"),
        token_bucket_capacity=number(adm, "token_bucket_capacity"),
        token_bucket_refill_rate=number(adm, "token_bucket_refill_rate"),
        routing_policy=text(rt, "policy"),
        cache_weight=number(rt, "cache_weight"),
        load_weight=number(rt, "load_weight"),
        priority_policy=text(pr, "policy"),
        scheduler=text(top, "scheduler"),
    )
    if errors:
        raise _DecodeError("yaml: unmarshal errors: " + "; ".join(errors))
    return bundle


def load_policy_bundle(path: Path, shown_path: str | None = None) -> PolicyBundle:
    """Read and strictly decode a policy bundle. Errors read like the reference's
    (`reading policy config: ...` / `parsing policy config: ...`)."""
    shown = shown_path if shown_path is not None else str(path)
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        reason = (exc.strerror or str(exc))
        raise BlisError(f"reading policy config: open {shown}: {reason[:1].lower()}{reason[1:]}") from None
    try:
        root = next(iter(yaml.compose_all(text, Loader=yaml.SafeLoader)), None)
        if root is None:
            raise _DecodeError("EOF")  # yaml.v3's Decoder reports an empty document as EOF
        return _decode(root)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = " ".join((getattr(exc, "problem", None) or str(exc)).split())
        raise BlisError(f"parsing policy config: yaml: {where}{problem}") from None
    except _DecodeError as exc:
        raise BlisError(f"parsing policy config: {exc}") from None


def _valid_options(names) -> str:
    return ", ".join(sorted(names))


def _check_float(name: str, value: float | None) -> None:
    if value is None:
        return
    if not math.isfinite(value):
        raise BlisError(f"{name} must be a finite number, got {go_fmt_f(value)}")
    if value < 0:
        raise BlisError(f"{name} must be non-negative, got {go_fmt_f(value)}")


def validate_policy_bundle(bundle: PolicyBundle) -> None:
    """The reference's bundle validation (names, parameter ranges, weight sum); raises BlisError."""
    for label, value, names in (("admission policy", bundle.admission_policy, ADMISSION_NAMES),
                                ("routing policy", bundle.routing_policy, ROUTING_NAMES),
                                ("priority policy", bundle.priority_policy, PRIORITY_NAMES),
                                ("scheduler", bundle.scheduler, SCHEDULER_NAMES)):
        if value and value not in names:
            raise BlisError(f"unknown {label} {go_quote(value)}; valid options: {_valid_options(names)}")
    _check_float("token_bucket_capacity", bundle.token_bucket_capacity)
    _check_float("token_bucket_refill_rate", bundle.token_bucket_refill_rate)
    _check_float("cache_weight", bundle.cache_weight)
    _check_float("load_weight", bundle.load_weight)
    if bundle.routing_policy == "weighted" and bundle.cache_weight is not None and bundle.load_weight is not None:
        total = bundle.cache_weight + bundle.load_weight
        if abs(total - 1.0) > 0.01:
            raise BlisError(
                f"routing weights must sum to 1.0 (got cache_weight={go_fmt_f(bundle.cache_weight, 2)} + "
                f"load_weight={go_fmt_f(bundle.load_weight, 2)} = {go_fmt_f(total, 2)})")
