"""What borrowed array views buy: the same batch with and without them (BLIS_SWEEP_NO_BORROW=1).

Each mode runs in its own process (the switch is read when the kernels are imported), the
two alternating so that both see the same machine load; one Numba thread each, best of 3
per process. The first run of the no-borrow mode after a kernel change compiles it.

    python benchmarks/bench_borrow.py [--rounds 2]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def one_run() -> float:
    import numba

    from blis_sweep.engine import ensure_compiled, simulate
    from blis_sweep.sim_config import RoutingPolicy, SimConfig
    from blis_sweep.workloads.requests import distribution_workload

    numba.set_num_threads(1)
    ensure_compiled(announce=False)
    wl = distribution_workload(40.0, 4000, prefix_tokens=64, prompt_mean=300, prompt_std=100, prompt_min=2,
                               prompt_max=900, output_mean=100, output_std=50, output_min=1, output_max=300, seed=3)
    configs = [SimConfig(total_kv_blocks=blocks, alpha_coeffs=(232.5, 1.75, 3357.4), beta_coeffs=(5752.7, 17.25, 6.0),
                         num_instances=n, routing_policy=RoutingPolicy.LEAST_LOADED, max_running_reqs=running)
               for blocks in (2000, 20000) for n in (1, 4) for running in (32, 256)]
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        simulate(configs, [wl], [0] * len(configs))
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(f"{one_run():.4f}")
        return
    times: dict[str, list[float]] = {"borrowed views": [], "BLIS_SWEEP_NO_BORROW=1": []}
    for _ in range(args.rounds):
        for mode, extra in (("borrowed views", {}), ("BLIS_SWEEP_NO_BORROW=1", {"BLIS_SWEEP_NO_BORROW": "1"})):
            out = subprocess.run([sys.executable, __file__, "--one"], env={**os.environ, **extra}, cwd=REPO,
                                 capture_output=True, text=True, check=True)
            times[mode].append(float(out.stdout.split()[-1]))
    for mode, values in times.items():
        print(f"{mode:24s} " + "  ".join(f"{v:.3f} s" for v in values))
    ratios = [b / a for a, b in zip(*times.values())]
    print("slowdown without borrowing: " + ", ".join(f"{r:.2f}x" for r in ratios))


if __name__ == "__main__":
    main()
