"""Runs in which no request completes: the results file the reference writes (zeros for every
latency and throughput metric, requests that got a first token with e2e 0), and its
"Metrics written to" line. Expected files: tests/data/no_completion/cases.json (see make_cases.py there)."""
import io
import json
import shutil
from pathlib import Path

import pytest

from blis_sweep.reference.command import run_reference
from tests.parity_cases import parse_metric_blocks, parse_sections

DATA = Path(__file__).resolve().parent / "data" / "no_completion"
CASES = json.loads((DATA / "cases.json").read_text())
WALL_CLOCK_FIELDS = {"sim_start_timestamp", "sim_end_timestamp", "simulation_duration_s"}


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_no_completion_writes_the_reference_results_file(case, tmp_path):
    shutil.copy(DATA / "trace.csv", tmp_path / "trace.csv")
    out, err = io.StringIO(), io.StringIO()
    assert run_reference(case["args"][1:] + ["--results-path", "results.json"], cwd=tmp_path, out=out,
                         err=err) == 0
    stdout = out.getvalue()
    assert parse_metric_blocks(stdout) == []  # no block when nothing completed
    assert "\nMetrics written to: results.json\n" in stdout
    assert "Error marshalling" not in stdout
    got = json.loads((tmp_path / "results.json").read_text())
    assert set(WALL_CLOCK_FIELDS) <= set(got)
    got = {k: v for k, v in got.items() if k not in WALL_CLOCK_FIELDS}
    assert got == case["expected"]
    rejected = parse_sections(stdout).get("Anomaly Counters", {}).get("Rejected Requests")
    assert int(rejected or 0) == case["rejected"]
