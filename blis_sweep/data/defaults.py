"""The reference's defaults.yaml: trained coefficients, default deployment per model, workload presets."""
from __future__ import annotations

import math
from pathlib import Path

import yaml

from blis_sweep.errors import BlisError
from blis_sweep.data.yaml_positions import Yaml12SafeLoader
from blis_sweep.data.paths import bundled_defaults_yaml

PRESET_FIELDS = (
    "prefix_tokens",
    "prompt_tokens", "prompt_tokens_stdev", "prompt_tokens_min", "prompt_tokens_max",
    "output_tokens", "output_tokens_stdev", "output_tokens_min", "output_tokens_max",
)
MIN_COEFFS = 3


_cache: dict[tuple, dict] = {}


def load_defaults(path: str | Path | None = None) -> dict:
    """The parsed file (cached per path and modification time: sweeps look it up many times)."""
    path = Path(bundled_defaults_yaml() if path is None else path)
    try:
        stat = path.stat()
        key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
        if key in _cache:
            return _cache[key]
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BlisError(f"cannot read defaults file {path}: {exc}") from None
    try:
        data = yaml.load(text, Loader=Yaml12SafeLoader)
    except yaml.YAMLError as exc:
        raise BlisError(f"defaults file {path} is not valid YAML: {' '.join(str(exc).split())}") from None
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise BlisError(f"defaults file {path} must be a YAML mapping")
    for section, kind in (("defaults", dict), ("models", list), ("workloads", dict)):
        if data.get(section) is None:
            data[section] = kind()
        elif not isinstance(data[section], kind):
            raise BlisError(f"defaults file {path}: `{section}` must be a {'mapping' if kind is dict else 'list'}")
    for i, entry in enumerate(data["models"]):
        if not isinstance(entry, dict):
            raise BlisError(f"defaults file {path}: models[{i}] must be a mapping")
    data["_path"] = str(path)
    _cache[key] = data
    return data


def _field(data: dict, where: str, entry: dict, key: str, kind: type):
    """A typed field; absent means the zero value, like the reference's YAML decoding."""
    value = entry.get(key)
    if value is None:
        return kind()
    if isinstance(value, bool) or not isinstance(value, kind):
        raise BlisError(f"defaults file {data['_path']}: {where} field {key} must be "
                        f"{'an integer' if kind is int else 'a string'}, got {value!r}")
    return value


def default_specs(model: str, path: str | Path | None = None) -> tuple[str, int, str]:
    """(GPU, tensor parallelism, vLLM version) the reference falls back to; ("", 0, "") when absent.

    The reference lowercases the model name before every defaults.yaml lookup.
    """
    data = load_defaults(path)
    entry = data["defaults"].get(model.lower())
    if not isinstance(entry, dict):
        return "", 0, ""
    where = f"defaults[{model.lower()!r}]"
    return (_field(data, where, entry, "GPU", str), _field(data, where, entry, "tensor_parallelism", int),
            _field(data, where, entry, "vllm_version", str))


def coefficients(model: str, tp: int, gpu: str, vllm_version: str,
                 path: str | Path | None = None) -> tuple[tuple[float, ...], tuple[float, ...], int] | None:
    """(alpha, beta, total_kv_blocks) of the first `models` entry matching all four keys exactly, or None.

    Only the model name is lowercased; GPU and vLLM version are case-sensitive.
    """
    data = load_defaults(path)
    model = model.lower()
    for i, entry in enumerate(data["models"]):
        where = f"models[{i}]"
        if (_field(data, where, entry, "id", str) == model
                and _field(data, where, entry, "tensor_parallelism", int) == tp
                and _field(data, where, entry, "GPU", str) == gpu
                and _field(data, where, entry, "vllm_version", str) == vllm_version):
            where = f"models[{i}] ({model}, {gpu}, tp={tp})"
            alpha = _coeff_list(data, where, entry, "alpha_coeffs")
            beta = _coeff_list(data, where, entry, "beta_coeffs")
            blocks = _field(data, where, entry, "total_kv_blocks", int)
            if blocks <= 0:
                raise BlisError(f"defaults file {data['_path']}: {where} total_kv_blocks must be > 0, got {blocks}")
            return alpha, beta, blocks
    return None


def trained_deployments(model: str, path: str | Path | None = None) -> list[str]:
    """"GPU tp=N" of every defaults.yaml entry with coefficients for `model` (lowercased), sorted."""
    data = load_defaults(path)
    model = model.lower()
    combos = {(str(e.get("GPU")), e.get("tensor_parallelism")) for e in data["models"]
              if str(e.get("id", "")).lower() == model}
    return [f"{gpu} tp={tp}" for gpu, tp in sorted(combos, key=lambda c: (c[0], str(c[1])))]


def _coeff_list(data: dict, where: str, entry: dict, key: str) -> tuple[float, ...]:
    values = entry.get(key)
    prefix = f"defaults file {data['_path']}: {where} {key}"
    if not isinstance(values, list) or len(values) < MIN_COEFFS:
        raise BlisError(f"{prefix} must be a list of at least {MIN_COEFFS} numbers, got {values!r}")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise BlisError(f"{prefix} must hold finite numbers, got {v!r}")
    return tuple(float(v) for v in values)


def workload_preset_names(path: str | Path | None = None) -> list[str]:
    return sorted(load_defaults(path)["workloads"])


def workload_preset(name: str, path: str | Path | None = None) -> dict[str, int]:
    """The nine length parameters of a preset (exact, case-sensitive name); absent fields are 0."""
    data = load_defaults(path)
    entry = data["workloads"].get(name)
    if not isinstance(entry, dict):
        raise BlisError(f"unknown workload preset {name!r} (available: {', '.join(workload_preset_names(path))})")
    return {key: _field(data, f"workloads[{name!r}]", entry, key, int) for key in PRESET_FIELDS}
