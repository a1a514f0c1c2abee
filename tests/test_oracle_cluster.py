"""The oracle's cluster model (tests/oracle_sim.py) against the reference and against the engine.

1. The oracle reproduces the reference's recorded cluster cases (every routing policy,
   token-bucket admission, the tiered KV cache, two workload-spec clusters): per-request
   TTFT/E2E/ITL/scheduling delay exactly, every metrics block (per instance and merged) to a
   relative 1e-9.
2. Random small clusters (1-4 instances, every routing and admission policy, admission
   and routing latencies, tiny GPU caches with a CPU tier, shared prefixes, blackbox or
   roofline step times) give the same per-request results in the engine as in the
   oracle: admission verdict, routing target, first token, completion, TTFT, E2E,
   scheduling delay, and the counters of every instance.

The engine is reached through its public entry point only (`blis_sweep.engine.simulate`).
"""
from __future__ import annotations

import csv
import dataclasses
import json

import pytest
from hypothesis import HealthCheck, given, reject, seed, settings
from hypothesis import strategies as st

from blis_sweep.engine import simulate
from blis_sweep.sim_config import (
    ADMISSION_NAMES, PRIORITY_NAMES, ROUTING_NAMES, SCHEDULER_NAMES, RooflineParams, SimConfig,
)
from blis_sweep.workloads.arrays import build_workload
from tests.oracle_sim import (
    ADMISSION_POLICIES, PRIORITY_POLICIES, ROUTING_POLICIES, SCHEDULERS, OracleConfig,
    UndefinedReferenceBehaviour, check_kv_invariants, run_oracle,
)
from tests.oracle_sim import RooflineParams as OracleRoofline
from tests.test_oracle_parity import (
    GPU_SPECS, PARITY, _close, _model_params, _parse_flags, config_from_cli, load_trace,
)

# ---------------------------------------------------------------- 1. the recorded cluster cases

CLUSTER_CASES = ["v09_cluster_round_robin", "v10_cluster_least_loaded", "v11_cluster_weighted",
                 "v12_cluster_prefix_affinity", "v13_cluster_always_busiest_fitness_trace",
                 "v14_admission_token_bucket", "v17_tiered_kv", "w04_cluster3_weighted_four_clients",
                 "w08_spec_horizon_past_run_horizon"]
_CLUSTER_FLAGS = {  # flag -> (OracleConfig field, type)
    "num-instances": ("num_instances", int), "routing-policy": ("routing_policy", str),
    "admission-policy": ("admission_policy", str), "admission-latency": ("admission_latency", int),
    "routing-latency": ("routing_latency", int), "token-bucket-capacity": ("token_bucket_capacity", float),
    "token-bucket-refill-rate": ("token_bucket_refill_rate", float),
    "routing-cache-weight": ("routing_cache_weight", float), "routing-load-weight": ("routing_load_weight", float),
    "kv-cpu-blocks": ("kv_cpu_blocks", int), "kv-offload-threshold": ("kv_offload_threshold", float),
    "kv-transfer-bandwidth": ("kv_transfer_bandwidth", float),
    "kv-transfer-base-latency": ("kv_transfer_base_latency", int),
}


def cluster_config_from_cli(args: list[str]) -> OracleConfig:
    """The single-instance resolution of test_oracle_parity plus the cluster and tier flags."""
    single, cluster = [args[0]], {}
    i = 1
    while i < len(args):
        name = args[i][2:]
        takes_value = i + 1 < len(args) and not args[i + 1].startswith("--")
        if name in _CLUSTER_FLAGS:
            field, kind = _CLUSTER_FLAGS[name]
            cluster[field] = kind(args[i + 1])
        else:
            single.extend(args[i:i + 1 + takes_value])
        i += 1 + takes_value
    return dataclasses.replace(config_from_cli(single), **cluster)


def case_requests(case_dir, cfg: OracleConfig) -> tuple[list[int], list[list[int]], list[list[int]]]:
    """A case's requests: its trace, or what its workload spec generates (the project's generator,
    itself checked request by request against the reference in tests/test_parity.py)."""
    if (case_dir / "trace.csv.gz").exists():
        return load_trace(case_dir)
    import numpy as np

    from blis_sweep.workloads.spec import load_workload_spec
    from blis_sweep.workloads.spec_gen import generate_spec_requests

    arrivals, in_len, out_len, tokens, _ = generate_spec_requests(load_workload_spec(case_dir / "workload_spec.yaml"),
                                                                  cfg.horizon)
    starts = np.concatenate([[0], np.cumsum(in_len + out_len)])
    inputs = [tokens[starts[r]:starts[r] + in_len[r]].tolist() for r in range(len(in_len))]
    outputs = [tokens[starts[r] + in_len[r]:starts[r + 1]].tolist() for r in range(len(in_len))]
    return arrivals.tolist(), inputs, outputs


