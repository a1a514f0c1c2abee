"""Validate the pure-Python oracle (tests/oracle_sim.py) against the reference's
recorded parity cases: every per-request TTFT/E2E exactly, every printed metric
to a relative 1e-9, and the priority-inversion counter."""

from __future__ import annotations

import csv
import gzip
import json
import math
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from oracle_sim import (  # noqa: E402
    OracleConfig,
    RooflineParams,
    check_kv_invariants,
    run_oracle,
)

ROOT = Path(__file__).resolve().parents[1]
PARITY = ROOT / "tests" / "data" / "parity"
MODEL_CONFIGS = ROOT / "model_configs"

# GPU calibration entries of the reference's hardware_config.json
# (blis_data/hardware_config.json, copied verbatim as data).
GPU_SPECS = {
    "H100": {
        "TFlopsPeak": 989.5, "BwPeakTBs": 3.35, "BwEffConstant": 0.72,
        "TOverheadMicros": 500.0, "perLayerOverhead": 20.0, "mfuPrefill": 0.65,
        "mfuDecode": 0.12, "allReduceLatency": 20.0,
    },
    "A100-SXM": {
        "TFlopsPeak": 312.0, "BwPeakTBs": 2.039, "BwEffConstant": 0.72,
        "TOverheadMicros": 500.0, "perLayerOverhead": 20.0, "mfuPrefill": 0.65,
        "mfuDecode": 0.12, "allReduceLatency": 20.0,
    },
}

_DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "int8": 1, "uint8": 1,
                "fp8": 1, "int4": 1, "nf4": 1}

SINGLE_INSTANCE_CASES = [
    "v01_single_chat_prefix",
    "v02_single_long_prompts",
    "v03_single_chunked_prefill",
    "v04_single_kv_pressure",
    "v05_single_batch_cap",
    "v06_defaults_lookup",
    "v07_roofline_llama_tp1",
    "v08_roofline_qwen_tp4_a100",
    "v15_scheduler_sjf",
    "v16_priority_slo_fcfs",
    "v18_horizon_cut",
    "g1_golden_llama-3.1-8b-instruct",
    "g2_golden_llama-3.1-8b-instruct",
    "g3_golden_qwen2.5-7b-instruct",
    "g4_golden_granite-3.1-8b-instruct",
    "g5_golden_codellama-34b-instruct-hf",
]

# Four quick cases that between them cover preemption / KV exhaustion (v04),
# a small batch cap (v05), a priority scheduler (v16) and a horizon cut (v18).
# The rest (about 8 s together) are marked slow.
FAST_CASES = {"v04_single_kv_pressure", "v05_single_batch_cap", "v16_priority_slo_fcfs",
              "v18_horizon_cut"}


def _parse_flags(args: list[str]) -> dict[str, str]:
    assert args[0] == "run"
    flags: dict[str, str] = {}
    i = 1
    while i < len(args):
        a = args[i]
        assert a.startswith("--"), a
        if i + 1 < len(args) and not args[i + 1].startswith("--"):
            flags[a[2:]] = args[i + 1]
            i += 2
        else:
            flags[a[2:]] = "true"
            i += 1
    return flags


def _defaults_lookup(model: str, tp: int, gpu: str) -> tuple[list[float], list[float], int, int, str]:
    import yaml

    data = yaml.safe_load((MODEL_CONFIGS / "defaults.yaml").read_text())
    dflt = data["defaults"].get(model, {})
    if tp == 0:
        tp = int(dflt.get("tensor_parallelism", 0))
    if not gpu:
        gpu = dflt.get("GPU", "")
    version = dflt.get("vllm_version", "")
    for m in data["models"]:
        if (m["id"] == model and int(m["tensor_parallelism"]) == tp and m["GPU"] == gpu
                and m["vllm_version"] == version):
            return ([float(x) for x in m["alpha_coeffs"]], [float(x) for x in m["beta_coeffs"]],
                    int(m["total_kv_blocks"]), tp, gpu)
    return [], [], 0, tp, gpu


def _model_params(folder: str) -> dict:
    path = MODEL_CONFIGS / Path(folder).name / "config.json"
    raw = json.loads(path.read_text())
    if isinstance(raw.get("text_config"), dict):
        raw.update(raw["text_config"])

    def geti(k: str) -> int:
        v = raw.get(k)
        return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else 0

    heads = geti("num_attention_heads")
    kv_heads = geti("num_key_value_heads") or heads
    dtype = raw.get("torch_dtype")
    bpp = float(_DTYPE_BYTES.get(dtype, 0)) if isinstance(dtype, str) else 0.0
    return dict(num_layers=geti("num_hidden_layers"), hidden_dim=geti("hidden_size"),
                num_heads=heads, num_kv_heads=kv_heads,
                intermediate_dim=geti("intermediate_size"), bytes_per_param=bpp)


