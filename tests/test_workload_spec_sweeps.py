"""Workload specs in sweep files: `workload: {spec: ...}`, axes reaching into the spec, per-SLO-class results."""
import io
import json
import subprocess
import textwrap

import polars as pl
import pytest

from blis_sweep.errors import BlisError
from blis_sweep.sweep.run import run_grid
from blis_sweep.sweep.spec import load_grid_spec
from blis_sweep.sweep.resolve import Resolver
from blis_sweep.reference.command import run_reference
from tests.parity_cases import parse_metric_blocks

MIX = """\
seed: 5
aggregate_rate: 8
horizon: 20000000
clients:
- tenant_id: chat
  slo_class: realtime
  rate_fraction: {chat}
  arrival: {{process: gamma, cv: 1.0}}
  input_distribution: {{type: gaussian, params: {{mean: 200, std_dev: 80, min: 10, max: 800}}}}
  output_distribution: {{type: exponential, params: {{mean: 60}}}}
  prefix_group: sys
- tenant_id: docs
  slo_class: batch
  rate_fraction: {batch}
  arrival: {{process: weibull, cv: 1.0}}
  input_distribution: {{type: gaussian, params: {{mean: 900, std_dev: 200, min: 100, max: 2000}}}}
  output_distribution: {{type: gaussian, params: {{mean: 100, std_dev: 30, min: 10, max: 200}}}}
"""

SWEEP = """\
name: mixes
base:
  model: meta-llama/llama-3.1-8b-instruct
  hardware: H100
  latency_model: blackbox
  total_kv_blocks: 4000
  workload: {spec: chat.yaml}
  horizon: 20000000
axes:
  workload: [{spec: chat.yaml}, {spec: batch.yaml}]
  workload.spec.clients.0.arrival.cv: [0.5, 2.0, 4.0]
  workload.spec.clients.1.arrival.cv: [0.5, 2.0, 4.0]
zip: [[workload.spec.clients.0.arrival.cv, workload.spec.clients.1.arrival.cv]]
seeds: [5, 6]
slo:
  realtime: {ttft_p99_ms: 150}
  batch: {e2e_p99_ms: 20000, ttft_p90_ms: 2000}
"""


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("specsweep")
    (d / "chat.yaml").write_text(MIX.format(chat=0.7, batch=0.3))
    (d / "batch.yaml").write_text(MIX.format(chat=0.3, batch=0.7))
    (d / "sweep.yaml").write_text(SWEEP)
    return d


