"""Shared helpers for the reference parity cases under tests/data/parity/."""
from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PARITY_DIR = REPO / "tests" / "data" / "parity"
ALL_CASES = sorted(p.name for p in PARITY_DIR.iterdir() if (p / "case.json").exists())


def load_case(name: str) -> dict:
    return json.loads((PARITY_DIR / name / "case.json").read_text())


def stage_case(name: str, workdir: Path) -> Path:
    """Lay out a working directory the way the reference was run: trace.csv (or a workload spec
    and the files it names), defaults.yaml, hardware_config.json and model_configs/ side by side,
    paths relative."""
    case_dir = PARITY_DIR / name
    if (case_dir / "trace.csv.gz").exists():
        with gzip.open(case_dir / "trace.csv.gz", "rb") as src:
            (workdir / "trace.csv").write_bytes(src.read())
    for rel in load_case(name).get("spec_files", []):
        (workdir / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(case_dir / rel, workdir / rel)
    shutil.copy(REPO / "model_configs" / "defaults.yaml", workdir / "defaults.yaml")
    shutil.copy(REPO / "hardware" / "hardware_config.json", workdir / "hardware_config.json")
    shutil.copytree(REPO / "model_configs", workdir / "model_configs", ignore=shutil.ignore_patterns("*.yaml", "*.md"))
    return workdir


def parse_metric_blocks(stdout: str) -> list[dict]:
    """Every `=== Simulation Metrics ===` JSON block printed, in order."""
    blocks = []
    decoder = json.JSONDecoder()
    marker = "=== Simulation Metrics ==="
    pos = stdout.find(marker)
    while pos != -1:
        start = stdout.index("{", pos)
        obj, end = decoder.raw_decode(stdout, start)
        blocks.append(obj)
        pos = stdout.find(marker, end)
    return blocks


def parse_sections(stdout: str) -> dict:
    """Fitness, anomaly and trace-summary sections as dicts of their lines."""
    out: dict[str, dict] = {}
    section = None
    for line in stdout.splitlines():
        if line.startswith("=== ") and line.endswith(" ===") and "Simulation Metrics" not in line:
            section = line.strip("= ").strip()
            out[section] = {}
            continue
        if section and ":" in line:
            key, _, value = line.partition(":")
            out[section][key.strip()] = value.strip()
        elif not line.strip():
            section = None if section != "Trace Summary" else section
    return out
