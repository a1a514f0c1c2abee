"""Where the data bundled with the project lives (repo root = parent of this package)."""
from __future__ import annotations

from pathlib import Path

from blis_sweep.errors import BlisError

REPO_ROOT = Path(__file__).resolve().parent.parent


def bundled_model_configs_dir() -> Path:
    return REPO_ROOT / "model_configs"


def bundled_defaults_yaml() -> Path:
    return bundled_model_configs_dir() / "defaults.yaml"


def bundled_hardware_config() -> Path:
    return REPO_ROOT / "hardware" / "hardware_config.json"


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
