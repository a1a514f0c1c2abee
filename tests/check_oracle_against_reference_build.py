"""Check the oracle's cluster and roofline model against a build of the reference (not a test).

    python tests/check_oracle_against_reference_build.py REFERENCE_BINARY [N_CASES] [SEED]

Random small clusters (1-4 instances, every routing and admission policy, admission and
routing latencies, token buckets, chunked prefill, every scheduler and priority policy,
blackbox or roofline step times, horizons) are run by the reference's `run` on a trace and
by the oracle; every printed metrics block (per instance and merged), the anomaly
counters and every request's TTFT / E2E / ITL / scheduling delay must agree.

The cases keep clear of the four fixes the reference is taken with (README, Exactness), so
that a build of plain d25e1935 such as /work/refbin/blis can judge them: blocks of 4,096
tokens hold a whole request (no block ever fills, so no prefix keys, no top-up of a full
block) and the cache is far larger than the workload (no allocation fails, no preemption).
KV pressure, prefix caching and the CPU tier are judged by the recorded cases instead
(tests/test_oracle_parity.py, tests/test_oracle_cluster.py).
"""
from __future__ import annotations

import csv
import json
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.oracle_sim import (  # noqa: E402
    ADMISSION_POLICIES, PRIORITY_POLICIES, ROUTING_POLICIES, SCHEDULERS, OracleConfig, RooflineParams, run_oracle,
)
from tests.parity_cases import REPO, parse_metric_blocks, parse_sections  # noqa: E402
from tests.test_oracle_cluster import MODELS, roofline_fields  # noqa: E402
from tests.test_oracle_parity import GPU_SPECS, _close  # noqa: E402

BLOCK = 4096


def random_case(rng: random.Random) -> tuple[list[str], list[list[int]], list[list[int]], list[str], OracleConfig]:
    n = rng.randint(1, 24)
    shared = [[rng.randrange(50) for _ in range(rng.randint(1, 60))] for _ in range(3)]
    arrivals, inputs, outputs = [], [], []
    t = 0
    for _ in range(n):
        t += rng.choice([0, 0, 1, 300, 3000, 20000])
        arrivals.append(f"{t / 1e6!r}")
        inputs.append(list(rng.choice(shared)) if rng.random() < 0.3
                      else [rng.randrange(50) for _ in range(rng.randint(1, 200))])
        outputs.append([rng.randrange(50) for _ in range(rng.choice([0, 1, rng.randint(0, 60)]))])
    flags = ["--block-size-in-tokens", str(BLOCK), "--total-kv-blocks", "100000"]
    cfg: dict = dict(total_kv_blocks=100000, block_size=BLOCK)

    def choose(flag: str, field: str, values: list, kind=str):
        value = rng.choice(values)
        flags.extend([f"--{flag}", str(value)])
        cfg[field] = kind(value)

    choose("max-num-running-reqs", "max_running_reqs", [1, 2, 4, 256], int)
    choose("max-num-scheduled-tokens", "max_scheduled_tokens", [16, 64, 2048], int)
    choose("long-prefill-token-threshold", "long_prefill_token_threshold", [0, 0, 8, 50], int)
    choose("scheduler", "scheduler", list(SCHEDULERS))
    choose("priority-policy", "priority_policy", list(PRIORITY_POLICIES))
    choose("num-instances", "num_instances", [1, 2, 3, 4], int)
    choose("routing-policy", "routing_policy", list(ROUTING_POLICIES))
    choose("routing-cache-weight", "routing_cache_weight", [0.0, 0.3, 0.6, 1.0], float)
    choose("routing-load-weight", "routing_load_weight", [0.1, 0.4, 1.0], float)
    choose("admission-policy", "admission_policy", list(ADMISSION_POLICIES[:2]) * 4 + list(ADMISSION_POLICIES[2:]))
    choose("token-bucket-capacity", "token_bucket_capacity", [0.0, 100.0, 400.0, 10000.0], float)
    choose("token-bucket-refill-rate", "token_bucket_refill_rate", [0.0, 2000.0, 50000.0], float)
    choose("admission-latency", "admission_latency", [0, 0, 1, 700, 5000], int)
    choose("routing-latency", "routing_latency", [0, 0, 1, 700, 5000], int)
    if rng.random() < 0.3:
        choose("horizon", "horizon", [20000, 100000, 400000], int)
    roofline = rng.random() < 0.5
    # the reference takes the roofline model only when every alpha and beta coefficient is zero
    alpha = [0.0] * 3 if roofline else [round(rng.uniform(0, 400), 3), round(rng.uniform(0, 3), 3),
                                        round(rng.uniform(0, 500), 3)]
    flags.extend(["--alpha-coeffs", ",".join(map(str, alpha))])
    cfg["alpha"] = tuple(alpha)
    if roofline:
        model, gpu, tp = rng.choice(MODELS), rng.choice(sorted(GPU_SPECS)), rng.choice([1, 2, 4, 8])
        # zero beta coefficients (and the folder and calibration) select the roofline model
        flags.extend(["--beta-coeffs", "0,0,0", "--model-config-folder", f"model_configs/{model}",
                      "--hardware-config", "hardware_config.json", "--hardware", gpu, "--tp", str(tp)])
        cfg["roofline"] = RooflineParams(**roofline_fields(model, gpu, tp))
    else:
        beta = [round(rng.uniform(100, 6000), 3), round(rng.uniform(0, 20), 3), round(rng.uniform(0, 10), 3)]
        flags.extend(["--beta-coeffs", ",".join(map(str, beta))])
        cfg["beta"] = tuple(beta)
    return arrivals, inputs, outputs, flags, OracleConfig(**cfg)


