"""Cold start: compile time of every kernel from an empty Numba cache, and the cached load after it.

Runs `blis_sweep.engine.ensure_compiled` in a fresh process with BLIS_SWEEP_CACHE_DIR pointing
at an empty temporary directory (the user's cache is not touched), recording Numba's compile
events per function (exclusive seconds: time in nested compiles is charged to the callee),
then once more in another process to time the load from the cache.

    python benchmarks/bench_compile.py [--top 12] [--json] [--record]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_engine import cpu_model, emit  # noqa: E402

CHILD = r"""
import json, sys, time
from collections import defaultdict
import numba.core.event as ev

exclusive = defaultdict(float)
stack = []

class Timer(ev.Listener):
    def on_start(self, event):
        stack.append([event.data["dispatcher"].py_func.__qualname__, time.perf_counter(), 0.0])
    def on_end(self, event):
        name, t0, nested = stack.pop()
        spent = time.perf_counter() - t0
        exclusive[name] += spent - nested
        if stack:
            stack[-1][2] += spent

ev.register("numba:compile", Timer())
t0 = time.perf_counter()
import blis_sweep.engine as engine
imported = time.perf_counter() - t0
seconds = engine.ensure_compiled(announce=False)
print(json.dumps({"import_s": imported, "compile_s": seconds, "functions": exclusive}))
"""


def child(cache: str) -> dict:
    env = dict(os.environ, BLIS_SWEEP_CACHE_DIR=cache)
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True, cwd=REPO)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--top", type=int, default=12)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--record", action="store_true", help="append the record to benchmarks/history.jsonl")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        t0 = time.perf_counter()
        cold = child(cache)
        cold_wall = time.perf_counter() - t0
        warm = child(cache)
    functions = sorted(cold["functions"].items(), key=lambda kv: -kv[1])
    record = {"benchmark": "compile", "configs": 1, "requests_per_config": 0, "instances": 1,
              "compile_s": round(cold["compile_s"], 2), "cold_process_s": round(cold_wall, 2),
              "cache_load_s": round(warm["compile_s"], 3), "import_s": round(warm["import_s"], 3),
              "functions_s": {k: round(v, 2) for k, v in functions[:args.top]},
              "cores": os.cpu_count() or 1, "cpu": cpu_model()}
    if emit(record, args.record, args.json):
        return
    print(f"cold compile: {cold['compile_s']:.1f} s (whole process {cold_wall:.1f} s); "
          f"load from cache: {warm['compile_s']:.2f} s after a {warm['import_s']:.2f} s import")
    total = sum(v for _, v in functions)
    print(f"{'function':<34} {'compile s':>9} {'share':>6}")
    for name, seconds in functions[:args.top]:
        print(f"{name:<34} {seconds:9.1f} {seconds / total:6.0%}")


if __name__ == "__main__":
    main()
