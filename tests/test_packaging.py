"""The wheel carries its data: model configs, defaults.yaml, the GPU table, example sweeps
and the Go tables, under blis_sweep/bundled and blis_sweep/go; installed outside the
checkout, blis-sweep finds them through importlib.resources. (.ci/run also installs the
wheel with its dependencies into a fresh virtual environment and runs run/grid/curves.)"""
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", str(REPO), "-w", str(out)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (path,) = out.glob("blis_sweep-*.whl")
    return path


def test_wheel_holds_the_data_and_no_top_level_kernels(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder in ("model_configs", "hardware", "sweeps"):
        for p in (REPO / folder).rglob("*"):
            if p.is_file():
                assert f"blis_sweep/bundled/{folder}/{p.relative_to(REPO / folder).as_posix()}" in names
    assert "blis_sweep/go/go_math_rand_tables.json" in names and "blis_sweep/go/GO_LICENSE" in names
    assert "blis_sweep/kernels/engine.py" in names
    assert {n.split("/")[0] for n in names if not n.startswith("blis_sweep-")} == {"blis_sweep"}


def test_installed_wheel_finds_its_data_outside_the_checkout(wheel, tmp_path):
    target = tmp_path / "site"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target),
                           str(wheel)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target)}
    code = ("import blis_sweep.data.paths as p, blis_sweep.go.rand as g; "
            "print(p.bundled_defaults_yaml()); print(p.bundled_hardware_config()); "
            "print(p.bundled_sweep('quick.yaml')); "
            "print(p.model_config_dir_for('meta-llama/llama-3.1-8b-instruct')); print(len(g.go_tables()[0]))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    *paths, table_len = proc.stdout.split()
    for path in paths:
        assert Path(path).exists() and Path(path).is_relative_to(target), path
    assert int(table_len) > 0
    # a command that reads the bundled sweep, defaults.yaml, model config and GPU table, then stops before running
    cli = [sys.executable, "-m", "blis_sweep.cli", "grid", paths[2], "--out", "out", "--max-configs", "1"]
    proc = subprocess.run(cli, cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2 and "--max-configs" in proc.stderr, proc.stderr
    assert list(work.iterdir()) == []
