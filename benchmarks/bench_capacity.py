"""`blis-sweep capacity` on sweeps/h100_tp_capacity.yaml: wall time, requests simulated, convergence.

Runs, each in a fresh process as a user would (warm Numba cache):

1. the sweep as written: wall time, rounds, requests simulated (the speed figure);
2. the same sweep with every starting run length doubled (num_requests x 2): per
   deployment, how much max_rate_rps moved (the convergence figure: < 3% is the bar);
3. the long-run throughput of the TP8 / 256 running / 8,192 tokens deployment: fixed
   overload (160 requests/s), runs of 30,000 requests, two seeds, through `grid` -
   compared with that deployment's capacity_rps.

Prints a summary and appends one record to benchmarks/capacity_history.jsonl.

    python benchmarks/bench_capacity.py [--spec sweeps/h100_tp_capacity.yaml] [--skip-doubled] [--skip-long]
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl
import yaml

ROOT = Path(__file__).resolve().parent.parent
HISTORY = Path(__file__).resolve().parent / "capacity_history.jsonl"
KEYS = ["tp", "max_num_running_reqs", "max_num_scheduled_tokens"]


def run_capacity(spec: Path, out: Path) -> tuple[float, dict, pl.DataFrame]:
    t0 = time.perf_counter()
    proc = subprocess.run(["blis-sweep", "capacity", str(spec), "--out", str(out), "--overwrite", "--quiet"],
                          capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"capacity failed:\n{proc.stderr}")
    manifest = json.loads((out / "manifest.json").read_text())
    return wall, manifest, pl.read_parquet(out / "capacity.parquet")


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", type=Path, default=ROOT / "sweeps" / "h100_tp_capacity.yaml")
    ap.add_argument("--skip-doubled", action="store_true", help="skip the doubled-run-length check")
    ap.add_argument("--skip-long", action="store_true", help="skip the TP8 long-run throughput check")
    args = ap.parse_args()
    spec_data = yaml.safe_load(args.spec.read_text())
    record: dict = {"bench": "capacity", "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                    "spec": str(args.spec.relative_to(ROOT) if args.spec.is_relative_to(ROOT) else args.spec)}
    with tempfile.TemporaryDirectory(prefix="bench-capacity-") as tmp_name:
        tmp = Path(tmp_name)
        wall, manifest, base = run_capacity(args.spec, tmp / "base")
        record.update(wall_s=round(wall, 1), search_wall_s=manifest["wall_s"], rounds=manifest["rounds"],
                      requests_simulated=manifest["requests_total"], deployments=base.height,
                      converged=int(base["converged"].sum()), machine=manifest["machine"], commit=manifest["commit"])
        print(f"capacity {record['spec']}: {base.height} deployments in {wall:.1f} s end to end "
              f"({manifest['rounds']} rounds, {manifest['requests_total']:,} requests simulated, "
              f"{record['converged']} converged)")

        if not args.skip_doubled:
            doubled = json.loads(json.dumps(spec_data))
            doubled["base"]["num_requests"] *= 2
            doubled["search"] = dict(doubled.get("search") or {})
            doubled["search"]["max_requests"] = 2 * int(doubled["search"].get("max_requests", 64000))
            spec2 = tmp / "doubled.yaml"
            spec2.write_text(yaml.safe_dump(doubled))
            wall2, manifest2, twice = run_capacity(spec2, tmp / "doubled")
            both = base.select(*KEYS, "max_rate_rps").join(
                twice.select(*KEYS, pl.col("max_rate_rps").alias("doubled")), on=KEYS)
            both = both.with_columns(change=(pl.col("doubled") / pl.col("max_rate_rps") - 1).abs())
            worst = both.sort("change", descending=True)
            record.update(doubled_wall_s=round(wall2, 1), doubled_requests=manifest2["requests_total"],
                          max_change=round(float(both["change"].max()), 4),
                          mean_change=round(float(both["change"].mean()), 4),
                          over_3pct=int((both["change"] >= 0.03).sum()))
            print(f"doubled starting run length: max change of max_rate_rps {record['max_change']:.1%}, "
                  f"mean {record['mean_change']:.1%}, {record['over_3pct']} of {both.height} deployments >= 3% "
                  f"({wall2:.1f} s, {manifest2['requests_total']:,} requests)")
            with pl.Config(tbl_rows=8):
                print(worst.head(5))

        if not args.skip_long:
            long = long_run_throughput(tmp, spec_data)
            tp8 = base.filter((pl.col("tp") == 8) & (pl.col("max_num_running_reqs") == 256)
                              & (pl.col("max_num_scheduled_tokens") == 8192))
            long_rps = float(long["saturated_rps"].mean())
            cap = float(tp8["capacity_rps"][0])
            record.update(tp8_capacity_rps=round(cap, 2), tp8_long_run_rps=round(long_rps, 2),
                          tp8_long_run_achieved_rps=round(float(long["achieved_rps"].mean()), 2),
                          tp8_max_rate_rps=round(float(tp8["max_rate_rps"][0]), 2))
            print(f"TP8/256/8192: capacity_rps {cap:.1f}; long runs (160 req/s, 30,000 requests, 2 seeds): "
                  f"{long_rps:.1f} req/s saturated, {record['tp8_long_run_achieved_rps']:.1f} achieved over the "
                  f"steady window; max_rate_rps {record['tp8_max_rate_rps']:.1f}")
    with HISTORY.open("a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
