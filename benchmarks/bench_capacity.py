"""`blis-sweep capacity` on sweeps/h100_tp_capacity.yaml: wall and CPU time, requests simulated, convergence.

Runs, each in a fresh process as a user would (warm Numba cache):

1. the sweep as written: wall time, CPU seconds (user + sys of the process), load average,
   rounds, requests simulated (the speed figure);
2. the same sweep with every run length doubled (num_requests x 2, max_requests x 2): per
   deployment, how much max_rate_rps moved (the convergence figure: < 3% is the bar);
3. the long-run throughput of the TP8 / 256 running / 8,192 tokens deployment: fixed
   overload (160 requests/s), runs of 30,000 requests, two seeds, through `grid` -
   compared with that deployment's capacity_rps.

Prints a summary and the per-deployment table; with --record appends one record to
benchmarks/history.jsonl (`python benchmarks/compare.py` compares it with earlier ones).

    python benchmarks/bench_capacity.py [--spec sweeps/h100_tp_capacity.yaml] [--skip-doubled] [--skip-long]
                                        [--record]
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl
import yaml

ROOT = Path(__file__).resolve().parent.parent
HISTORY = Path(__file__).resolve().parent / "history.jsonl"
KEYS = ["tp", "max_num_running_reqs", "max_num_scheduled_tokens"]


def _child_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(cmd: list[str]) -> tuple[subprocess.CompletedProcess, float, float, float]:
    """Run a command; (result, wall s, CPU s of the child = user + sys, load average at the start)."""
    load = os.getloadavg()[0]
    cpu0, t0 = _child_cpu_s(), time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    return proc, time.perf_counter() - t0, _child_cpu_s() - cpu0, load


def run_capacity(spec: Path, out: Path) -> dict:
    proc, wall, cpu, load = timed(["blis-sweep", "capacity", str(spec), "--out", str(out), "--overwrite", "--quiet"])
    if proc.returncode != 0:
        sys.exit(f"capacity failed:\n{proc.stderr}")
    manifest = json.loads((out / "manifest.json").read_text())
    table = pl.read_parquet(out / "capacity.parquet")
    print(f"  {spec.name}: {table.height} deployments in {wall:.1f} s wall, {cpu:.1f} CPU s (load average "
          f"{load:.1f} -> {os.getloadavg()[0]:.1f}), {manifest['rounds']} rounds, "
          f"{manifest['requests_total']:,} requests simulated, {int(table['converged'].sum())} converged",
          flush=True)
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # largest child so far
    return {"wall_s": wall, "cpu_s": cpu, "load1": load, "load1_end": os.getloadavg()[0], "manifest": manifest,
            "table": table, "peak_mb": peak_mb}


def long_run_throughput(tmp: Path, spec_data: dict) -> pl.DataFrame:
    data = json.loads(json.dumps(spec_data))
    data["name"] = "tp8_long"
    data.pop("search", None)
    data["base"].update(tp=8, max_num_running_reqs=256, max_num_scheduled_tokens=8192, num_requests=30000)
    data["axes"] = {"rate": [160.0]}
    data["replicates"] = 2
    spec = tmp / "tp8_long.yaml"
    spec.write_text(yaml.safe_dump(data))
    out = tmp / "tp8_long"
    proc = subprocess.run(["blis-sweep", "grid", str(spec), "--out", str(out), "--quiet"], capture_output=True,
                          text=True, cwd=ROOT)
    if proc.returncode != 0:
        sys.exit(f"grid failed:\n{proc.stderr}")
    return pl.read_parquet(out / "configs.parquet")


def doubled_spec(spec_data: dict) -> dict:
    """Every run length of the search doubled: the starting length and the cap."""
    doubled = json.loads(json.dumps(spec_data))
    doubled["name"] = f"{spec_data.get('name', 'capacity')}_doubled"
    doubled["base"]["num_requests"] *= 2
    doubled["search"] = dict(doubled.get("search") or {})
    doubled["search"]["max_requests"] = 2 * int(doubled["search"].get("max_requests", 64000))
    return doubled


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", type=Path, default=ROOT / "sweeps" / "h100_tp_capacity.yaml")
    ap.add_argument("--skip-doubled", action="store_true", help="skip the doubled-run-length check")
    ap.add_argument("--skip-long", action="store_true", help="skip the TP8 long-run throughput check")
    ap.add_argument("--record", action="store_true", help="append the result to benchmarks/history.jsonl")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from blis_sweep.sweep.run_info import cpu_model, git_commit

    spec_path = args.spec.resolve()
    spec_data = yaml.safe_load(spec_path.read_text())
    record: dict = {"bench": "capacity", "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                    "spec": spec_path.relative_to(ROOT).as_posix() if spec_path.is_relative_to(ROOT) else str(spec_path),
                    "cold": False, "machine": {"cpu": cpu_model(), "cores": os.cpu_count()}, "commit": git_commit()}
    with tempfile.TemporaryDirectory(prefix="bench-capacity-") as tmp_name:
        tmp = Path(tmp_name)
        base = run_capacity(spec_path, tmp / "base")
        m, table = base["manifest"], base["table"]
        record.update(wall_s=round(base["wall_s"], 1), cpu_s=round(base["cpu_s"], 1), load1=round(base["load1"], 2),
                      load1_end=round(base["load1_end"], 2), search_wall_s=m["wall_s"], simulate_s=m["simulate_s"],
                      rounds=m["rounds"], requests_simulated=m["requests_total"], deployments=table.height,
                      peak_rss_mb=round(base["peak_mb"]),
                      probes=int(table["probes"].sum()), converged=int(table["converged"].sum()),
                      # the fields benchmarks/compare.py compares between records of one kind
                      configs_per_s=round(int(table["probes"].sum()) / base["wall_s"], 2),
                      requests_per_s_per_core=round(m["requests_total"] / max(base["cpu_s"], 1e-9), 1))

        if not args.skip_doubled:
            spec2 = tmp / "doubled.yaml"
            spec2.write_text(yaml.safe_dump(doubled_spec(spec_data), sort_keys=False))
            twice = run_capacity(spec2, tmp / "doubled")
            both = table.select(*KEYS, "max_rate_rps", "converged", "requests_simulated").join(
                twice["table"].select(*KEYS, pl.col("max_rate_rps").alias("doubled"),
                                      pl.col("converged").alias("doubled_converged")), on=KEYS)
            both = both.with_columns(change=(pl.col("doubled") / pl.col("max_rate_rps") - 1)).sort(KEYS)
            over = both.filter(pl.col("change").abs() >= 0.03)
            record.update(doubled_wall_s=round(twice["wall_s"], 1), doubled_cpu_s=round(twice["cpu_s"], 1),
                          doubled_requests=twice["manifest"]["requests_total"],
                          doubled_converged=int(twice["table"]["converged"].sum()),
                          doubled_peak_rss_mb=round(twice["peak_mb"]),
                          max_change=round(float(both["change"].abs().max()), 4),
                          mean_change=round(float(both["change"].abs().mean()), 4),
                          over_3pct=over.height, under_3pct=both.height - over.height,
                          changes={"/".join(str(r[k]) for k in KEYS): round(r["change"], 4)
                                   for r in both.iter_rows(named=True)})
            with pl.Config(tbl_rows=100, tbl_width_chars=160, float_precision=3):
                print(both)
            print(f"doubled run lengths: max_rate_rps moved by < 3% for {record['under_3pct']} of {both.height} "
                  f"deployments; max |change| {record['max_change']:.1%}, mean {record['mean_change']:.1%}")

        if not args.skip_long:
            long = long_run_throughput(tmp, spec_data)
            tp8 = table.filter((pl.col("tp") == 8) & (pl.col("max_num_running_reqs") == 256)
                               & (pl.col("max_num_scheduled_tokens") == 8192))
            long_rps = float(long["saturated_rps"].mean())
            cap = float(tp8["capacity_rps"][0])
            record.update(tp8_capacity_rps=round(cap, 2), tp8_long_run_rps=round(long_rps, 2),
                          tp8_long_run_achieved_rps=round(float(long["achieved_rps"].mean()), 2),
                          tp8_max_rate_rps=round(float(tp8["max_rate_rps"][0]), 2))
            print(f"TP8/256/8192: capacity_rps {cap:.1f}; long runs (160 req/s, 30,000 requests, 2 seeds): "
                  f"{long_rps:.1f} req/s saturated, {record['tp8_long_run_achieved_rps']:.1f} achieved over the "
                  f"steady window; max_rate_rps {record['tp8_max_rate_rps']:.1f}")
    summary = {k: v for k, v in record.items() if k not in ("changes", "machine")}
    print(json.dumps(summary))
    if args.record:
        with HISTORY.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
