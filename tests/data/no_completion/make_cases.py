"""Write cases.json: runs in which no request completes, with the --results-path file the
reference writes for them.

The expected files follow the reference's SaveResults (sim/metrics.go at d25e1935): when
nothing completed, every latency and throughput field keeps its zero value; the counts and
vllm_estimated_duration_s (min(clock, horizon) of the instances, in seconds) are still set;
"requests" lists every request that got a first token (ttft set, e2e and itl 0 because their
maps have no entry), by arrival time, and is absent when there is none; then the file is
written and "Metrics written to: <path>" printed. The numbers of the single-instance
cases come from tests/oracle_sim.py (the independent model of the reference's semantics);
requests rejected at admission never reach an instance, so those files hold only zeros.

Run from the repository root: python tests/data/no_completion/make_cases.py
"""
import csv
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

from tests.oracle_sim import OracleConfig, run_oracle  # noqa: E402

ALPHA = (232.46, 1.75, 3357.44)
BETA = (5752.7, 17.25, 5.99)
COMMON = ["run", "--workload", "traces", "--workload-traces-filepath", "trace.csv", "--model",
          "meta-llama/llama-3.1-8b-instruct", "--alpha-coeffs", ",".join(map(str, ALPHA)),
          "--beta-coeffs", ",".join(map(str, BETA))]
ZERO_FIELDS = ("responses_per_sec", "tokens_per_sec", "e2e_mean_ms", "e2e_p90_ms", "e2e_p95_ms", "e2e_p99_ms",
               "ttft_mean_ms", "ttft_p90_ms", "ttft_p95_ms", "ttft_p99_ms", "itl_mean_ms", "itl_p90_ms",
               "itl_p95_ms", "itl_p99_ms", "scheduling_delay_p99_ms")


def read_trace():
    with open(HERE / "trace.csv", newline="") as f:
        rows = list(csv.reader(f))[1:]
    return ([int(float(r[0]) * 1e6) for r in rows], [json.loads(r[3]) for r in rows],
            [json.loads(r[4]) for r in rows])


def expected_file(completed, total_in, total_out, duration_s, requests):
    out = {"instance_id": "cluster", "completed_requests": completed, "total_input_tokens": total_in,
           "total_output_tokens": total_out, "vllm_estimated_duration_s": duration_s}
    out.update({k: 0 for k in ZERO_FIELDS})
    if requests:
        out["requests"] = requests
    return out


def oracle_case(name, extra_args, total_kv_blocks, horizon):
    arrivals, ins, outs = read_trace()
    cfg = OracleConfig(total_kv_blocks=total_kv_blocks, horizon=horizon, alpha=ALPHA, beta=BETA)
    res = run_oracle(arrivals, ins, outs, cfg)
    m = res.metrics
    assert m["completed_requests"] == 0, name
    got_first = [r for r in res.requests if r["first_token"]]
    got_first.sort(key=lambda r: (arrivals[r["index"]] / 1e6, r["index"]))
    requests = [{"arrived_at": arrivals[r["index"]] / 1e6, "requestID": r["id"],
                 "num_prefill_tokens": len(ins[r["index"]]), "num_decode_tokens": len(outs[r["index"]]),
                 "ttft_ms": r["ttft"] / 1e3, "itl_ms": 0, "e2e_ms": 0,
                 "scheduling_delay_ms": float(r["scheduling_delay"])} for r in got_first]
    return {"name": name, "args": COMMON + extra_args,
            "expected": expected_file(0, m["total_input_tokens"], m["total_output_tokens"],
                                      m["vllm_estimated_duration_s"], requests),
            "rejected": 0}


def rejected_case(name, extra_args):
    return {"name": name, "args": COMMON + ["--num-instances", "2"] + extra_args,
            "expected": expected_file(0, 0, 0, 0, []), "rejected": len(read_trace()[0])}


def main():
    cases = [
        # seven requests arrive and get their first token before the horizon, none its last
        oracle_case("horizon_cuts_every_request", ["--total-kv-blocks", "7463", "--horizon", "600000"], 7463,
                    600000),
        # prompts need more blocks than the cache has: nothing is ever scheduled
        oracle_case("kv_cache_too_small", ["--total-kv-blocks", "4"], 4, 2**63 - 1),
        rejected_case("reject_all", ["--admission-policy", "reject-all", "--total-kv-blocks", "7463"]),
        rejected_case("token_bucket_admits_nothing", [
            "--admission-policy", "token-bucket", "--token-bucket-capacity", "50", "--token-bucket-refill-rate",
            "0", "--total-kv-blocks", "7463"]),
    ]
    (HERE / "cases.json").write_text(json.dumps(cases, indent=1) + "\n")


if __name__ == "__main__":
    main()