@pytest.fixture(scope="module")
def grid_results(sweep_dir):
    proc = subprocess.run(["blis-sweep", "grid", "sweep.yaml", "--out", "out", "--requests", "--quiet"],
                          cwd=sweep_dir, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    return (pl.read_parquet(sweep_dir / "out" / "configs.parquet"),
            pl.read_parquet(sweep_dir / "out" / "requests.parquet"))


def test_two_mixes_by_three_burstiness_levels_with_per_class_columns(grid_results):
    configs, _ = grid_results
    assert configs.height == 2 * 3 * 2
    assert configs["workload"].unique().to_list() == ["spec"]
    sets = {json.loads(s)["clients.0.arrival.cv"] for s in configs["workload_spec_set"]}
    assert sets == {0.5, 2.0, 4.0}
    for row in configs.to_dicts():
        assert row["realtime_requests"] > 0 and row["batch_requests"] > 0 and row["interactive_requests"] == 0
        assert row["interactive_ttft_p99_ms"] is None  # no request of that class
        for cls in ("realtime", "batch"):
            assert row[f"{cls}_ttft_p50_ms"] <= row[f"{cls}_ttft_p90_ms"] <= row[f"{cls}_ttft_p99_ms"]
            assert 0.0 <= row[f"{cls}_slo_attainment"] <= 1.0
        assert row["realtime_slo_met"] == (row["realtime_ttft_p99_ms"] <= 150)
        assert row["batch_slo_met"] == (row["batch_e2e_p99_ms"] <= 20000 and row["batch_ttft_p90_ms"] <= 2000)


def test_burstier_arrivals_hurt_the_realtime_class(grid_results):
    configs, _ = grid_results
    p99 = (configs.with_columns(cv=pl.col("workload_spec_set").map_elements(
        lambda s: json.loads(s)["clients.0.arrival.cv"], return_dtype=pl.Float64))
        .group_by("cv").agg(pl.col("realtime_ttft_p99_ms").mean()).sort("cv"))["realtime_ttft_p99_ms"].to_list()
    assert p99[0] < p99[-1]


def test_requests_carry_class_and_tenant_and_class_rows_agree(grid_results):
    configs, requests = grid_results
    pairs = set(requests.select("slo_class", "tenant_id").unique().iter_rows())
    assert pairs == {("realtime", "chat"), ("batch", "docs")}
    per_config = requests.group_by("config_id").agg(pl.len().alias("n"))
    counts = dict(zip(configs["config_id"], configs["num_requests"]))
    assert all(counts[c] == n for c, n in per_config.iter_rows())


def test_grid_row_equals_run_with_the_same_spec(sweep_dir, grid_results):
    """Seed 5 is the spec's own seed and no axis changes the rate: the row is `run --workload-spec`."""
    configs, _ = grid_results
    row = configs.filter((pl.col("seed") == 5) & pl.col("workload_spec").str.ends_with("chat.yaml")
                         & (pl.col("workload_spec_set") == json.dumps(
                             {"clients.0.arrival.cv": 2.0, "clients.1.arrival.cv": 2.0}, sort_keys=True))).row(0, named=True)
    text = MIX.format(chat=0.7, batch=0.3).replace("cv: 1.0", "cv: 2.0")
    (sweep_dir / "run_spec.yaml").write_text(text)
    argv = ["--workload-spec", "run_spec.yaml", "--model", "meta-llama/llama-3.1-8b-instruct", "--hardware", "H100",
            "--tp", "1", "--total-kv-blocks", "4000", "--seed", "5", "--horizon", "20000000"]
    out = io.StringIO()
    assert run_reference(argv, cwd=sweep_dir, out=out, err=io.StringIO()) == 0
    (block,) = parse_metric_blocks(out.getvalue())
    for key in ("completed_requests", "total_input_tokens", "total_output_tokens", "e2e_p99_ms", "ttft_mean_ms",
                "itl_p99_ms", "scheduling_delay_p99_ms"):
        assert block[key] == row[key], key


def test_rate_replaces_the_aggregate_rate_and_num_requests_sets_the_run_length(tmp_path):
    """The spec says 20 s; without a sweep horizon the run is num_requests / rate seconds instead."""
    (tmp_path / "chat.yaml").write_text(MIX.format(chat=1, batch=1))
    (tmp_path / "sweep.yaml").write_text(textwrap.dedent("""\
        name: rates
        base: {model: meta-llama/llama-3.1-8b-instruct, hardware: H100, latency_model: blackbox,
               total_kv_blocks: 4000, workload: {spec: chat.yaml}, num_requests: 300}
        axes: {rate: [2, 16]}
        """))
    run_grid(tmp_path / "sweep.yaml", out=tmp_path / "out", quiet=True, requests=True)
    rows = pl.read_parquet(tmp_path / "out" / "configs.parquet").sort("rate")
    assert rows["rate"].to_list() == [2.0, 16.0]
    assert all(200 < n < 400 for n in rows["num_requests"])  # about 300 at either rate
    last = (pl.read_parquet(tmp_path / "out" / "requests.parquet").group_by("config_id")
            .agg(pl.col("arrival_us").max()).sort("config_id")["arrival_us"].to_list())
    ids = rows["config_id"].to_list()
    assert last[ids[0]] <= 150_000_000 and last[ids[1]] <= 300 / 16 * 1e6  # within num_requests / rate


@pytest.mark.parametrize("axis, values, expected", [
    ("workload.spec.clients.0.rate_fraction", "[0.5, -1]", "rate_fraction: must be a finite number > 0"),
    ("workload.spec.clients.1.arrival.cv", "[0.5, 20]", "weibull cv must be in [0.01, 10.4]"),
    ("workload.spec.clients.5.rate_fraction", "[1]", "has no item 5"),
    ("workload.spec.clients.0.arival.cv", "[1]", "clients[0].arival: unknown field"),
])
def test_bad_spec_settings_fail_before_simulating(tmp_path, axis, values, expected):
    (tmp_path / "chat.yaml").write_text(MIX.format(chat=1, batch=1))
    (tmp_path / "sweep.yaml").write_text(
        "name: bad\nbase: {model: meta-llama/llama-3.1-8b-instruct, hardware: H100, latency_model: blackbox,\n"
        "       total_kv_blocks: 4000, workload: {spec: chat.yaml}}\n"
        f"axes:\n  {axis}: {values}\n")
    with pytest.raises(BlisError) as exc:
        Resolver(load_grid_spec(tmp_path / "sweep.yaml")).validate()
    message = str(exc.value)
    assert expected in message and "\n" not in message
    assert message.startswith(f"{tmp_path / 'sweep.yaml'}:")


def test_unknown_class_bound_is_refused(tmp_path):
    (tmp_path / "chat.yaml").write_text(MIX.format(chat=1, batch=1))
    (tmp_path / "sweep.yaml").write_text(
        "name: bad\nbase: {model: meta-llama/llama-3.1-8b-instruct, hardware: H100, workload: {spec: chat.yaml}}\n"
        "slo:\n  realtime: {ttft_p95_ms: 100}\n")
    with pytest.raises(BlisError, match=r"sweep.yaml:4: slo.realtime: ttft_p95_ms: unknown per-class bound"):
        load_grid_spec(tmp_path / "sweep.yaml")