def expected_requests(case_dir) -> dict[str, dict[str, float]]:
    with open(case_dir / "requests.csv", newline="") as fh:
        return {row["request_id"]: {k: float(v) for k, v in row.items()
                                    if k not in ("request_id", "slo_class", "tenant_id")}
                for row in csv.DictReader(fh)}


def compare_cluster_case(name: str) -> list[str]:
    case_dir = PARITY / name
    case = json.loads((case_dir / "case.json").read_text())
    args = case["reference_cli_args"]
    cfg = cluster_config_from_cli(args)
    res = run_oracle(*case_requests(case_dir, cfg), cfg)
    for kv in res.extra["kv_states"]:
        check_kv_invariants(dataclasses.replace(res, kv_state=kv))
    problems = []
    produced = {r["id"]: r for r in res.requests if r["first_token"]}
    expected = expected_requests(case_dir)
    if set(produced) != set(expected):
        problems.append(f"request set differs: {sorted(set(produced) ^ set(expected))[:5]}")
    for rid, exp in expected.items():
        got = produced.get(rid)
        if got is None:
            continue
        for key, value in (("ttft_ms", got["ttft"] / 1e3), ("e2e_ms", (got["e2e"] or 0) / 1e3),
                           ("scheduling_delay_us", float(got["scheduling_delay"] or 0))):
            if value != exp[key]:
                problems.append(f"{rid} {key} {value} != {exp[key]}")
        if not _close(got["itl"] or 0.0, exp["itl_us_per_token"]):
            problems.append(f"{rid} itl {got['itl']} != {exp['itl_us_per_token']}")
    for block in case["metrics"]:
        block_id = block["instance_id"]
        got_block = res.metrics if block_id == "cluster" else res.extra["instances"][int(block_id.split("_")[1])]
        for key, exp in block.items():
            if key != "instance_id" and not _close(float(got_block.get(key, float("nan"))), float(exp)):
                problems.append(f"{block_id} {key}: {got_block.get(key)} != {exp}")
    anomalies = case.get("anomalies") or {}
    for key, got in (("priority_inversions", res.metrics["priority_inversions"]),
                     ("rejected_requests", res.metrics["rejected_requests"])):
        if key in anomalies and anomalies[key] != got:
            problems.append(f"{key} {got} != {anomalies[key]}")
    flags = _parse_flags(args)
    if "kv-cpu-blocks" not in flags and cfg.num_instances == 1:
        problems.append("not a cluster or tiered case")
    return problems


@pytest.mark.parametrize("name", CLUSTER_CASES)
def test_oracle_matches_reference_cluster_cases(name: str) -> None:
    problems = compare_cluster_case(name)
    assert not problems, f"{len(problems)} mismatches, first: {problems[:10]}"


# ---------------------------------------------------------------- 2. engine against oracle

MODELS = ["llama-3.1-8b-instruct", "qwen2.5-1.5b-instruct", "qwen3-14b", "codellama-34b-instruct-hf"]


def roofline_fields(model: str, gpu: str, tp: int) -> dict:
    """RooflineParams fields of a bundled model config on one of the reference's calibrated GPUs."""
    spec = GPU_SPECS[gpu]
    return dict(**_model_params(model), tflops_peak=spec["TFlopsPeak"], bw_peak_tbs=spec["BwPeakTBs"],
                bw_eff_constant=spec["BwEffConstant"], t_overhead_micros=spec["TOverheadMicros"],
                per_layer_overhead=spec["perLayerOverhead"], mfu_prefill=spec["mfuPrefill"],
                mfu_decode=spec["mfuDecode"], all_reduce_latency=spec["allReduceLatency"], tp=tp)


@st.composite
def roofline_params(draw) -> dict:
    return roofline_fields(draw(st.sampled_from(MODELS)), draw(st.sampled_from(sorted(GPU_SPECS))),
                           draw(st.sampled_from([1, 1, 2, 4, 8])))


