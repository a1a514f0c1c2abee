"""Engine throughput: a batch of configurations x 500 chat-like requests, varied rate and batch limits.

Reports simulated requests per second per core (compile time measured separately)
and, with --reference-binary, times the reference simulator on the same sweep
side by side (one process per configuration, as people run it today).

    python benchmarks/bench_engine.py [--configs 256] [--requests 500] [--instances 1]
                                      [--reference-binary PATH --reference-configs 8]
    python benchmarks/bench_engine.py --long     # 16 configurations x 50,000 requests (engine_long_*)
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from blis_sweep.engine import pack_workloads, simulate  # noqa: E402
from blis_sweep.sim_config import RoutingPolicy, SimConfig  # noqa: E402
from blis_sweep.workloads.requests import distribution_workload  # noqa: E402

# trained llama-3.1-8b H100 coefficients (model_configs/defaults.yaml)
ALPHA = (232.46191091038054, 1.752360364195244, 3357.4400353290152)
BETA = (5752.705191348184, 17.25086436834028, 5.999143920128404)
CHAT = dict(prefix_tokens=0, prompt_mean=512, prompt_std=256, prompt_min=2, prompt_max=7000,
            output_mean=256, output_std=128, output_min=2, output_max=7000)


def sweep(n_configs: int, n_requests: int, instances: int, prefix_tokens: int = 0):
    """Rates x batch limits, like a saturation sweep; one workload per rate (prefix_tokens: a
    prompt prefix all requests share, like a system prompt)."""
    rates = np.linspace(2.0, 40.0, 16) * instances
    limits = [(64, 1024), (128, 2048), (256, 2048), (256, 4096)]
    workloads, configs, wids = [], [], []
    for k, rate in enumerate(rates[:n_configs]):  # only the workloads a configuration uses
        workloads.append(distribution_workload(float(rate), n_requests, seed=42 + k,
                                               **dict(CHAT, prefix_tokens=prefix_tokens)))
    k = 0
    while len(configs) < n_configs:
        w = k % len(workloads)
        running, tokens = limits[(k // len(rates)) % len(limits)]
        configs.append(SimConfig(total_kv_blocks=7463, max_running_reqs=running, max_scheduled_tokens=tokens,
                                 alpha_coeffs=ALPHA, beta_coeffs=BETA, num_instances=instances,
                                 routing_policy=RoutingPolicy.LEAST_LOADED if instances > 1 else RoutingPolicy.ROUND_ROBIN))
        wids.append(w)
        k += 1
    return configs, workloads, wids, rates


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def time_reference(binary: str, configs, workloads, wids, rates, n: int, workload_kind: str,
                   prefix_tokens: int = 0) -> dict:
    """Run the reference's `run` once per configuration (the first n of the sweep), as a shell
    loop would; CPU seconds of the child processes. workload_kind "traces" replays our
    workloads as trace files; "distribution" lets the reference generate the same kind."""
    total_requests = 0
    with tempfile.TemporaryDirectory() as tmp:
        commands = []
        for k in range(n):
            cfg, w = configs[k], workloads[wids[k]]
            args = [binary, "run", "--model", "meta-llama/llama-3.1-8b-instruct",
                    "--alpha-coeffs", ",".join(map(str, ALPHA)), "--beta-coeffs", ",".join(map(str, BETA)),
                    "--total-kv-blocks", str(cfg.total_kv_blocks), "--max-num-running-reqs",
                    str(cfg.max_running_reqs), "--max-num-scheduled-tokens", str(cfg.max_scheduled_tokens)]
            if workload_kind == "traces":
                path = Path(tmp) / f"trace{k}.csv"
                _write_trace(path, w)
                args += ["--workload", "traces", "--workload-traces-filepath", str(path)]
            else:
                args += ["--workload", "distribution", "--rate", str(rates[wids[k]]), "--max-prompts",
                         str(w.num_requests), "--prompt-tokens", str(CHAT["prompt_mean"]), "--prompt-tokens-stdev",
                         str(CHAT["prompt_std"]), "--output-tokens", str(CHAT["output_mean"]),
                         "--output-tokens-stdev", str(CHAT["output_std"]),
                         "--prefix-tokens", str(prefix_tokens)]
            commands.append(args)
        before = os.times()
        t0 = time.perf_counter()
        for k, args in enumerate(commands):
            subprocess.run(args, check=True, capture_output=True, cwd=tmp)
            total_requests += workloads[wids[k]].num_requests
        wall = time.perf_counter() - t0
        after = os.times()
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return {"configs": n, "requests": total_requests, "wall_s": wall, "cpu_s": cpu,
            "requests_per_cpu_s": total_requests / cpu}


def _write_trace(path: Path, w) -> None:
    """The reference's trace CSV; token ids are irrelevant to timing, so a deterministic pattern is written."""
    rng = np.random.default_rng(0)
    with path.open("w") as f:
        f.write("arrived_at,num_prefill_tokens,num_decode_tokens,prefill_tokens,decode_tokens\n")
        for r in range(w.num_requests):
            ins = rng.integers(0, 128000, int(w.input_len[r]))
            outs = rng.integers(0, 128000, int(w.output_len[r]))
            f.write(f'{w.arrival_ticks[r] / 1e6:.6f},{len(ins)},{len(outs)},"[{",".join(map(str, ins))}]",'
                    f'"[{",".join(map(str, outs))}]"\n')


