"""`grid` runs: exactness against engine.simulate, chunking, resume, atomic files, outputs."""
from __future__ import annotations

import json
import math
import os
import textwrap

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from blis_sweep import engine
from blis_sweep.sweep import io as grid_io
from blis_sweep.errors import BlisError
from blis_sweep.sweep.resolve import with_arrivals
from blis_sweep.sweep.run import CONFIGS_SCHEMA, chunk_file, run_grid
from blis_sweep.data.hardware import gpu_calib
from blis_sweep.kernels.layout import METRIC_COLUMNS
from blis_sweep.data.model_config import auto_kv_blocks, load_model_config, roofline_params
from blis_sweep.data.paths import REPO_ROOT, model_config_dir_for
from blis_sweep.sim_config import INT64_MAX, SCHEDULER_NAMES, SimConfig
from blis_sweep.workloads.requests import distribution_workload, preset_workload

LLAMA = "meta-llama/llama-3.1-8b-instruct"
DIST = dict(prefix_tokens=16, prompt_mean=128, prompt_std=64, prompt_min=2, prompt_max=512, output_mean=32,
            output_std=16, output_min=1, output_max=128)

SWEEP = f"""\
name: tiny
base:
  model: {LLAMA}
  hardware: H100
  latency_model: roofline
  workload:
    distribution: {{prefix_tokens: 16, prompt_tokens: 128, prompt_tokens_stdev: 64, prompt_tokens_min: 2,
                   prompt_tokens_max: 512, output_tokens: 32, output_tokens_stdev: 16, output_tokens_min: 1,
                   output_tokens_max: 128}}
  num_requests: 40
  rate: 20
axes:
  tp: [1, 2]
  rate: [20, 400]
  arrival: [constant, poisson]
  scheduler: [fcfs, sjf]
replicates: 2
chunk_size: 12
slo: {{ttft_p99_ms: 100}}
"""


