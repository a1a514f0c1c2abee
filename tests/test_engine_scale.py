"""Cold start (compile message, warmup command) and the up-front memory estimate."""
from __future__ import annotations

import subprocess

import numba
import numpy as np
import pytest

from blis_sweep import engine
from blis_sweep.sim_config import RoutingPolicy, SimConfig
from blis_sweep.workloads.requests import distribution_workload

CHAT = dict(prefix_tokens=0, prompt_mean=512, prompt_std=256, prompt_min=2, prompt_max=7000,
            output_mean=256, output_std=128, output_min=2, output_max=7000)


NEEDS_JIT = pytest.mark.skipif(numba.config.DISABLE_JIT, reason="NUMBA_DISABLE_JIT=1: nothing is compiled")


@NEEDS_JIT
def test_a_cold_compile_is_announced_with_its_expected_duration(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(engine, "kernels_cached", lambda: False)
    monkeypatch.setattr(engine, "_warm_up_run", lambda cold=False: None)
    monkeypatch.setattr(engine, "_cache_dir", lambda: tmp_path / "kernels-x")
    engine.ensure_compiled()
    first = capsys.readouterr().err.splitlines()
    assert first[0] == f"compiling simulation kernels (one time, about {engine.DEFAULT_COMPILE_S} s)..."
    assert first[1].startswith("compiled in ")
    # the next announcement uses the compile time measured here
    (tmp_path / engine._LAST_COMPILE_FILE).write_text("42.4\n")
    engine.ensure_compiled()
    assert capsys.readouterr().err.splitlines()[0] == "compiling simulation kernels (one time, about 42 s)..."


@NEEDS_JIT
def test_a_cold_start_compiles_the_trace_reader_in_a_second_process(monkeypatch):
    """The engine compiles here while the trace reader compiles beside it; its command works."""
    launched = []

    class FakeProcess:
        def __init__(self, command, **kwargs):
            launched.append(command)

        def wait(self, timeout=None):
            return 0

    monkeypatch.setattr(engine.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(engine.subprocess, "Popen", FakeProcess)
    engine._warm_up_run(cold=True)
    assert launched == [engine.TRACE_READER_WARM_UP]
    monkeypatch.undo()
    assert subprocess.run(engine.TRACE_READER_WARM_UP, capture_output=True).returncode == 0


def test_warm_kernels_start_silently(monkeypatch, capsys):
    monkeypatch.setattr(engine, "kernels_cached", lambda: True)
    monkeypatch.setattr(engine, "_warm_up_run", lambda cold=False: None)
    engine.ensure_compiled()
    assert capsys.readouterr().err == ""


@NEEDS_JIT
def test_warmup_command_leaves_the_kernels_compiled():
    out = subprocess.run(["blis-sweep", "warmup"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout == ""
    assert "compiled" in out.stderr
    assert engine.kernels_cached()
    again = subprocess.run(["blis-sweep", "warmup"], capture_output=True, text=True)
    assert again.returncode == 0 and again.stderr.startswith("simulation kernels already compiled")


def test_memory_estimate_grows_with_requests_and_concurrency():
    small = distribution_workload(10.0, 1000, seed=1, **CHAT)
    large = distribution_workload(10.0, 4000, seed=1, **CHAT)
    cfg = SimConfig(total_kv_blocks=7463, alpha_coeffs=(1.0, 1.0, 1.0), beta_coeffs=(1.0, 1.0, 1.0))
    one_small = engine.config_working_bytes(cfg, small)
    one_large = engine.config_working_bytes(cfg, large)
    assert 3.5 < one_large / one_small < 4.5
    # a config's working memory is at least its request rows and step log
    assert one_large >= 8 * (16 * 4000 + 3 * int(np.sum(large.output_len)))
    cluster = SimConfig(total_kv_blocks=7463, num_instances=4, routing_policy=RoutingPolicy.PREFIX_AFFINITY)
    assert engine.config_working_bytes(cluster, large) > one_large
    many = engine.estimate_memory_bytes([cfg] * 64, [small, large], [0, 1] * 32, per_request=True)
    outputs = 2 * 8 * 64 * 4000 * 6
    assert many >= outputs + one_large
    assert many <= outputs + 64 * one_large