def _append_history(record: dict) -> None:
    """One line in benchmarks/history.jsonl, in the fields benchmarks/compare.py reads."""
    import datetime as dt

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                                text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    line = dict(record, bench=record["benchmark"], date=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                load1=round(os.getloadavg()[0], 2),
                spec=f"{record['configs']}x{record['requests_per_config']}x{record['instances']}", cold=False,
                machine={"cpu": record["cpu"], "cores": record["cores"]}, commit=commit)
    with (REPO / "benchmarks" / "history.jsonl").open("a", encoding="utf-8") as f:
        f.write(json.dumps(line) + "\n")


def emit(record: dict, append: bool, as_json: bool) -> bool:
    """Append the record to the history if asked; print it as JSON if asked (then True: nothing else to print)."""
    if append:
        _append_history(record)
    if as_json:
        print(json.dumps(record))
    return as_json


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", type=int, default=256)
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--instances", type=int, default=1)
    ap.add_argument("--prefix-tokens", type=int, default=0,
                    help="a prompt prefix shared by all requests (benchmark engine_prefixN_...)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--reference-binary", default="")
    ap.add_argument("--reference-configs", type=int, default=16)
    ap.add_argument("--reference-workload", choices=["traces", "distribution"], default="distribution")
    ap.add_argument("--json", action="store_true", help="print one JSON record")
    ap.add_argument("--record", action="store_true", help="append the record to benchmarks/history.jsonl")
    ap.add_argument("--long", action="store_true",
                    help="long runs: 16 configurations x 50,000 requests, one repeat (cost per request at scale)")
    args = ap.parse_args()
    if args.long:
        args.configs, args.requests, args.repeats = 16, 50_000, 1

    configs, workloads, wids, rates = sweep(args.configs, args.requests, args.instances, args.prefix_tokens)
    packed = pack_workloads(workloads)
    t0 = time.perf_counter()
    simulate(configs[:1], workloads, wids[:1], packed=packed)  # JIT compile (or load the on-disk cache)
    compile_s = time.perf_counter() - t0
    runs = []
    for _ in range(args.repeats):
        before = resource.getrusage(resource.RUSAGE_SELF)  # microsecond CPU times (os.times ticks at 10 ms)
        t0 = time.perf_counter()
        res = simulate(configs, workloads, wids, packed=packed)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_SELF)
        runs.append((wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)))
    assert np.all(res.cluster["status"] == 0)
    simulated = float(res.cluster["arrived_requests"].sum())
    wall = min(r[0] for r in runs)
    cpu = min(r[1] for r in runs)
    cores = os.cpu_count() or 1
    record = {
        "benchmark": (f"engine_{'long_' if args.long else ''}"
                      f"{f'prefix{args.prefix_tokens}_' if args.prefix_tokens else ''}{args.instances}inst"), "configs": len(configs), "requests_per_config": args.requests,
        "instances": args.instances, "simulated_requests": simulated, "compile_s": round(compile_s, 3),
        "wall_s": round(wall, 4), "cpu_s": round(cpu, 4), "cores": cores, "cpu": cpu_model(),
        "configs_per_s": len(configs) / wall, "requests_per_s": simulated / wall,
        "requests_per_s_per_core": simulated / wall / cores, "requests_per_cpu_s": simulated / cpu,
    }
    if args.reference_binary:
        ref = time_reference(args.reference_binary, configs, workloads, wids, rates, args.reference_configs,
                             args.reference_workload, args.prefix_tokens)
        record["reference"] = ref
        record["speedup_per_cpu_s"] = record["requests_per_cpu_s"] / ref["requests_per_cpu_s"]
    if emit(record, args.record, args.json):
        return
    print(f"machine: {record['cpu']}, {cores} cores")
    print(f"batch: {len(configs)} configs x {args.requests} requests x {args.instances} instance(s)")
    print(f"compile (or cache load): {compile_s:.2f} s")
    print(f"run: {wall:.3f} s wall, {cpu:.3f} s CPU -> {record['configs_per_s']:.0f} configs/s, "
          f"{record['requests_per_s_per_core']:,.0f} simulated requests/s per core "
          f"({record['requests_per_cpu_s']:,.0f} per CPU-second)")
    if args.reference_binary:
        ref = record["reference"]
        print(f"reference: {ref['configs']} configs, {ref['requests_per_cpu_s']:,.0f} simulated requests per CPU-second")
        print(f"speed-up per CPU-second: {record['speedup_per_cpu_s']:,.0f}x")


if __name__ == "__main__":
    main()