def write(tmp_path, text=SWEEP, name="tiny.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("grid")
    summary = run_grid(write(tmp), out=tmp / "out", requests=True, quiet=True)
    return summary, pl.read_parquet(tmp / "out" / "configs.parquet"), tmp


def _same(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return (math.isnan(a) and math.isnan(b)) if isinstance(a, float) and math.isnan(a) else a == b


def test_rows_equal_engine_simulate_on_the_same_config(tiny_run):
    summary, df, _ = tiny_run
    assert summary.num_configs == 32 and df.height == 32 and summary.num_chunks == 3
    assert df["config_id"].to_list() == list(range(32))
    mc = load_model_config(model_config_dir_for(LLAMA))
    h100 = gpu_calib("H100")
    for row in df.iter_rows(named=True):
        tp = row["tp"]
        cfg = SimConfig(total_kv_blocks=auto_kv_blocks(mc, 80, tp, 16), roofline=roofline_params(mc, h100, tp),
                        scheduler=SCHEDULER_NAMES[row["scheduler"]], seed=row["seed"])
        wl = distribution_workload(row["rate"], 40, seed=row["seed"], arrival=row["arrival"], **DIST)
        block = engine.simulate([cfg], [wl], [0]).cluster[0]
        for name in METRIC_COLUMNS:
            expected = float(block[name])
            got = row[name]
            expected = None if math.isnan(expected) else expected
            assert _same(None if got is None else float(got), expected), (row["config_id"], name)
    assert df["seed"].to_list()[:4] == [42, 43, 42, 43] and df["replicate"].to_list()[:2] == [0, 1]
    assert (df["point_id"] == df["config_id"] // 2).all()


def test_rate_only_workloads_match_direct_generation():
    base = preset_workload("chatbot", 1.0, 60, seed=9)
    for rate, arrival, horizon in [(7.0, "constant", INT64_MAX), (300.0, "poisson", INT64_MAX),
                                   (5.0, "constant", 3_000_000), (50.0, "poisson", 400_000)]:
        got = with_arrivals(base, rate, arrival, horizon, 9)
        want = preset_workload("chatbot", rate, 60, seed=9, horizon=horizon, arrival=arrival)
        assert got.num_requests == want.num_requests
        for field in ("arrival_ticks", "input_len", "output_len", "seq_offset", "prefix_hash", "id_rank"):
            assert np.array_equal(getattr(got, field), getattr(want, field)), (rate, arrival, horizon, field)
        assert got.rate_per_s == want.rate_per_s


def test_outputs_manifest_sweep_and_requests(tiny_run):
    summary, df, tmp = tiny_run
    out = tmp / "out"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["num_configs"] == 32
    assert manifest["spec_hash"] == summary.spec_hash and manifest["seeds"] == [42, 43]
    for key in ("python", "numpy", "numba", "polars", "pyarrow", "blis-sweep"):
        assert key in manifest["versions"]
    assert manifest["compile_s"] >= 0 and manifest["wall_s"] >= manifest["compile_s"]
    assert "spec hash" in (out / "sweep.yaml").read_text()
    assert pl.read_parquet(out / "configs.parquet").schema.names() == CONFIGS_SCHEMA.names
    assert not df["infeasible"].any() and df["total_kv_blocks"].min() > 0

    req = pl.read_parquet(out / "requests.parquet")
    assert req.height == 32 * 40
    one = req.filter(pl.col("config_id") == 5)
    row = df.row(5, named=True)
    e2e = one.filter(pl.col("completed"))["e2e_ms"].to_numpy()
    assert len(e2e) == row["completed_requests"]
    # the kernel's percentiles interpolate linearly between ranks, like numpy's default
    assert np.percentile(e2e, 99) == pytest.approx(row["e2e_p99_ms"], rel=1e-12)
    assert one["ttft_ms"].drop_nulls().mean() == pytest.approx(row["ttft_mean_ms"], rel=1e-9)
    assert one["arrival_us"].is_sorted() and one["request_id"].to_list() == list(range(40))


def test_saturation_shows_in_window_throughput(tiny_run):
    _, df, _ = tiny_run
    low = df.filter(pl.col("rate") == 20)
    high = df.filter((pl.col("rate") == 400) & (pl.col("arrival") == "constant") & (pl.col("tp") == 1))
    # 40-request runs leave a steady window of a few dozen requests: judge by the backlog verdict,
    # and by the achieved/offered ratio averaged over the runs
    assert (low["verdict"] == "stable").all() and abs(low["achieved_ratio"].mean() - 1) < 0.1
    assert (high["verdict"] == "overloaded").all() and high["achieved_ratio"].max() < 0.9
    assert (df["offered_rps"] > 0).all()
    assert (df["warmup_requests"] + df["cooldown_requests"] + df["steady_requests"] == df["num_requests"]).all()


def test_resume_skips_finished_chunks(tmp_path):
    spec = write(tmp_path)
    out = tmp_path / "out"
    first = run_grid(spec, out=out, quiet=True)
    assert (first.chunks_run, first.chunks_skipped) == (3, 0)
    before = pl.read_parquet(out / "configs.parquet")
    kept = chunk_file(out, "configs", 0)
    stamp = kept.stat().st_mtime_ns
    chunk_file(out, "configs", 1).unlink()
    (out / "configs.parquet").unlink()
    again = run_grid(spec, out=out, quiet=True)
    assert (again.chunks_run, again.chunks_skipped, again.simulated_configs) == (1, 2, 12)
    assert kept.stat().st_mtime_ns == stamp
    assert pl.read_parquet(out / "configs.parquet").equals(before)
    assert len(json.loads((out / "manifest.json").read_text())["invocations"]) == 2
    done = run_grid(spec, out=out, quiet=True)
    assert done.chunks_run == 0 and done.chunks_skipped == 3
    # the SLO and the description do not change what is simulated: still the same run
    edited = write(tmp_path, SWEEP.replace("ttft_p99_ms: 100", "ttft_p99_ms: 50") + "description: new\n")
    assert run_grid(edited, out=out, quiet=True).chunks_run == 0
    assert json.loads((out / "manifest.json").read_text())["slo"] == {"ttft_p99_ms": 50.0}


def test_interrupted_run_leaves_complete_chunks_and_resumes(tmp_path, monkeypatch):
    spec = write(tmp_path)
    out = tmp_path / "out"
    real = engine.simulate
    calls = {"n": 0}

    def flaky(configs, *args, **kwargs):
        calls["n"] += 1
        if len(configs) > 1 and calls["n"] > 2:  # warm-up call, chunk 0, then die in chunk 1
            raise KeyboardInterrupt
        return real(configs, *args, **kwargs)

    monkeypatch.setattr(engine, "simulate", flaky)
    with pytest.raises(KeyboardInterrupt):
        run_grid(spec, out=out, quiet=True)
    files = sorted(p.name for p in (out / "chunks").iterdir())
    assert files == ["configs-00000.parquet"]
    assert not (out / "configs.parquet").exists()
    assert json.loads((out / "manifest.json").read_text())["status"] == "interrupted"
    monkeypatch.setattr(engine, "simulate", real)
    summary = run_grid(spec, out=out, quiet=True)
    assert (summary.chunks_run, summary.chunks_skipped) == (2, 1)
    assert pl.read_parquet(out / "configs.parquet").height == 32


def test_changed_spec_in_same_dir_needs_overwrite(tmp_path):
    out = tmp_path / "out"
    run_grid(write(tmp_path), out=out, quiet=True)
    changed = write(tmp_path, SWEEP.replace("rate: [20, 400]", "rate: [20, 300]"), "changed.yaml")
    with pytest.raises(BlisError, match=r"holds results of a different sweep .* use another --out or --overwrite"):
        run_grid(changed, out=out, quiet=True)
    with pytest.raises(BlisError, match="re-run with the same options"):
        run_grid(write(tmp_path), out=out, quiet=True, requests=True)
    summary = run_grid(changed, out=out, quiet=True, overwrite=True)
    assert summary.chunks_run == 3
    assert sorted(pl.read_parquet(out / "configs.parquet")["rate"].unique().to_list()) == [20.0, 300.0]


def test_unwritable_output_fails_before_simulating(tmp_path, monkeypatch):
    monkeypatch.setattr(engine, "simulate", lambda *a, **k: pytest.fail("simulated before checking --out"))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(BlisError, match="not a directory"):
        run_grid(write(tmp_path), out=blocker, quiet=True)
    with pytest.raises(BlisError, match="is not writable"):
        run_grid(write(tmp_path), out=blocker / "sub", quiet=True)


def test_bad_spec_fails_before_touching_output(tmp_path):
    bad = write(tmp_path, SWEEP.replace("scheduler: [fcfs, sjf]", "scheduler: [fcfs, fifo]"))
    with pytest.raises(BlisError, match=r"tiny.yaml:\d+: axes.scheduler.1: unknown value 'fifo'"):
        run_grid(bad, out=tmp_path / "out", quiet=True)
    assert not (tmp_path / "out").exists()


def test_atomic_write_leaves_no_partial_file(tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    target = tmp_path / "x.parquet"
    table = pa.table({"a": [1, 2, 3]})
    grid_io.write_parquet_atomic(target, table)
    real = pq.write_table

    def broken(tbl, where, **kw):
        real(tbl, where, **kw)
        with open(where, "ab") as fh:  # a partially written file, then the writer dies
            fh.write(b"garbage")
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", broken)
    with pytest.raises(OSError, match="disk full"):
        grid_io.write_parquet_atomic(target, pa.table({"a": [9]}))
    with pytest.raises(OSError):
        grid_io.write_parquet_atomic(tmp_path / "new.parquet", table)
    assert sorted(os.listdir(tmp_path)) == ["x.parquet"]  # no temp files, no partial new file
    assert pq.read_table(target)["a"].to_pylist() == [1, 2, 3]  # the old file is intact


def test_infeasible_configs_are_rows_with_null_metrics(tmp_path):
    text = f"""\
        name: fit
        base:
          model: meta-llama/llama-3.1-70b-instruct
          hardware: L40S
          workload: {{preset: chatbot}}
          num_requests: 8
          rate: 5
        axes:
          tp: [1, 4]
        """
    summary = run_grid(write(tmp_path, text, "fit.yaml"), out=tmp_path / "out", quiet=True)
    df = pl.read_parquet(tmp_path / "out" / "configs.parquet").sort("tp")
    assert summary.infeasible == 1 and summary.simulated_configs == 1
    bad, good = df.row(0, named=True), df.row(1, named=True)
    assert bad["infeasible"] and "GiB" in bad["infeasible_reason"] and bad["total_kv_blocks"] is None
    assert bad["completed_requests"] is None and bad["ttft_p99_ms"] is None and bad["achieved_rps"] is None
    assert not good["infeasible"] and good["completed_requests"] == 8


def test_cli_commands(tmp_path):
    import typer

    from blis_sweep.sweep import cli as grid_cli

    app = typer.Typer()
    grid_cli.register(app)
    runner = CliRunner()
    out = tmp_path / "q"
    res = runner.invoke(app, ["grid", str(REPO_ROOT / "sweeps" / "quick.yaml"), "--out", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["curves", str(out), "--slo", "ttft_p99_ms=150", "--top", "3"])
    assert res.exit_code == 0, res.output
    assert "sat. rate" in res.output and (out / "curves.parquet").exists()
    assert "ttft_p99_ms <= 150" in res.output


def test_example_sweeps_validate():
    from blis_sweep.sweep.resolve import Resolver
    from blis_sweep.sweep.spec import load_grid_spec

    sizes = {}
    from blis_sweep.sweep.capacity import load_capacity_spec

    for path in sorted((REPO_ROOT / "sweeps").glob("*.yaml")):
        spec = load_grid_spec(path)
        if spec.search is not None:  # a `capacity` sweep: no rate, a search: block
            spec = load_capacity_spec(path)[0]
        Resolver(spec).validate()
        sizes[path.stem] = spec.num_configs
    assert sizes["h100_tp"] >= 1000 and 15 <= sizes["quick"] <= 30 and "blackbox_llama" in sizes


def test_trace_workload_and_horizon_rows_equal_engine_simulate(tmp_path):
    from blis_sweep.workloads.requests import read_trace

    trace = REPO_ROOT / "tests" / "data" / "parity" / "v01_single_chat_prefix" / "trace.csv.gz"
    text = f"""\
        name: tr
        base:
          model: {LLAMA}
          hardware: H100
          latency_model: blackbox
          tp: 2
          workload: {{trace: {trace}}}
        axes:
          max_num_running_reqs: [4, 64]
          horizon: [null, 5000000]
        """
    run_grid(write(tmp_path, text, "tr.yaml"), out=tmp_path / "out", quiet=True, requests=True)
    df = pl.read_parquet(tmp_path / "out" / "configs.parquet")
    req = pl.read_parquet(tmp_path / "out" / "requests.parquet")
    wl = read_trace(trace)
    dep = next(r for r in df.iter_rows(named=True))
    for row in df.iter_rows(named=True):
        assert row["workload"] == "trace" and row["rate"] is None and row["num_requests"] == wl.num_requests
        cfg = SimConfig(total_kv_blocks=dep["total_kv_blocks"], alpha_coeffs=tuple(dep["alpha_coeffs"]),
                        beta_coeffs=tuple(dep["beta_coeffs"]), max_running_reqs=row["max_num_running_reqs"],
                        horizon=INT64_MAX if row["horizon"] is None else row["horizon"])
        block = engine.simulate([cfg], [wl], [0]).cluster[0]
        for name in ("completed_requests", "ttft_p99_ms", "e2e_mean_ms", "tpot_p99_ms", "preemptions"):
            assert _same(float(row[name]), float(block[name])), name
        n = req.filter(pl.col("config_id") == row["config_id"]).height
        assert n == (wl.num_requests if row["horizon"] is None else int((wl.arrival_ticks <= 5_000_000).sum()))
