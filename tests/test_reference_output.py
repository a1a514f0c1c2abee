"""Byte-level formatting of what the reference prints and writes."""
from __future__ import annotations

import csv
import json
import math
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from blis_sweep.reference.fitness import fitness_score, parse_fitness_weights
from blis_sweep.go.format import go_float, go_fmt_f, go_fmt_v, go_json_string, go_quote
from blis_sweep.reference.output import (
    METRICS_FIELDS,
    RequestResults,
    anomaly_block,
    fitness_block,
    metrics_block,
    results_file_json,
    save_results_output,
    trace_summary_block,
)

PARITY = Path(__file__).parent / "data" / "parity"
CASES = sorted(PARITY.glob("*/case.json"))
START, END = "2026-02-17 10:00:00", "2026-02-17 10:00:02"


def load_case(name: str) -> dict:
    return json.loads((PARITY / name / "case.json").read_text())


# ------------------------------------------------------------------ go_float

@pytest.mark.parametrize("value, text", [
    (0.0, "0"), (-0.0, "-0"), (1.0, "1"), (2013.0, "2013"), (0.1, "0.1"), (-2.5, "-2.5"),
    (1e-6, "0.000001"), (9.99e-7, "9.99e-7"), (1e-7, "1e-7"), (1.5e-10, "1.5e-10"), (5e-324, "5e-324"),
    (1e20, "100000000000000000000"), (1e21, "1e+21"), (1.2345e22, "1.2345e+22"), (-1e21, "-1e+21"),
    (1.7976931348623157e308, "1.7976931348623157e+308"),
    (123456789.125, "123456789.125"), (9.262602196376442, "9.262602196376442"),
    (12.602689999999999, "12.602689999999999"), (2874.874, "2874.874"), (100.0, "100"),
    (0.000123, "0.000123"), (1e16, "10000000000000000"), (123456789012345680.0, "123456789012345680"),
])
def test_go_float_matches_encoding_json(value, text):
    assert go_float(value) == text


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_go_float_refuses_non_finite(value):
    with pytest.raises(ValueError, match="unsupported value"):
        go_float(value)


def test_go_float_round_trips_random_values():
    rng = np.random.default_rng(1)
    values = np.concatenate([rng.standard_normal(2000) * 10.0 ** rng.integers(-12, 25, 2000),
                             rng.integers(-10**9, 10**9, 500).astype(float)])
    for v in values:
        text = go_float(v)
        assert float(text) == v
        assert "e" not in text if 1e-6 <= abs(v) < 1e21 else "e" in text
        assert not text.endswith(".0")


def test_go_fmt_helpers():
    assert go_fmt_f(0.1134234) == "0.113423"
    assert go_fmt_f(0.5, 0) == "0"  # half to even, like Go
    assert go_fmt_f(math.nan) == "NaN" and go_fmt_f(math.inf) == "+Inf" and go_fmt_f(-math.inf) == "-Inf"
    assert go_fmt_v(1e6) == "1e+06" and go_fmt_v(123456.0) == "123456" and go_fmt_v(0.00001) == "1e-05"
    assert go_fmt_v(math.nan) == "NaN" and go_fmt_v(0.6) == "0.6"
    assert go_quote('we"ird\n\x01') == '"we\\"ird\\n\\x01"'
    assert go_json_string("a<b>&\"\\\n\x01") == '"a\\u003cb\\u003e\\u0026\\"\\\\\\n\\u0001"'


# ------------------------------------------------------------------ metrics block

@pytest.mark.parametrize("case_path", CASES, ids=lambda p: p.parent.name)
def test_metrics_blocks_round_trip_reference_values(case_path):
    case = json.loads(case_path.read_text())
    for m in case["metrics"]:
        text = metrics_block(m["instance_id"], m, START, END, 0.25)
        header, body = text.split("\n", 1)
        assert header == "=== Simulation Metrics ==="
        assert body.endswith("}\n")
        parsed = json.loads(body)
        for key, value in m.items():
            assert parsed[key] == value and type(parsed[key]) is type(value), key
            if isinstance(value, float):  # same spelling as the reference's JSON
                assert f'"{key}": {json.dumps(value)}' in body or json.dumps(value).endswith(".0")


def test_metrics_block_layout():
    m = load_case("v06_defaults_lookup")["metrics"][0]
    text = metrics_block("cluster", m, datetime(2026, 2, 17, 9, 5, 3), END, 1.5)
    lines = text.split("\n")
    assert lines[:4] == ["=== Simulation Metrics ===", "{", '  "instance_id": "cluster",',
                         '  "sim_start_timestamp": "2026-02-17 09:05:03",']
    keys = [line.split('"')[1] for line in lines[2:-2]]
    assert keys == ["instance_id", "sim_start_timestamp", "sim_end_timestamp"] + [k for k, _ in METRICS_FIELDS]
    assert '  "completed_requests": 150,' in lines
    assert '  "simulation_duration_s": 1.5,' in lines
    assert '  "vllm_estimated_duration_s": 12.590017,' in lines
    assert lines[-3] == '  "scheduling_delay_p99_ms": 12.602689999999999'
    assert lines[-2:] == ["}", ""]


