"""Where the data bundled with blis-sweep lives.

In a wheel or sdist install the data folders travel inside the package, as
blis_sweep/bundled/{model_configs,hardware,sweeps} (see pyproject.toml), and are found
through importlib.resources. In a checkout (and an editable install of it) they are
the repository's own top-level folders, which the package-dir mapping points at.
"""
from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

from blis_sweep.errors import BlisError

REPO_ROOT = Path(__file__).resolve().parents[2]  # meaningful only in a checkout


def bundled_dir(name: str) -> Path:
    """The bundled data folder `name` (model_configs, hardware or sweeps)."""
    installed = Path(str(files("blis_sweep") / "bundled" / name))
    if installed.is_dir():
        return installed
    checkout = REPO_ROOT / name
    if checkout.is_dir():
        return checkout
    raise BlisError(f"the bundled data folder {name!r} is missing from this installation "
                    f"(looked in {installed} and {checkout}); reinstall blis-sweep")


def bundled_model_configs_dir() -> Path:
    return bundled_dir("model_configs")


def bundled_defaults_yaml() -> Path:
    return bundled_model_configs_dir() / "defaults.yaml"


def bundled_hardware_config() -> Path:
    return bundled_dir("hardware") / "hardware_config.json"


def bundled_sweep(name: str) -> Path:
    """A bundled example sweep file, e.g. bundled_sweep("quick.yaml")."""
    return bundled_dir("sweeps") / name


def available_model_config_dirs(root: Path | None = None) -> list[str]:
    """Names of the folders under `root` that hold a config.json, sorted."""
    root = bundled_model_configs_dir() if root is None else Path(root)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "config.json").is_file())


def model_config_dir_for(model_name: str, root: Path | None = None) -> Path:
    """Folder of a model id: "meta-llama/Llama-3.1-8B-Instruct" -> model_configs/llama-3.1-8b-instruct.

    Only the part after the last slash counts, compared case-insensitively, because
    model ids on HuggingFace differ in case from the folder names.
    """
    root = bundled_model_configs_dir() if root is None else Path(root)
    wanted = model_name.rsplit("/", 1)[-1].strip().lower()
    available = available_model_config_dirs(root)
    for name in available:
        if name.lower() == wanted:
            return root / name
    raise BlisError(
        f"no model config for {model_name!r} in {root} (available: {', '.join(available) or 'none'})"
    )


def check_writable_file(path: Path, what: str) -> None:
    """A file that will be written at the end: checked now, so that no work is wasted (nothing is created)."""
    parent = path.parent
    if path.is_dir():
        raise BlisError(f"{what} {path} is a directory; give a file name")
    if not parent.is_dir():
        raise BlisError(f"{what} {path}: folder {parent} does not exist")
    if path.exists() and not os.access(path, os.W_OK):
        raise BlisError(f"{what} {path} is not writable")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise BlisError(f"{what} {path}: folder {parent} is not writable")