def config_from_cli(args: list[str]) -> OracleConfig:
    """Resolve the reference `run` flags the way its CLI does (single instance)."""
    f = _parse_flags(args)
    assert int(f.get("num-instances", "1")) == 1
    assert int(f.get("kv-cpu-blocks", "0")) == 0

    def floats(key: str) -> list[float]:
        return [float(x) for x in f[key].split(",")] if key in f else [0.0, 0.0, 0.0]

    alpha, beta = floats("alpha-coeffs"), floats("beta-coeffs")
    total_kv = int(f.get("total-kv-blocks", "1000000"))
    tp = int(f.get("tp", "0"))
    gpu = f.get("hardware", "")
    folder = f.get("model-config-folder", "")
    hw_path = f.get("hardware-config", "")
    roofline = None
    if not any(alpha) and not any(beta) and not folder and not hw_path:
        model = f["model"].lower()
        alpha, beta, total_kv, tp, gpu = _defaults_lookup(model, tp, gpu)
        assert alpha and beta, "no coefficients for the model in defaults.yaml"
    if not any(alpha) and not any(beta):
        assert folder and hw_path and gpu and tp > 0
        spec = GPU_SPECS[gpu]
        roofline = RooflineParams(
            **_model_params(folder),
            tflops_peak=spec["TFlopsPeak"], bw_peak_tbs=spec["BwPeakTBs"],
            bw_eff_constant=spec["BwEffConstant"], t_overhead_micros=spec["TOverheadMicros"],
            per_layer_overhead=spec["perLayerOverhead"], mfu_prefill=spec["mfuPrefill"],
            mfu_decode=spec["mfuDecode"], all_reduce_latency=spec["allReduceLatency"], tp=tp)
    return OracleConfig(
        total_kv_blocks=total_kv,
        block_size=int(f.get("block-size-in-tokens", "16")),
        max_running_reqs=int(f.get("max-num-running-reqs", "256")),
        max_scheduled_tokens=int(f.get("max-num-scheduled-tokens", "2048")),
        long_prefill_token_threshold=int(f.get("long-prefill-token-threshold", "0")),
        horizon=int(f.get("horizon", str(2**63 - 1))),
        alpha=tuple(alpha[:3]),
        beta=tuple(beta[:3]),
        scheduler=f.get("scheduler", "fcfs"),
        priority_policy=f.get("priority-policy", "constant"),
        roofline=roofline,
    )


def load_trace(case_dir: Path) -> tuple[list[int], list[list[int]], list[list[int]]]:
    arrivals, inputs, outputs = [], [], []
    with gzip.open(case_dir / "trace.csv.gz", "rt", newline="") as fh:
        rows = csv.reader(fh)
        next(rows)
        for row in rows:
            arrivals.append(int(float(row[0]) * 1e6))
            inputs.append(json.loads(row[3]))
            outputs.append(json.loads(row[4]))
    return arrivals, inputs, outputs


def load_expected_requests(case_dir: Path) -> dict[str, dict[str, float]]:
    out = {}
    with open(case_dir / "requests.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            out[row["request_id"]] = {k: float(v) for k, v in row.items()
                                      if k not in ("request_id",)}
    return out


def _close(a: float, b: float, rel: float = 1e-9) -> bool:
    if a == b:
        return True
    if math.isnan(a) or math.isnan(b):
        return False
    return abs(a - b) <= rel * max(abs(a), abs(b))


