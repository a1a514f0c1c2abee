"""Configurations/s of `grid` with the local backend and with 1 and 2 Ray workers, side by side.

One process runs the same sweep (default sweeps/h100_tp.yaml with chunk_size 64 and 500 requests
per configuration, so that a round takes a minute or two on 2 busy cores)
with the local backend (Numba threads = cores), then on a local Ray instance with 1 worker and
2 workers (one CPU and one Numba thread each), alternating for --repeats rounds. Each run starts
from an empty output directory; the one-time costs (kernel load, actor start-up) are reported
apart from the run itself. Rows of every Ray run are checked equal to the local run's.

From the Ray runs' per-chunk measurements (worker seconds, driver seconds, bytes sent each way)
it prints a scaling estimate for N machines of C cores:

    configs/s ~= min(N x C x per-core rate, driver limit, network limit)

    per-core rate  = configurations / worker-seconds (simulate + build tables)
    driver limit   = chunk_size / driver seconds per chunk (cut, submit, receive, write atomically)
    network limit  = link bytes/s / bytes per configuration (values out, tables back)

    python benchmarks/bench_ray.py                       # h100_tp at 500 requests, 1 round
    python benchmarks/bench_ray.py --chunk-size 256 --repeats 2 --link-gbit 10
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import pickle
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _bench_spec(spec: Path, chunk_size: int, num_requests: int | None, tmp: Path) -> Path:
    import yaml

    data = yaml.safe_load(spec.read_text())
    data["chunk_size"] = chunk_size
    if num_requests is not None:
        data["base"]["num_requests"] = num_requests
    for key in ("model_config", "hardware_config"):  # relative paths stay relative to the original file
        if isinstance(data["base"].get(key), str):
            data["base"][key] = str((spec.parent / data["base"][key]).resolve())
    path = tmp / spec.name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def run_local(spec: Path, out: Path) -> dict:
    import numba

    from blis_sweep.sweep.run import run_grid

    s = run_grid(spec, out=out, quiet=True, overwrite=True)
    run_s = s.wall_s - s.compile_s
    return {"backend": "local", "cores": numba.get_num_threads(), "run_s": round(run_s, 3),
            "one_time_s": round(s.compile_s, 3), "configs_per_s": round(s.simulated_configs / run_s, 1),
            "write_s": s.timings["write_s"], "chunks": s.chunks_run}


def run_ray(spec: Path, out: Path, workers: int) -> tuple[dict, dict]:
    import ray

    from blis_sweep.sweep.run import chunk_entries, run_grid
    from blis_sweep.sweep.spec import load_grid_spec
    from blis_sweep.sweep.ray_backend import RayBackend

    backend = RayBackend(workers=workers)
    try:
        s = run_grid(spec, out=out, quiet=True, overwrite=True, backend=backend)
        base_bytes = sum(len(pickle.dumps(ray.get(ref), protocol=5)) for ref in backend._base_refs.values())
    finally:
        backend.close()
    stats = backend.chunk_stats
    run_s = s.wall_s - backend.start_s
    # what the driver sends per chunk: the configurations' values, ids and seeds (measured on the first chunk)
    grid = load_grid_spec(spec)
    first = chunk_entries(grid, 0, min(grid.chunk_size, grid.num_configs))
    entry_bytes = len(pickle.dumps(first, protocol=5))
    configs = sum(c["configs"] for c in stats)
    measured = {
        "backend": "ray", "workers": workers, "run_s": round(run_s, 3), "one_time_s": round(backend.start_s, 3),
        "configs_per_s": round(s.simulated_configs / run_s, 1), "chunks": s.chunks_run,
    }
    per_chunk = {
        "chunk_size": grid.chunk_size,
        "worker_s_per_config": sum(c["worker_s"] for c in stats) / configs,
        # driver busy time: the run minus waiting for results and the final merge (cut, submit, receive, write)
        "driver_s_per_chunk": (run_s - backend.wait_s - s.timings["merge_s"]) / len(stats),
        "result_bytes_per_config": sum(c["result_bytes"] for c in stats) / configs,
        "sent_bytes_per_config": entry_bytes / len(first),
        "workload_bytes_once": base_bytes,
    }
    return measured, per_chunk


def same_rows(a: Path, b: Path) -> bool:
    import polars as pl

    return pl.read_parquet(a / "configs.parquet").equals(pl.read_parquet(b / "configs.parquet"))


def scaling(per_chunk: dict, cores: int, link_gbit: float) -> list[dict]:
    per_core = 1.0 / per_chunk["worker_s_per_config"]
    driver = per_chunk["chunk_size"] / per_chunk["driver_s_per_chunk"]
    network = link_gbit * 1e9 / 8 / (per_chunk["result_bytes_per_config"] + per_chunk["sent_bytes_per_config"])
    rows = []
    for machines in (1, 2, 4, 8, 16, 32, 64):
        compute = machines * cores * per_core
        rows.append({"machines": machines, "cores": machines * cores, "configs_per_s": round(min(compute, driver,
                                                                                                network), 0),
                     "bound": min((compute, "compute"), (driver, "driver"), (network, "network"))[1]})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", type=Path, default=ROOT / "sweeps" / "h100_tp.yaml")
    ap.add_argument("--chunk-size", type=int, default=64)
    ap.add_argument("--num-requests", type=int, default=500,
                    help="requests per configuration (replaces the sweep's num_requests; 0 keeps it)")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--cores-per-machine", type=int, default=32, help="for the scaling estimate")
    ap.add_argument("--link-gbit", type=float, default=1.0, help="driver's network link, for the estimate")
    args = ap.parse_args()

    import os

    import ray

    with tempfile.TemporaryDirectory(prefix="bench-ray-") as tmp_name:
        tmp = Path(tmp_name)
        spec = _bench_spec(args.spec, args.chunk_size, args.num_requests or None, tmp)
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False,
                 object_store_memory=256 << 20)
        try:
            results, per_chunk = [], None
            for r in range(args.repeats):
                local = run_local(spec, tmp / "local")
                results.append(local)
                for workers in (1, 2):
                    measured, per_chunk = run_ray(spec, tmp / f"ray{workers}", workers)
                    measured["rows_equal_local"] = same_rows(tmp / "local", tmp / f"ray{workers}")
                    results.append(measured)
                    if not measured["rows_equal_local"]:
                        print(f"ray with {workers} workers: rows differ from the local backend", file=sys.stderr)
                        return 1
        finally:
            ray.shutdown()

    for row in results:
        print(json.dumps(row))
    summary = {"date": dt.datetime.now().isoformat(timespec="seconds"), "spec": str(args.spec.name),
               "num_requests": args.num_requests or "as in the sweep",
               "cpus": os.cpu_count(), "ray": ray.__version__}
    for key, label in (("local", "local"), (1, "ray_1_worker"), (2, "ray_2_workers")):
        rates = [r["configs_per_s"] for r in results if r.get("workers", "local") == key]
        summary[f"{label}_configs_per_s"] = round(statistics.median(rates), 1)
    summary["per_chunk"] = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in per_chunk.items()}
    print(json.dumps(summary))
    print(f"scaling estimate ({args.cores_per_machine} cores per machine, {args.link_gbit:g} Gbit/s driver link):")
    for row in scaling(per_chunk, args.cores_per_machine, args.link_gbit):
        print(f"  {row['machines']:>3} machines ({row['cores']:>5} cores): {row['configs_per_s']:>10,.0f} configs/s"
              f"  ({row['bound']}-bound)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