def test_metrics_block_with_infinite_value_prints_go_error():
    m = {"completed_requests": 3, "responses_per_sec": math.inf}
    assert metrics_block("cluster", m, START, END, 0.1) == (
        "=== Simulation Metrics ===\nError marshalling: json: unsupported value: +Inf\n")


# ------------------------------------------------------------------ results file

def requests_from_csv(name: str) -> tuple[RequestResults, list[dict]]:
    rows = list(csv.DictReader((PARITY / name / "requests.csv").open()))
    n = max(int(r["request_id"].split("_")[1]) for r in rows) + 1
    arrays = {k: np.zeros(n, dtype=np.int64) for k in ("arrival", "inp", "out", "ttft", "e2e", "sched")}
    itl = np.zeros(n)
    has_ttft = np.zeros(n, dtype=bool)
    completed = np.zeros(n, dtype=bool)
    for r in rows:
        i = int(r["request_id"].split("_")[1])
        arrays["arrival"][i] = round(float(r["arrived_at"]) * 1e6)
        arrays["inp"][i], arrays["out"][i] = int(r["num_prefill_tokens"]), int(r["num_decode_tokens"])
        arrays["ttft"][i] = round(float(r["ttft_ms"]) * 1e3)
        arrays["e2e"][i] = round(float(r["e2e_ms"]) * 1e3)
        arrays["sched"][i] = int(r["scheduling_delay_us"])
        itl[i] = float(r["itl_us_per_token"])
        has_ttft[i] = True
        completed[i] = float(r["e2e_ms"]) > 0
    # requests that never produced a first token carry junk the file must ignore
    missing = ~has_ttft
    arrays["ttft"][missing], arrays["e2e"][missing], itl[missing] = 7, 9, 3.0
    req = RequestResults(arrays["arrival"], arrays["inp"], arrays["out"], arrays["ttft"], arrays["e2e"], itl,
                         arrays["sched"], has_ttft, completed)
    return req, rows


@pytest.mark.parametrize("name", ["v18_horizon_cut", "v13_cluster_always_busiest_fitness_trace"])
def test_results_file_records_match_reference_csv(name):
    req, rows = requests_from_csv(name)
    m = load_case(name)["metrics"][-1]
    text = results_file_json("cluster", m, req, START, END, 0.5)
    assert not text.endswith("\n")
    data = json.loads(text)
    records = data.pop("requests")
    assert data["completed_requests"] == m["completed_requests"]
    assert len(records) == len(rows)
    assert [r["arrived_at"] for r in records] == sorted(r["arrived_at"] for r in records)
    by_id = {r["request_id"]: r for r in rows}
    for rec in records:
        assert list(rec) == ["arrived_at", "requestID", "num_prefill_tokens", "num_decode_tokens",
                             "ttft_ms", "itl_ms", "e2e_ms", "scheduling_delay_ms"]
        ref = by_id[rec["requestID"]]
        assert rec["arrived_at"] == float(ref["arrived_at"])
        assert rec["num_prefill_tokens"] == int(ref["num_prefill_tokens"])
        assert rec["num_decode_tokens"] == int(ref["num_decode_tokens"])
        assert rec["ttft_ms"] == float(ref["ttft_ms"]) and rec["e2e_ms"] == float(ref["e2e_ms"])
        assert rec["itl_ms"] == float(ref["itl_us_per_token"])
        assert rec["scheduling_delay_ms"] == float(ref["scheduling_delay_us"])


def test_results_file_nested_layout_and_omitempty():
    req = RequestResults(np.array([2_000_000, 1_500]), np.array([5, 6]), np.array([1, 2]), np.array([1500, 2000]),
                         np.array([4000, 0]), np.array([250.5, 0.0]), np.array([10, 20]),
                         np.array([True, True]), np.array([True, False]))
    text = results_file_json("cluster", {"completed_requests": 1}, req, START, END, 0.5)
    tail = text[text.index('  "requests"'):]
    assert tail == (
        '  "requests": [\n'
        '    {\n'
        '      "arrived_at": 0.0015,\n'
        '      "requestID": "request_1",\n'
        '      "num_prefill_tokens": 6,\n'
        '      "num_decode_tokens": 2,\n'
        '      "ttft_ms": 2,\n'
        '      "itl_ms": 0,\n'
        '      "e2e_ms": 0,\n'
        '      "scheduling_delay_ms": 20\n'
        '    },\n'
        '    {\n'
        '      "arrived_at": 2,\n'
        '      "requestID": "request_0",\n'
        '      "num_prefill_tokens": 5,\n'
        '      "num_decode_tokens": 1,\n'
        '      "ttft_ms": 1.5,\n'
        '      "itl_ms": 250.5,\n'
        '      "e2e_ms": 4,\n'
        '      "scheduling_delay_ms": 10\n'
        '    }\n'
        '  ]\n'
        '}')
    none = RequestResults(*(np.zeros(1, dtype=np.int64) for _ in range(7)), np.array([False]), np.array([False]))
    assert '"requests"' not in results_file_json("cluster", {}, none, START, END, 0.5)