def compare_case(name: str) -> list[str]:
    """Run the oracle on a parity case; return a list of mismatch descriptions."""
    case_dir = PARITY / name
    case = json.loads((case_dir / "case.json").read_text())
    cfg = config_from_cli(case["reference_cli_args"])
    arrivals, inputs, outputs = load_trace(case_dir)
    res = run_oracle(arrivals, inputs, outputs, cfg)
    check_kv_invariants(res)
    problems: list[str] = []

    expected_reqs = load_expected_requests(case_dir)
    produced = {r["id"]: r for r in res.requests if r["first_token"]}
    if set(produced) != set(expected_reqs):
        problems.append(f"request set differs: missing={sorted(set(expected_reqs) - set(produced))[:5]} "
                        f"extra={sorted(set(produced) - set(expected_reqs))[:5]}")
    for rid, exp in expected_reqs.items():
        got = produced.get(rid)
        if got is None:
            continue
        ttft_ms = got["ttft"] / 1e3
        e2e_ms = (got["e2e"] or 0) / 1e3
        itl = got["itl"] if got["itl"] is not None else 0.0
        delay = float(got["scheduling_delay"] or 0)
        if ttft_ms != exp["ttft_ms"]:
            problems.append(f"{rid} ttft {ttft_ms} != {exp['ttft_ms']}")
        if e2e_ms != exp["e2e_ms"]:
            problems.append(f"{rid} e2e {e2e_ms} != {exp['e2e_ms']}")
        if not _close(itl, exp["itl_us_per_token"]):
            problems.append(f"{rid} itl {itl} != {exp['itl_us_per_token']}")
        if delay != exp["scheduling_delay_us"]:
            problems.append(f"{rid} scheduling delay {delay} != {exp['scheduling_delay_us']}")

    blocks = case["metrics"]
    assert len(blocks) == 1 and blocks[0]["instance_id"] == "cluster"
    for key, exp in blocks[0].items():
        if key == "instance_id":
            continue
        got = res.metrics.get(key)
        if got is None or not _close(float(got), float(exp)):
            problems.append(f"metric {key}: {got} != {exp}")
    anomalies = case.get("anomalies") or {}
    exp_inv = anomalies.get("priority_inversions", 0)
    if res.metrics["priority_inversions"] != exp_inv:
        problems.append(f"priority_inversions {res.metrics['priority_inversions']} != {exp_inv}")
    return problems


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=() if n in FAST_CASES else pytest.mark.slow)
     for n in SINGLE_INSTANCE_CASES],
)
def test_oracle_matches_reference(name: str) -> None:
    problems = compare_case(name)
    assert not problems, f"{len(problems)} mismatches, first: {problems[:10]}"


def _random_case(rng):
    vocab = rng.choice([2, 3, 50])
    prefixes = [[rng.randrange(vocab) for _ in range(rng.randint(0, 40))] for _ in range(3)]
    arrivals, inputs, outputs = [], [], []
    for _ in range(rng.randint(1, 25)):
        arrivals.append(rng.randint(0, rng.choice([0, 50, 100000])))
        base = rng.choice(prefixes) if rng.random() < 0.6 else []
        inputs.append(base + [rng.randrange(vocab) for _ in range(rng.randint(1, 60))])
        outputs.append([rng.randrange(vocab) for _ in range(rng.choice([0, 1, rng.randint(0, 40)]))])
    cfg = OracleConfig(
        total_kv_blocks=rng.randint(1, 80), block_size=rng.randint(2, 8),
        max_running_reqs=rng.randint(1, 10), max_scheduled_tokens=rng.randint(1, 100),
        long_prefill_token_threshold=rng.choice([0, rng.randint(1, 30)]),
        alpha=(float(rng.choice([0, 7])), float(rng.choice([0, 0.5])), float(rng.choice([0, 30.7]))),
        beta=(float(rng.choice([1, 1000.3])), float(rng.choice([0, 2.5])), float(rng.choice([0, 3.3]))),
        scheduler=rng.choice(["fcfs", "priority-fcfs", "sjf", "reverse-priority"]),
        priority_policy=rng.choice(["constant", "slo-based", "inverted-slo"]))
    return arrivals, inputs, outputs, cfg


def test_oracle_random_small_cases_keep_kv_invariants() -> None:
    """The oracle on random tiny configurations (KV starvation, prefix sharing,
    zero-output requests, same-tick arrivals): KV conservation and basic sanity."""
    import random

    for seed in range(150):
        rng = random.Random(seed)
        arrivals, inputs, outputs, cfg = _random_case(rng)
        res = run_oracle(arrivals, inputs, outputs, cfg)
        check_kv_invariants(res)
        m = res.metrics
        assert m["completed_requests"] == sum(r["completed"] for r in res.requests)
        for r in res.requests:
            if r["completed"]:
                assert r["first_token"] and r["e2e"] >= r["ttft"] > 0
        if not res.extra["running"] and not res.extra["waiting"]:
            # everything drained: no block is owned any more
            assert res.kv_state["used_blocks"] == 0


if __name__ == "__main__":  # python tests/test_oracle_parity.py [case ...]
    names = sys.argv[1:] or SINGLE_INSTANCE_CASES
    for n in names:
        t0 = time.perf_counter()
        probs = compare_case(n)
        dt = time.perf_counter() - t0
        status = "OK" if not probs else f"FAIL ({len(probs)})"
        print(f"{n:45s} {status:12s} {dt:7.2f}s")
        for p in probs[:8]:
            print("    ", p)
