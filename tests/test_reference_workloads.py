"""`run` with generated workloads equals the reference: same Go math/rand draws, same results.

The cases under tests/data/reference_runs/ were produced by the reference's own `run`
(built from d25e1935 plus the four fixes) with distribution and preset workloads it
generated itself, including the all-defaults command line.
"""
import csv
import io
import json
import shutil
from pathlib import Path

import pytest

from blis_sweep.reference.command import run_reference
from tests.parity_cases import REPO, parse_metric_blocks

CASES_DIR = REPO / "tests" / "data" / "reference_runs"
CASES = sorted(p.name for p in CASES_DIR.iterdir() if (p / "case.json").exists())
WALL_CLOCK_FIELDS = {"sim_start_timestamp", "sim_end_timestamp", "simulation_duration_s"}


@pytest.fixture(scope="module", params=CASES)
def case_run(request, tmp_path_factory):
    case_dir = CASES_DIR / request.param
    case = json.loads((case_dir / "case.json").read_text())
    workdir = tmp_path_factory.mktemp(request.param)
    shutil.copy(REPO / "model_configs" / "defaults.yaml", workdir / "defaults.yaml")
    out = io.StringIO()
    argv = case["reference_cli_args"][1:] + ["--results-path", "results.json"]
    assert run_reference(argv, cwd=workdir, out=out, err=io.StringIO()) == 0
    return case_dir, case, out.getvalue(), json.loads((workdir / "results.json").read_text())


def test_metrics_blocks_equal(case_run):
    _, case, stdout, _ = case_run
    blocks = parse_metric_blocks(stdout)
    assert [b["instance_id"] for b in blocks] == [m["instance_id"] for m in case["metrics"]]
    for got, want in zip(blocks, case["metrics"]):
        for key, value in want.items():
            if key not in WALL_CLOCK_FIELDS:
                assert got[key] == value or abs(got[key] - value) <= 1e-9 * abs(value), (key, got[key], value)


def test_generated_requests_and_their_latencies_equal(case_run):
    case_dir, _, _, results = case_run
    got = {r["requestID"]: r for r in results["requests"]}
    with open(Path(case_dir) / "requests.csv", newline="") as f:
        want = list(csv.DictReader(f))
    assert sorted(got) == sorted(r["request_id"] for r in want)
    for row in want:
        g = got[row["request_id"]]
        assert g["num_prefill_tokens"] == int(row["num_prefill_tokens"])
        assert g["num_decode_tokens"] == int(row["num_decode_tokens"])
        assert g["arrived_at"] == float(row["arrived_at"])
        assert g["ttft_ms"] == float(row["ttft_ms"]) and g["e2e_ms"] == float(row["e2e_ms"]), row["request_id"]
