"""Trace input at scale: read time of a large trace and peak memory of a whole `run` on one.

Generates chat-like traces (prompt ~ N(150, 50), output ~ N(60, 30) tokens, ids < 128000,
about 1.5 kB per row) in a temporary directory, times `read_trace` on --read-requests rows
(best of --repeats, in this process, after one warm-up read) and runs the installed
`blis-sweep run` on --run-requests rows, reporting the child's peak resident memory.

    python benchmarks/bench_trace.py [--read-requests 200000] [--run-requests 100000] [--rows-reader]
                                     [--json] [--record]
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_engine import ALPHA, BETA, cpu_model, emit  # noqa: E402
from blis_sweep.workloads import traces as trace_csv  # noqa: E402
from blis_sweep.workloads.traces import read_trace  # noqa: E402

VOCAB = np.array([str(k) for k in range(128000)], dtype=object)


def write_trace(path: Path, n: int, rate_per_s: float = 20.0, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    in_len = np.clip(rng.normal(150, 50, n).round(), 1, 600).astype(int)
    out_len = np.clip(rng.normal(60, 30, n).round(), 1, 300).astype(int)
    tokens = VOCAB[rng.integers(0, 128000, int(in_len.sum() + out_len.sum()))]
    with path.open("w") as f:
        f.write("arrived_at,num_prefill_tokens,num_decode_tokens,prefill_tokens,decode_tokens\n")
        pos = 0
        for r in range(n):
            ins = ",".join(tokens[pos:pos + in_len[r]])
            pos += in_len[r]
            outs = ",".join(tokens[pos:pos + out_len[r]])
            pos += out_len[r]
            f.write(f'{r / rate_per_s:.6f},{in_len[r]},{out_len[r]},"[{ins}]","[{outs}]"\n')


def peak_rss_of_run(trace: Path) -> tuple[float, float]:
    """(wall seconds, peak resident MB) of `blis-sweep run` on the trace, in a fresh process."""
    probe = ("import resource, subprocess, sys, time; t0 = time.perf_counter(); "
             "p = subprocess.run(sys.argv[1:], capture_output=True); wall = time.perf_counter() - t0; "
             "assert p.returncode == 0, p.stderr.decode()[-2000:]; "
             "print(wall, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    cmd = [sys.executable, "-c", probe, "blis-sweep", "run", "--model", "meta-llama/llama-3.1-8b-instruct",
           "--alpha-coeffs", ",".join(map(str, ALPHA)), "--beta-coeffs", ",".join(map(str, BETA)),
           "--total-kv-blocks", "7463", "--workload", "traces", "--workload-traces-filepath", str(trace)]
    wall, kb = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.split()
    return float(wall), int(kb) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--read-requests", type=int, default=200_000)
    ap.add_argument("--run-requests", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--rows-reader", action="store_true", help="also time the row-by-row reader")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--record", action="store_true", help="append the record to benchmarks/history.jsonl")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        big, run_trace = Path(tmp) / "read.csv", Path(tmp) / "run.csv"
        write_trace(big, args.read_requests)
        write_trace(run_trace, args.run_requests)
        read_trace(run_trace)  # warm-up: numba's cache for the prefix hashes, pyarrow's imports
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            w = read_trace(big)
            times.append(time.perf_counter() - t0)
        assert w.num_requests == args.read_requests
        rows_s = None
        if args.rows_reader:
            t0 = time.perf_counter()
            trace_csv._read_trace_rows(big, trace_csv.INT64_MAX)
            rows_s = time.perf_counter() - t0
        run_wall, run_mb = peak_rss_of_run(run_trace)
        record = {
            "benchmark": "trace", "configs": 1, "requests_per_config": args.read_requests, "instances": 1,
            "trace_mb": round(big.stat().st_size / 2**20, 1), "read_s": round(min(times), 3),
            "rows_reader_s": rows_s and round(rows_s, 3), "run_requests": args.run_requests,
            "run_trace_mb": round(run_trace.stat().st_size / 2**20, 1), "run_wall_s": round(run_wall, 2),
            "run_peak_mb": round(run_mb, 1), "cores": os.cpu_count() or 1, "cpu": cpu_model(),
            "read_requests_per_s": args.read_requests / min(times),
        }
    if emit(record, args.record, args.json):
        return
    print(f"read: {args.read_requests:,} requests ({record['trace_mb']} MB) in {record['read_s']:.2f} s"
          + (f" (row reader {rows_s:.1f} s)" if rows_s else ""))
    print(f"run: {args.run_requests:,} requests ({record['run_trace_mb']} MB): {run_wall:.1f} s, "
          f"peak {run_mb:.0f} MB resident")


if __name__ == "__main__":
    main()
