"""`grid --backend ray`: same files as the local backend, a killed worker loses and duplicates nothing, resume.

One local Ray instance (2 CPUs, no dashboard, small object store) serves the whole module;
without Ray installed these tests are skipped (the install-hint test runs either way).
"""
from __future__ import annotations

import os
import signal
import subprocess
import textwrap
import time
from pathlib import Path

import polars as pl
import pytest

from blis_sweep.sweep.run import chunk_file, run_grid
from blis_sweep.data.paths import REPO_ROOT

QUICK = REPO_ROOT / "sweeps" / "quick.yaml"
NO_RAY = "Ray is not installed; pip install 'blis-sweep[ray]' to test --backend ray"


@pytest.fixture(scope="module")
def ray_module():
    return pytest.importorskip("ray", reason=NO_RAY)


@pytest.fixture(scope="module")
def ray_cluster(ray_module):
    """Address of a local Ray instance with 2 CPUs, shared by the module's tests."""
    ray = ray_module
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=128 << 20, log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def quick_local(tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "quick"
    run_grid(QUICK, out=out, quiet=True)
    return pl.read_parquet(out / "configs.parquet")


def quick_spec(tmp_path: Path, chunk_size: int) -> Path:
    """sweeps/quick.yaml cut into chunks of `chunk_size` configurations."""
    path = tmp_path / f"quick_{chunk_size}.yaml"
    path.write_text(QUICK.read_text() + f"chunk_size: {chunk_size}\n")
    return path


def cli(*args, env=None, cwd=None):
    return subprocess.run(["blis-sweep", *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=600)


def backend(**kwargs):
    from blis_sweep.sweep.ray_backend import RayBackend

    return RayBackend(**kwargs)


def assert_same_rows(got: pl.DataFrame, want: pl.DataFrame):
    assert got["config_id"].to_list() == list(range(want.height))  # every config once, in order
    assert got.equals(want)


def test_quick_sweep_on_ray_equals_local_backend(ray_cluster, quick_local, tmp_path):
    proc = cli("grid", QUICK, "--out", tmp_path / "ray", "--backend", "ray", "--address", ray_cluster, "-q")
    assert proc.returncode == 0, proc.stderr
    assert_same_rows(pl.read_parquet(tmp_path / "ray" / "configs.parquet"), quick_local)
    import json

    manifest = json.loads((tmp_path / "ray" / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["invocations"][-1]["backend"] == {  # one base workload per seed, shipped once
        "name": "ray", "address": ray_cluster, "workers": 2, "nodes": 1, "workloads_shipped": 2,
        "ray": __import__("ray").__version__}


def test_many_chunks_and_per_request_records_equal_local(ray_cluster, tmp_path):
    trace = REPO_ROOT / "tests" / "data" / "parity" / "v01_single_chat_prefix" / "trace.csv.gz"
    spec = tmp_path / "mixed.yaml"
    spec.write_text(textwrap.dedent(f"""\
        name: mixed
        base:
          model: meta-llama/llama-3.1-8b-instruct
          hardware: H100
          latency_model: blackbox
          tp: 2
          workload: {{trace: {trace}}}
        axes:
          max_num_running_reqs: [4, 64]
          horizon: [null, 5000000]
        chunk_size: 1
        """))
    run_grid(spec, out=tmp_path / "local", requests=True, quiet=True)
    summary = run_grid(spec, out=tmp_path / "ray", requests=True, quiet=True, backend=backend())
    assert summary.chunks_run == 4
    for name in ("configs.parquet", "requests.parquet"):
        assert pl.read_parquet(tmp_path / "ray" / name).equals(pl.read_parquet(tmp_path / "local" / name)), name


def test_worker_killed_mid_chunk_is_retried_without_loss_or_duplicates(ray_cluster, quick_local, tmp_path):
    marker = tmp_path / "killed-pid"

    def kill_once(k: int) -> None:  # runs inside the Ray worker, at the start of each chunk
        if k == 2 and not marker.exists():
            marker.write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)

    ray_backend = backend(chunk_hook=kill_once)
    try:
        summary = run_grid(quick_spec(tmp_path, 3), out=tmp_path / "out", quiet=True, backend=ray_backend)
    finally:
        ray_backend.close()
    killed = int(marker.read_text())
    assert killed in ray_backend.worker_pids()
    with pytest.raises(ProcessLookupError):
        os.kill(killed, 0)
    assert summary.num_chunks == summary.chunks_run == 8
    assert ray_backend.workloads_shipped == 2  # once for all 8 chunks and the restarted worker
    assert sorted(p.name for p in (tmp_path / "out" / "chunks").iterdir()) == [
        f"configs-{k:05d}.parquet" for k in range(8)]
    assert_same_rows(pl.read_parquet(tmp_path / "out" / "configs.parquet"), quick_local)


def test_interrupted_run_resumes_on_ray_from_written_chunks(ray_cluster, quick_local, tmp_path):
    spec, out = quick_spec(tmp_path, 5), tmp_path / "out"
    run_grid(spec, out=out, quiet=True)
    for k in (1, 3):  # as if the driver had died before these chunks were written
        chunk_file(out, "configs", k).unlink()
    (out / "configs.parquet").unlink()
    summary = run_grid(spec, out=out, quiet=True, backend=backend())
    assert (summary.chunks_run, summary.chunks_skipped) == (2, 3)
    assert_same_rows(pl.read_parquet(out / "configs.parquet"), quick_local)


def test_driver_killed_mid_run_resumes_from_its_chunks(ray_cluster, tmp_path):
    spec = tmp_path / "slow.yaml"  # 24 chunks of one configuration of 1,000 requests
    spec.write_text(QUICK.read_text().replace("num_requests: 200", "num_requests: 1000") + "chunk_size: 1\n")
    out = tmp_path / "ray"
    args = ["blis-sweep", "grid", str(spec), "--out", str(out), "--backend", "ray", "--address", ray_cluster, "-q"]
    driver = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not list((out / "chunks").glob("configs-*.parquet")) and driver.poll() is None:
            time.sleep(0.01)
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    written = len(list((out / "chunks").glob("configs-*.parquet")))
    assert 1 <= written < 24 and not (out / "configs.parquet").exists()
    proc = cli(*args[1:])
    assert proc.returncode == 0, proc.stderr
    import json

    last = json.loads((out / "manifest.json").read_text())["invocations"][-1]
    assert (last["chunks_skipped"], last["chunks_run"]) == (written, 24 - written)
    run_grid(spec, out=tmp_path / "local", quiet=True)
    assert_same_rows(pl.read_parquet(out / "configs.parquet"), pl.read_parquet(tmp_path / "local" / "configs.parquet"))


def test_backend_ray_without_ray_says_how_to_install(tmp_path):
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    # as if Ray were not installed: `import ray` fails the way a missing module does
    (shadow / "ray.py").write_text("raise ModuleNotFoundError(\"No module named 'ray'\", name='ray')\n")
    env = dict(os.environ, PYTHONPATH=str(shadow))
    proc = cli("grid", QUICK, "--out", tmp_path / "out", "--backend", "ray", env=env)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: --backend ray: Ray is not installed; install it with pip install 'blis-sweep[ray]'"]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", ["grid", "capacity"])
@pytest.mark.parametrize("args, message", [
    (["--backend", "spark"], "error: --backend: unknown backend 'spark' (allowed: local, ray)"),
    (["--address", "auto"], "error: --address: only with --backend ray"),
    (["--workers", "2"], "error: --workers: only with --backend ray"),
])
def test_bad_backend_flags_are_one_line_errors(tmp_path, command, args, message):
    proc = cli(command, QUICK, "--out", tmp_path / "out", *args)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [message]
    assert not (tmp_path / "out").exists()


def test_more_workers_than_cluster_cpus_is_an_error(ray_cluster, tmp_path):
    proc = cli("grid", QUICK, "--out", tmp_path / "out", "--backend", "ray", "--address", ray_cluster,
               "--workers", "3")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [(
        "error: --workers 3: the Ray cluster has 2 CPUs (use at most 2)")]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("address, message", [
    ("127.0.0.1:9", "error: --address 127.0.0.1:9: no Ray head reachable there (Connection refused); "
                    "start one with `ray start --head` and pass the address it prints"),
    ("nonsense", "error: --address nonsense: expected auto or HOST:PORT of the Ray head (e.g. 10.0.0.5:6379)"),
])
def test_unreachable_address_is_a_one_line_error(ray_module, tmp_path, address, message):
    proc = cli("grid", QUICK, "--out", tmp_path / "out", "--backend", "ray", "--address", address)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [message]
    assert not (tmp_path / "out").exists()


CAPACITY_SPEC = """\
name: tiny_cap
base:
  model: meta-llama/llama-3.1-8b-instruct
  hardware: H100
  latency_model: roofline
  workload:
    distribution: {prompt_tokens: 256, prompt_tokens_stdev: 128, prompt_tokens_min: 2, prompt_tokens_max: 1024,
                   output_tokens: 64, output_tokens_stdev: 32, output_tokens_min: 1, output_tokens_max: 256}
  num_requests: 200
axes:
  tp: [1, 2]
  max_num_running_reqs: [16, 256]
replicates: 2
slo:
  ttft_p99_ms: 200
search:
  tolerance: 0.1
  start_rate: 8
  max_requests: 400
"""


def test_capacity_search_on_ray_equals_local(ray_cluster, tmp_path):
    from blis_sweep.sweep.capacity import run_capacity

    spec = tmp_path / "tiny_cap.yaml"
    spec.write_text(CAPACITY_SPEC)
    local = run_capacity(spec, out=tmp_path / "local", quiet=True)
    proc = cli("capacity", spec, "--out", tmp_path / "ray", "--backend", "ray", "--address", ray_cluster, "-q")
    assert proc.returncode == 0, proc.stderr
    got = pl.read_parquet(tmp_path / "ray" / "capacity.parquet")
    assert local.rounds > 3 and got.height == 4
    assert got.equals(pl.read_parquet(tmp_path / "local" / "capacity.parquet"))
    for path in sorted((tmp_path / "local" / "probes").glob("round-*.parquet")):  # every probe of every round
        assert pl.read_parquet(tmp_path / "ray" / "probes" / path.name).equals(pl.read_parquet(path)), path.name