def run_reference(binary: str, arrivals, inputs, outputs, flags) -> tuple[str, dict]:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with open(work / "trace.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["arrived_at", "num_prefill_tokens", "num_decode_tokens", "prefill_tokens", "decode_tokens"])
            for a, i, o in zip(arrivals, inputs, outputs):
                w.writerow([a, len(i), len(o), json.dumps(i), json.dumps(o)])
        shutil.copy(REPO / "hardware" / "hardware_config.json", work / "hardware_config.json")
        shutil.copytree(REPO / "model_configs", work / "model_configs", ignore=shutil.ignore_patterns("*.yaml", "*.md"))
        args = ["run", "--workload", "traces", "--workload-traces-filepath", "trace.csv", "--model", "m",
                *flags, "--results-path", "results.json"]
        proc = subprocess.run([binary, *args], cwd=work, capture_output=True, text=True, timeout=300)
        results_file = work / "results.json"
        results = json.loads(results_file.read_text()) if results_file.exists() else {}
        return proc.stdout, results


def compare(stdout: str, results: dict, oracle, ticks: list[int]) -> list[str]:
    problems = []
    by_id = {r["id"]: r for r in oracle.requests}
    for r in results.get("requests", []):
        want = by_id[r["requestID"]]
        if not want["first_token"]:
            problems.append(f"{r['requestID']}: reference has a first token, oracle none")
            continue
        if r["ttft_ms"] != want["ttft"] / 1e3:
            problems.append(f"{r['requestID']} ttft {want['ttft'] / 1e3} != {r['ttft_ms']}")
        if r["e2e_ms"] != (want["e2e"] or 0) / 1e3:  # 0 for a request cut before completing
            problems.append(f"{r['requestID']} e2e {(want['e2e'] or 0) / 1e3} != {r['e2e_ms']}")
        if r["scheduling_delay_ms"] != (want["scheduling_delay"] or 0):
            problems.append(f"{r['requestID']} scheduling delay {want['scheduling_delay']} != "
                            f"{r['scheduling_delay_ms']}")
        if not _close(float(r["itl_ms"]), want["itl"] or 0.0):
            problems.append(f"{r['requestID']} itl {want['itl']} != {r['itl_ms']}")
    if len(results.get("requests", [])) != sum(1 for r in oracle.requests if r["first_token"]):
        problems.append("number of requests with a first token differs")
    if not stdout.strip() and any(r["first_token"] for r in oracle.requests):
        problems.append("the reference printed nothing")
    for block in parse_metric_blocks(stdout):
        block_id = block["instance_id"]
        got = oracle.metrics if block_id == "cluster" else oracle.extra["instances"][int(block_id.split("_")[1])]
        for key, exp in block.items():
            if key in ("instance_id", "sim_start_timestamp", "sim_end_timestamp", "simulation_duration_s"):
                continue
            if not _close(float(got.get(key, float("nan"))), float(exp)):
                problems.append(f"{block_id} {key}: oracle {got.get(key)} != {exp}")
    anomalies = parse_sections(stdout).get("Anomaly Counters", {})
    counters = [("Rejected Requests", "rejected_requests")]
    if len(set(ticks)) == len(ticks):  # the reference orders equal arrivals unstably for this count
        counters.append(("Priority Inversions", "priority_inversions"))
    if anomalies:
        for name, key in counters:
            if int(anomalies[name]) != oracle.metrics[key]:
                problems.append(f"{key}: oracle {oracle.metrics[key]} != {anomalies[name]}")
    return problems


def main(binary: str, n_cases: str = "200", seed: str = "1") -> int:
    rng = random.Random(int(seed))
    failures = compared = 0
    for k in range(int(n_cases)):
        arrivals, inputs, outputs, flags, cfg = random_case(rng)
        ticks = [int(float(a) * 1e6) for a in arrivals]
        oracle = run_oracle(ticks, inputs, outputs, cfg)
        stdout, results = run_reference(binary, arrivals, inputs, outputs, flags)
        problems = compare(stdout, results, oracle, ticks)
        compared += len(results.get("requests", []))
        if problems:
            failures += 1
            print(f"case {k}: {len(problems)} mismatches: {problems[:5]}\n  flags: {' '.join(flags)}")
    print(f"{int(n_cases) - failures} of {n_cases} cases agree ({compared} requests with a first token compared)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