def test_save_results_prints_block_only_when_something_completed():
    out, content = save_results_output("cluster", {"completed_requests": 0, "vllm_estimated_duration_s": 2.0},
                                       START, END, 0.5, results_path="out/res.json")
    assert out == "\nMetrics written to: out/res.json\n"
    assert json.loads(content)["vllm_estimated_duration_s"] == 2.0
    assert json.loads(content)["e2e_mean_ms"] == 0
    out, content = save_results_output("instance_0", {"completed_requests": 2}, START, END, 0.5)
    assert out.startswith("=== Simulation Metrics ===\n{\n") and content is None
    out, content = save_results_output("cluster", {"completed_requests": 2, "tokens_per_sec": math.inf},
                                       START, END, 0.5, results_path="r.json")
    assert out.endswith("Error marshalling: json: unsupported value: +Inf\n") and content is None


# ------------------------------------------------------------------ other blocks

def test_fitness_block_reproduces_reference_case():
    case = load_case("v13_cluster_always_busiest_fitness_trace")
    ref = case["fitness"]
    assert fitness_block(ref["score"], ref["components"]) == (
        "\n=== Fitness Evaluation ===\nScore: 0.113423\n"
        "  mean_e2e: 0.000485\n  p99_ttft: 0.050552\n  throughput: 0.196321\n")


def _percentile(sorted_values, p):
    if len(sorted_values) == 1:
        return sorted_values[0]
    rank = p / 100 * (len(sorted_values) - 1)
    lo, hi = math.floor(rank), math.ceil(rank)
    return sorted_values[lo] + (rank - lo) * (sorted_values[hi] - sorted_values[lo])


def test_fitness_score_from_raw_metrics_matches_reference():
    name = "v13_cluster_always_busiest_fitness_trace"
    case = load_case(name)
    rows = list(csv.DictReader((PARITY / name / "requests.csv").open()))
    ttft = sorted(round(float(r["ttft_ms"]) * 1e3) for r in rows)
    e2e = sorted(round(float(r["e2e_ms"]) * 1e3) for r in rows)
    cluster = case["metrics"][-1]
    raw = {"requests_per_sec": cluster["responses_per_sec"], "tokens_per_sec": cluster["tokens_per_sec"],
           "ttft_p99": _percentile(ttft, 99), "ttft_p50": _percentile(ttft, 50), "ttft_mean": sum(ttft) / len(ttft),
           "e2e_p99": _percentile(e2e, 99), "e2e_p50": _percentile(e2e, 50), "e2e_mean": sum(e2e) / len(e2e)}
    weights = parse_fitness_weights(case["flags"]["fitness-weights"])
    score, components = fitness_score(weights, raw)
    assert fitness_block(score, components) == fitness_block(case["fitness"]["score"], case["fitness"]["components"])


def test_anomaly_block():
    assert anomaly_block(0, 0, 0) == ""
    assert anomaly_block(1171, 0, 0) == (
        "\n=== Anomaly Counters ===\nPriority Inversions: 1171\nHOL Blocking Events: 0\nRejected Requests: 0\n")


def test_trace_summary_block():
    t = load_case("v13_cluster_always_busiest_fitness_trace")["trace_summary"]
    assert trace_summary_block(t["total_decisions"], t["admitted"], t["rejected"], t["target_distribution"],
                               t["mean_regret"], t["max_regret"]) == (
        "\n=== Trace Summary ===\nTotal Decisions: 200\n  Admitted: 200\n  Rejected: 0\nUnique Targets: 1\n"
        "Target Distribution:\n  instance_0: 200\nMean Regret: 37.425000\nMax Regret: 51.000000\n")
    assert "Target Distribution" not in trace_summary_block(0, 0, 0, {}, 0.0, 0.0)
    text = trace_summary_block(3, 3, 0, {"instance_10": 1, "instance_2": 2}, 0.5, 1.0)
    assert text.index("instance_10") < text.index("instance_2")  # byte order, like sort.Strings
