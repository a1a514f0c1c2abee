"""Provenance for result manifests and benchmark records: versions, machine, commit."""
from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata

from blis_sweep.data.paths import REPO_ROOT

_PACKAGES = ("numpy", "numba", "polars", "pyarrow", "pyyaml", "rich", "blis-sweep")


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict:
    info = {"cpu": cpu_model(), "cores": os.cpu_count(), "platform": platform.platform()}
    try:
        import numba

        info["numba_threads"] = numba.get_num_threads()
    except Exception:  # pragma: no cover - numba always present in practice
        pass
    return info


def git_commit() -> str | None:
    """HEAD of the blis-sweep checkout (suffixed -dirty with uncommitted changes), or None."""
    try:
        head = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "--short=12", "HEAD"],
                              capture_output=True, text=True, timeout=5)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5)
        return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None
