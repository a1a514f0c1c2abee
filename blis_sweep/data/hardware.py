"""GPU calibration data: the reference's hardware JSON (GPU name -> fields), validated."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from blis_sweep.errors import BlisError
from blis_sweep.data.paths import bundled_hardware_config

# JSON key -> (attribute, zero allowed). Overheads may be 0; rates and efficiencies may not.
_FIELDS = {
    "TFlopsPeak": ("tflops_peak", False),
    "BwPeakTBs": ("bw_peak_tbs", False),
    "BwEffConstant": ("bw_eff_constant", False),
    "TOverheadMicros": ("t_overhead_micros", True),
    "perLayerOverhead": ("per_layer_overhead", True),
    "mfuPrefill": ("mfu_prefill", False),
    "mfuDecode": ("mfu_decode", False),
    "allReduceLatency": ("all_reduce_latency", True),
}
_MEMORY_KEY = "memory_gib"


@dataclass(frozen=True)
class GpuCalib:
    name: str
    tflops_peak: float
    bw_peak_tbs: float
    bw_eff_constant: float
    t_overhead_micros: float
    per_layer_overhead: float
    mfu_prefill: float
    mfu_decode: float
    all_reduce_latency: float
    memory_gib: float | None = None  # optional: only KV-capacity derivation needs it


def read_hardware_file(path: str | Path | None = None) -> dict:
    """The raw GPU table of a hardware JSON (the bundled one by default)."""
    path = Path(bundled_hardware_config() if path is None else path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BlisError(f"cannot read hardware config {path}: {exc}") from None
    try:
        table = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BlisError(f"hardware config {path} is not valid JSON: {exc}") from None
    if not isinstance(table, dict) or not all(isinstance(v, dict) for v in table.values()):
        raise BlisError(f"hardware config {path} must be a JSON object mapping GPU names to objects of fields")
    return table


def available_gpus(path: str | Path | None = None) -> list[str]:
    return sorted(read_hardware_file(path))


def gpu_calib(gpu: str, path: str | Path | None = None) -> GpuCalib:
    """Validated calibration of one GPU (exact, case-sensitive name like the reference)."""
    table = read_hardware_file(path)
    if gpu not in table:
        raise BlisError(f"GPU {gpu!r} not found in hardware config (available: {', '.join(sorted(table))})")
    return _parse_entry(gpu, table[gpu])


def all_gpu_calibs(path: str | Path | None = None) -> dict[str, GpuCalib]:
    """Every GPU of a hardware file, each validated."""
    return {name: _parse_entry(name, entry) for name, entry in read_hardware_file(path).items()}


def _lookup(entry: dict, key: str):
    # Go's encoding/json matches struct keys case-insensitively when no exact key exists.
    if key in entry:
        return True, entry[key]
    for k, v in entry.items():
        if k.lower() == key.lower():
            return True, v
    return False, None


def _number(gpu: str, key: str, value, zero_ok: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BlisError(f"hardware config: GPU {gpu!r} field {key} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise BlisError(f"hardware config: GPU {gpu!r} field {key} must be finite, got {value}")
    if value < 0 or (value == 0 and not zero_ok):
        bound = ">= 0" if zero_ok else "> 0"
        raise BlisError(f"hardware config: GPU {gpu!r} field {key} must be {bound}, got {value:g}")
    return value


def _parse_entry(gpu: str, entry: dict) -> GpuCalib:
    values = {}
    for key, (attr, zero_ok) in _FIELDS.items():
        found, raw = _lookup(entry, key)
        if not found:
            raise BlisError(f"hardware config: GPU {gpu!r} is missing field {key}")
        values[attr] = _number(gpu, key, raw, zero_ok)
    found, raw = _lookup(entry, _MEMORY_KEY)
    memory = _number(gpu, _MEMORY_KEY, raw, False) if found and raw is not None else None
    return GpuCalib(name=gpu, memory_gib=memory, **values)