@st.composite
def cluster_scenarios(draw, kv_pressure: bool = False):
    """A random small cluster and workload. With kv_pressure: one or two instances with tiny GPU
    caches, a CPU tier and low offload thresholds, and bursts of requests, so that blocks are
    offloaded and reloaded (rare in the general draw)."""
    n = draw(st.integers(6 if kv_pressure else 1, 16))
    vocab = draw(st.integers(2, 40))  # small vocabularies: shared prefixes, cache hits, prefix affinity
    prefixes = [draw(st.lists(st.integers(0, vocab), min_size=0, max_size=32)) for _ in range(2)]
    gaps = [0, 0, 1, 50, 400] if kv_pressure else [0, 0, 1, 400, 3000, 20000]
    arrivals, inputs, outputs = [], [], []
    t = 0
    for _ in range(n):
        t += draw(st.sampled_from(gaps))
        body = draw(st.lists(st.integers(0, vocab), min_size=1, max_size=48))
        arrivals.append(t)
        inputs.append(prefixes[draw(st.integers(0, 1))] + body)
        outputs.append(draw(st.lists(st.integers(0, vocab), min_size=0, max_size=24)))
    tiered = kv_pressure or draw(st.booleans())
    cfg = dict(
        total_kv_blocks=draw(st.integers(3, 12 if kv_pressure else 16 if tiered else 60)),
        block_size=draw(st.sampled_from([2, 3, 4] if kv_pressure else [2, 3, 4, 8, 16])),
        max_running_reqs=draw(st.integers(1, 8)),
        max_scheduled_tokens=draw(st.integers(4, 96)),
        long_prefill_token_threshold=draw(st.sampled_from([0, 0, 3, 8, 32])),
        horizon=draw(st.sampled_from([2**63 - 1, 2**63 - 1, 40_000, 200_000])),
        alpha=(draw(st.floats(0, 400)), draw(st.floats(0, 3)), draw(st.floats(0, 500))),
        beta=(draw(st.floats(100, 800 if kv_pressure else 6000)), draw(st.floats(0, 20)), draw(st.floats(0, 10))),
        scheduler=draw(st.sampled_from(SCHEDULERS)),
        priority_policy=draw(st.sampled_from(PRIORITY_POLICIES)),
        roofline=None if kv_pressure else draw(st.one_of(st.none(), roofline_params())),
        num_instances=draw(st.integers(1, 2 if kv_pressure else 4)),
        routing_policy=draw(st.sampled_from(ROUTING_POLICIES)),
        routing_cache_weight=draw(st.sampled_from([0.0, 0.3, 0.6, 1.0])),
        routing_load_weight=draw(st.sampled_from([0.1, 0.4, 1.0])),
        admission_policy=draw(st.sampled_from(ADMISSION_POLICIES[:2] * 4 + ADMISSION_POLICIES[2:])),
        token_bucket_capacity=draw(st.sampled_from([0.0, 40.0, 150.0, 10000.0])),
        token_bucket_refill_rate=draw(st.sampled_from([0.0, 500.0, 20000.0])),
        admission_latency=draw(st.sampled_from([0, 0, 1, 700, 5000])),
        routing_latency=draw(st.sampled_from([0, 0, 1, 700, 5000])),
        kv_cpu_blocks=draw(st.sampled_from([1, 3, 10, 60])) if tiered else 0,
        kv_offload_threshold=draw(st.sampled_from([0.0, 0.1, 0.3] if kv_pressure else [0.0, 0.2, 0.5, 0.9, 1.0])),
        kv_transfer_bandwidth=draw(st.sampled_from([0.3, 1.0, 4.0, 100.0])),
        kv_transfer_base_latency=draw(st.sampled_from([0, 0, 50, 2000])),
    )
    if kv_pressure:
        cfg.update(admission_policy="always-admit", admission_latency=0, routing_latency=0)
    return arrivals, inputs, outputs, cfg


def oracle_config(cfg: dict) -> OracleConfig:
    rf = cfg["roofline"]
    return OracleConfig(**{**cfg, "roofline": OracleRoofline(**rf) if rf else None})


def engine_config(cfg: dict) -> SimConfig:
    rf = cfg["roofline"]
    return SimConfig(
        total_kv_blocks=cfg["total_kv_blocks"], block_size=cfg["block_size"],
        max_running_reqs=cfg["max_running_reqs"], max_scheduled_tokens=cfg["max_scheduled_tokens"],
        long_prefill_token_threshold=cfg["long_prefill_token_threshold"], horizon=cfg["horizon"],
        alpha_coeffs=cfg["alpha"], beta_coeffs=cfg["beta"], roofline=RooflineParams(**rf) if rf else None,
        scheduler=SCHEDULER_NAMES[cfg["scheduler"]], priority_policy=PRIORITY_NAMES[cfg["priority_policy"]],
        num_instances=cfg["num_instances"], routing_policy=ROUTING_NAMES[cfg["routing_policy"]],
        routing_cache_weight=cfg["routing_cache_weight"], routing_load_weight=cfg["routing_load_weight"],
        admission_policy=ADMISSION_NAMES[cfg["admission_policy"]],
        token_bucket_capacity=cfg["token_bucket_capacity"], token_bucket_refill_rate=cfg["token_bucket_refill_rate"],
        admission_latency=cfg["admission_latency"], routing_latency=cfg["routing_latency"],
        kv_cpu_blocks=cfg["kv_cpu_blocks"], kv_offload_threshold=cfg["kv_offload_threshold"],
        kv_transfer_bandwidth=cfg["kv_transfer_bandwidth"], kv_transfer_base_latency=cfg["kv_transfer_base_latency"],
    )


