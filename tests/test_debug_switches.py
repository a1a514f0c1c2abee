"""The kernel's debugging modes keep working: the `-k small` property tests (kernel against
the oracle) pass with borrowed views turned off and with the kernel run as plain Python.

Each runs in a subprocess because both switches are read when the kernels are imported.
The first run after a kernel change compiles the no-borrow kernels into their own cache
directory (about as long as the normal compile); later runs load them.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SMALL_PROPERTY_TESTS = [sys.executable, "-m", "pytest", "tests/test_engine_properties.py", "-k", "small", "-rA",
                        "-p", "no:cacheprovider"]


def run_with(env_overrides: dict[str, str], command: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, **env_overrides}
    env.pop("PYTEST_ADDOPTS", None)
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)


@pytest.mark.parametrize("switch", [{"BLIS_SWEEP_NO_BORROW": "1"}, {"NUMBA_DISABLE_JIT": "1"}],
                         ids=["no-borrow", "disable-jit"])
def test_small_property_tests_pass_in_debugging_mode(switch):
    probe = run_with(switch, [sys.executable, "-c", (
        "import numba; from blis_sweep.kernels import borrow; "
        "print(borrow.BORROW_ENABLED, numba.config.DISABLE_JIT, numba.config.CACHE_DIR)")])
    assert probe.returncode == 0, probe.stderr
    borrow_enabled, jit_disabled, cache_dir = probe.stdout.split()
    if "BLIS_SWEEP_NO_BORROW" in switch:
        assert borrow_enabled == "False" and cache_dir.endswith("-no-borrow")
    else:
        assert jit_disabled in ("1", "True")
    result = run_with(switch, SMALL_PROPERTY_TESTS)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    passed = [line for line in result.stdout.splitlines() if line.startswith("PASSED ")]
    assert len(passed) >= 2 and all("small" in line for line in passed), result.stdout[-3000:]
