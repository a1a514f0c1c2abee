"""Time `blis-sweep grid` on a sweep file (default sweeps/h100_tp.yaml) and record the numbers.

Each repeat runs the grid in a fresh Python process, as a user would, and reports:

* end_to_end_s   process start to finished configs.parquet (imports, kernel load/compile, run)
* compile_s      the first, tiny kernel call: JIT compilation, or loading Numba's on-disk cache
                 (with --cold the cache starts empty, so this is the full compile)
* run_s          the rest of the run (build configs, simulate, write chunks, merge)
* configs_per_s  configurations per second of run_s
* requests_per_s_per_core  simulated requests per second of kernel time, per Numba thread

A record per repeat is appended to benchmarks/history.jsonl (date, machine, commit,
numbers); `python benchmarks/compare.py` compares the latest against the history.

    python benchmarks/bench_grid.py                 # warm kernel cache, 1 repeat
    python benchmarks/bench_grid.py --cold --repeats 2
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HISTORY = Path(__file__).resolve().parent / "history.jsonl"

_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
from blis_sweep.sweep.run import run_grid
s = run_grid(sys.argv[1], out=sys.argv[2], overwrite=True, quiet=True)
import numba
print(json.dumps({"inner_s": time.perf_counter() - t0, "wall_s": s.wall_s, "compile_s": s.compile_s,
                  "simulate_s": s.simulate_s, "timings": s.timings, "num_configs": s.num_configs,
                  "simulated_configs": s.simulated_configs, "simulated_requests": s.simulated_requests,
                  "infeasible": s.infeasible, "threads": numba.get_num_threads()}))
"""


def run_once(spec: Path, cold: bool) -> dict:
    env = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="bench-grid-") as tmp:
        if cold:  # kernels/__init__.py roots Numba's cache at BLIS_SWEEP_CACHE_DIR
            env["BLIS_SWEEP_CACHE_DIR"] = env["NUMBA_CACHE_DIR"] = str(Path(tmp) / "numba-cache")
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", _CHILD, str(spec), str(Path(tmp) / "out")],
                              capture_output=True, text=True, env=env, cwd=ROOT)
        end_to_end = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"grid run failed:\n{proc.stderr}")
    child = json.loads(proc.stdout.strip().splitlines()[-1])
    run_s = child["wall_s"] - child["compile_s"]
    return {
        "end_to_end_s": round(end_to_end, 3),
        "compile_s": round(child["compile_s"], 3),
        "run_s": round(run_s, 3),
        "simulate_s": round(child["simulate_s"], 3),
        "num_configs": child["num_configs"],
        "simulated_requests": child["simulated_requests"],
        "threads": child["threads"],
        "configs_per_s": round(child["simulated_configs"] / run_s, 2),
        "requests_per_s_per_core": round(child["simulated_requests"] / child["simulate_s"] / child["threads"], 1),
        "timings": child["timings"],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", type=Path, default=ROOT / "sweeps" / "h100_tp.yaml")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--cold", action="store_true", help="empty Numba cache: measure the full JIT compile")
    ap.add_argument("--history", type=Path, default=HISTORY)
    ap.add_argument("--no-record", action="store_true", help="print only, do not append to the history")
    args = ap.parse_args()

    sys.path.insert(0, str(ROOT))
    from blis_sweep.sweep.run_info import cpu_model, git_commit, package_versions

    spec = args.spec.resolve()
    for i in range(args.repeats):
        numbers = run_once(spec, args.cold)
        record = {
            "bench": "grid",
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "spec": spec.relative_to(ROOT).as_posix() if spec.is_relative_to(ROOT) else str(spec),
            "cold": args.cold,
            "kernel_compiled": numbers["compile_s"] > 2.0,  # a warm run can still compile after a kernel change
            "machine": {"cpu": cpu_model(), "cores": os.cpu_count()},
            "commit": git_commit(),
            "versions": {k: v for k, v in package_versions().items() if k in ("python", "numba", "numpy")},
            **numbers,
        }
        print(f"[{i + 1}/{args.repeats}] {record['spec']}: {numbers['num_configs']} configs, "
              f"end-to-end {numbers['end_to_end_s']:.1f} s (kernel {'compile' if args.cold else 'load'} "
              f"{numbers['compile_s']:.1f} s, run {numbers['run_s']:.1f} s): {numbers['configs_per_s']:.1f} configs/s, "
              f"{numbers['requests_per_s_per_core']:,.0f} simulated requests/s per core "
              f"({numbers['threads']} threads)")
        if not args.no_record:
            with open(args.history, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