def request_outcomes(res, n: int) -> list[dict]:
    """Per request of the batch's only configuration: what the engine decided and measured.

    The one place that reads the per-request flag bits (their meaning is defined by the kernel)."""
    from blis_sweep.kernels import layout as L

    out = []
    for r in range(n):
        flags = int(res.req_flags[0, r])
        out.append(dict(rejected=bool(flags & L.RF_REJECTED), routed=bool(flags & L.RF_ROUTED),
                        instance=int(res.req_instance[0, r]), first_token=bool(flags & L.RF_HAS_TTFT),
                        completed=bool(flags & L.RF_COMPLETED), ttft=int(res.req_ttft[0, r]),
                        e2e=int(res.req_e2e[0, r]), scheduling_delay=int(res.req_sched[0, r])))
    return out


def metric(row, name: str) -> float:
    return float(row[name])


def assert_cluster_engine_equals_oracle(scenario) -> None:
    arrivals, inputs, outputs, cfg = scenario
    try:
        oracle = run_oracle(arrivals, inputs, outputs, oracle_config(cfg))
    except UndefinedReferenceBehaviour:
        reject()
    res = simulate([engine_config(cfg)], [build_workload(arrivals, inputs, outputs)], [0],
                   per_request=True, per_instance=True)
    n = len(arrivals)
    for r, (want, got) in enumerate(zip(oracle.requests, request_outcomes(res, n))):
        assert got["rejected"] == want["rejected"], (r, "admission")
        assert got["routed"] == (want["instance"] is not None), (r, "routed")
        if want["instance"] is not None:
            assert got["instance"] == want["instance"], (r, "routing target")
        assert got["first_token"] == want["first_token"], (r, "first token")
        assert got["completed"] == want["completed"], (r, "completed")
        if want["first_token"]:
            assert got["ttft"] == want["ttft"], (r, "ttft")
        if want["completed"]:
            assert got["e2e"] == want["e2e"], (r, "e2e")
        if want["scheduling_delay"] is not None:
            assert got["scheduling_delay"] == want["scheduling_delay"], (r, "scheduling delay")
    m, row = oracle.metrics, res.cluster[0]
    for engine_name, oracle_name in (("rejected_requests", "rejected_requests"),
                                     ("routed_requests", "routed_requests")):
        assert metric(row, engine_name) == m[oracle_name], engine_name
    for i, block in [(None, row)] + list(enumerate(res.instances[0])):
        want = m if i is None else oracle.extra["instances"][i]
        for engine_name, oracle_name in COUNTERS:
            assert metric(block, engine_name) == want[oracle_name], (i, engine_name)
    if m["completed_requests"] > 0:
        for key in ("e2e_mean_ms", "e2e_p99_ms", "ttft_mean_ms", "ttft_p99_ms", "itl_mean_ms", "itl_p90_ms",
                    "scheduling_delay_p99_ms", "tokens_per_sec"):
            assert metric(row, key) == m[key], key
    # invariants: blocks and requests conserved, the clock never runs back
    assert metric(row, "kv_used_at_end") + metric(row, "kv_free_at_end") == metric(row, "kv_total_blocks")
    assert metric(row, "arrived_requests") == sum(
        metric(row, k) for k in ("completed_requests", "waiting_at_end", "running_at_end", "rejected_requests",
                                 "in_flight_at_end"))
    assert metric(row, "clock_regressions") == 0


# (engine metric, oracle metric) compared for every instance and for the merged block
COUNTERS = [("completed_requests", "completed_requests"), ("total_input_tokens", "total_input_tokens"),
            ("total_output_tokens", "total_output_tokens"), ("sim_ended_ticks", "sim_ended_tick"),
            ("waiting_at_end", "waiting_at_end"), ("running_at_end", "running_at_end"),
            ("kv_used_at_end", "kv_used_at_end"), ("kv_block_ticks", "kv_blocks_integral"),
            ("preemptions", "preemption_count"), ("kv_peak_blocks", "peak_kv_blocks"),
            ("cache_hit_rate", "cache_hit_rate"), ("kv_thrashing_rate", "kv_thrashing_rate"),
            ("priority_inversions", "priority_inversions")]
CLUSTER_SETTINGS = settings(max_examples=150, deadline=None, database=None,
                            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@CLUSTER_SETTINGS
@seed(10_0006)
@given(cluster_scenarios())
def test_cluster_engine_equals_oracle(scenario):
    assert_cluster_engine_equals_oracle(scenario)


@CLUSTER_SETTINGS
@seed(10_0007)
@given(cluster_scenarios(kv_pressure=True))
def test_tiered_kv_under_pressure_engine_equals_oracle(scenario):
    assert_cluster_engine_equals_oracle(scenario)
