"""GPU hourly prices: the bundled estimates (hardware/gpu_prices.yaml) merged with a user file.

A prices file is YAML::

    prices:
      H100: 2.90                      # USD per GPU-hour, or
      A100-80GB: {usd_per_gpu_hour: 1.64, source: "...", date: "2026-05-01"}

Entries of a user file replace the bundled ones GPU by GPU. GPU names must be known
(hardware/hardware_config.json, or defaults.yaml's trained-coefficient names) and prices
finite and >= 0; anything else is a one-line BlisError.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import yaml

from blis_sweep.errors import BlisError
from blis_sweep.data.paths import bundled_dir

PRICES_FILE = bundled_dir("hardware") / "gpu_prices.yaml"


@dataclass(frozen=True)
class GpuPrice:
    gpu: str
    usd_per_gpu_hour: float
    source: str
    date: str


def known_gpu_names() -> list[str]:
    """GPU names a price may be given for: the hardware file's and defaults.yaml's."""
    from blis_sweep.data.defaults import load_defaults
    from blis_sweep.data.hardware import available_gpus

    names = set(available_gpus())
    for entry in load_defaults().get("models", []) or []:
        if isinstance(entry, dict) and isinstance(entry.get("GPU"), str):
            names.add(entry["GPU"])
    return sorted(names)


def read_prices_file(path: str | Path, what: str = "prices file") -> dict[str, GpuPrice]:
    """Validated prices of one file (GPU -> GpuPrice)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BlisError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise BlisError(f"{what} {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict) or not isinstance(data.get("prices"), dict) or not data["prices"]:
        raise BlisError(f"{what} {path}: expected a mapping `prices: {{GPU: USD per GPU-hour, ...}}`")
    known = known_gpu_names()
    out = {}
    for gpu, entry in data["prices"].items():
        where = f"{what} {path}: prices.{gpu}"
        if gpu not in known:
            raise BlisError(f"{where}: unknown GPU (allowed: {', '.join(known)})")
        if isinstance(entry, dict):
            value, source, date = entry.get("usd_per_gpu_hour"), entry.get("source", ""), entry.get("date", "")
        else:
            value, source, date = entry, "", ""
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise BlisError(f"{where}: price must be a finite number of USD per GPU-hour >= 0, got {value!r}")
        out[gpu] = GpuPrice(gpu, float(value), str(source or path), str(date or ""))
    return out


def load_prices(user_file: str | Path | None = None) -> dict[str, GpuPrice]:
    """Bundled estimates, overridden GPU by GPU by the user's file."""
    prices = read_prices_file(PRICES_FILE, "bundled prices file")
    if user_file is not None:
        prices.update(read_prices_file(user_file))
    return prices
