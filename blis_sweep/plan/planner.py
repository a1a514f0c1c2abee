"""`blis-sweep plan`: the cheapest deployments that serve a target request rate within an SLO.

1. Candidates: every deployment of a sweep file (model x GPU x TP x batch limits; `--gpus`
   and `--models` replace the file's GPUs and models), `rate` left out.
2. Per-replica capacity of each candidate: the highest rate one replica sustains in steady
   state within the SLO, searched by `blis-sweep capacity` (OUT/per_replica/).
3. Replicas = ceil(target x (1 + headroom) / per-replica capacity); more than `--max-gpus`
   GPUs drops the candidate. With several replicas every routing policy asked for is a
   candidate of its own.
4. Every candidate is then verified: the whole cluster (all replicas behind the router)
   is simulated at the target rate through `grid` (one sweep file per candidate under
   OUT/verify/, re-runnable with `blis-sweep grid`), with several seeds and runs of
   `verify_seconds` of traffic; it passes when every seed keeps up (achieved >= 95% of
   offered over the steady window) and meets every SLO bound (and, when the grid reports
   it, the run's steady-state verdict is `stable`). A candidate that fails gets one more
   replica and is verified again, up to `MAX_EXTRA_REPLICAS` times.
5. Ranked: verified deployments first, cheapest $/hour first; plan.parquet in OUT.
"""
from __future__ import annotations

import datetime as _dt
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import yaml

from blis_sweep.errors import BlisError
from blis_sweep.data.paths import bundled_sweep

PLAN_FILE = "plan.parquet"
DEFAULT_PLAN_SPEC = bundled_sweep("plan_llama8b.yaml")
DEFAULT_GPUS = ("H100", "A100-80GB")
DEFAULT_ROUTING = ("least-loaded", "round-robin")
DEFAULT_HEADROOM = 0.2
DEFAULT_MAX_GPUS = 64
DEFAULT_VERIFY_SECONDS = 60.0
VERIFY_SEEDS = 2
SUSTAIN = 0.95
MAX_EXTRA_REPLICAS = 2
PER_REPLICA_MAX_REQUESTS = 16_000
DEPLOYMENT_COLUMNS = ("model", "hardware", "tp", "max_num_running_reqs", "max_num_scheduled_tokens")


@dataclass
class PlanRequest:
    target_rate: float
    slo: dict[str, float]
    spec_path: Path = DEFAULT_PLAN_SPEC
    gpus: list[str] | None = None
    models: list[str] | None = None
    max_gpus: int = DEFAULT_MAX_GPUS
    headroom: float = DEFAULT_HEADROOM
    routing: list[str] = field(default_factory=lambda: list(DEFAULT_ROUTING))
    verify_seconds: float = DEFAULT_VERIFY_SECONDS
    prices_file: Path | None = None


@dataclass
class PlanResult:
    table: pl.DataFrame
    out_dir: Path
    capacity_source: str


def _log(quiet: bool):
    return (lambda msg: None) if quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))


# ---------------------------------------------------------------- checks (before any work)

def check_request(req: PlanRequest):
    """Validate everything; returns (base sweep as a dict, prices). Raises BlisError."""
    from blis_sweep.sweep.spec import load_grid_spec
    from blis_sweep.data.hardware import available_gpus
    from blis_sweep.data.prices import load_prices
    from blis_sweep.sim_config import ROUTING_NAMES

    r = req.target_rate
    if isinstance(r, bool) or not isinstance(r, (int, float)) or not math.isfinite(r) or r <= 0:
        raise BlisError(f"--target-rate must be a finite number of requests/s > 0, got {r!r}")
    if not (0 <= req.headroom < 1):
        raise BlisError(f"--headroom must be in [0, 1) (a share of capacity kept free), got {req.headroom}")
    if req.max_gpus < 1:
        raise BlisError(f"--max-gpus must be an integer >= 1, got {req.max_gpus}")
    if not (req.verify_seconds > 0 and math.isfinite(req.verify_seconds)):
        raise BlisError(f"--verify-seconds must be a number > 0, got {req.verify_seconds}")
    for policy in req.routing:
        if policy not in ROUTING_NAMES:
            raise BlisError(f"--routing: unknown policy {policy!r} (allowed: {', '.join(ROUTING_NAMES)})")
    if not req.routing:
        raise BlisError("--routing: give at least one routing policy")
    prices = load_prices(req.prices_file)
    spec = load_grid_spec(req.spec_path)
    sweep = spec.normalized()
    if "rate" in sweep["axes"]:
        raise BlisError(f"{req.spec_path}: axes.rate: a plan chooses the rates itself (the target rate and the "
                        f"per-replica search); remove `rate` from axes")
    for key in ("num_instances", "routing_policy"):
        if key in sweep["axes"]:
            raise BlisError(f"{req.spec_path}: axes.{key}: a plan chooses replicas and routing itself; remove it")
    gpus = req.gpus if req.gpus is not None else list(DEFAULT_GPUS)
    known = available_gpus()
    for gpu in gpus:
        if gpu not in known:
            raise BlisError(f"--gpus: unknown GPU {gpu!r} (allowed: {', '.join(known)})")
        if gpu not in prices:
            raise BlisError(f"--gpus: no price known for {gpu} (priced: {', '.join(sorted(prices))}); "
                            f"give one with --prices FILE")
    slo = dict(req.slo) or dict(spec.slo)
    if not slo:
        raise BlisError("plan needs an SLO: give --slo METRIC=BOUND (e.g. --slo ttft_p99_ms=500) or `slo:` in "
                        "the sweep file")
    for key in ("hardware", "model"):
        sweep["axes"].pop(key, None)
        sweep["zip"] = [[k for k in g if k != key] for g in sweep["zip"]]
    sweep["zip"] = [g for g in sweep["zip"] if len(g) > 1]
    sweep["axes"] = {"model": req.models or [sweep["base"]["model"]], "hardware": list(gpus), **sweep["axes"]}
    sweep["slo"] = slo
    sweep["base"]["rate"] = float(r)  # the plan sets every rate; validation needs one
    if "trace" in sweep["base"]["workload"] or "workload.trace" in sweep["axes"]:
        raise BlisError(f"{req.spec_path}: workload: a plan needs a generated workload (preset or distribution) "
                        f"whose rate it can set, not a trace")
    return sweep, prices


def sweep_file_dict(sweep: dict, name: str, **changes) -> dict:
    """A grid sweep file (only the keys a sweep file has) from a normalised sweep."""
    out = {"name": name, "description": sweep.get("description", ""), "base": dict(sweep["base"]),
           "axes": {k: v for k, v in sweep["axes"].items() if len(v) > 1 or k in ("model", "hardware")},
           "zip": sweep["zip"], "seeds": sweep["seeds"], "slo": sweep["slo"]}
    if sweep.get("steady_state"):
        out["steady_state"] = sweep["steady_state"]
    for k, v in sweep["axes"].items():
        if k not in out["axes"]:
            out["base"][k] = v[0]
    out["zip"] = [g for g in out["zip"] if all(k in out["axes"] for k in g)]
    out.update(changes)
    if not out["axes"]:
        del out["axes"]
    if not out["zip"]:
        del out["zip"]
    return out


def write_sweep_file(path: Path, sweep: dict, header: str) -> Path:
    from blis_sweep.sweep.io import atomic_write_text

    atomic_write_text(path, header + yaml.safe_dump(sweep, sort_keys=False, default_flow_style=None))
    return path


def check_capacity_sweep(sweep: dict, source: str) -> None:
    """Everything `capacity` would check of the per-replica sweep (models, GPUs, KV capacity, run
    lengths, search range), without simulating or writing anything."""
    from blis_sweep.sweep.capacity import capacity_settings
    from blis_sweep.sweep.resolve import Resolver
    from blis_sweep.sweep.spec import parse_grid_spec_text

    spec = parse_grid_spec_text(yaml.safe_dump(sweep, sort_keys=False), source=source)
    capacity_settings(spec)
    Resolver(spec).validate()


# ---------------------------------------------------------------- per-replica capacity

def search_range(req: PlanRequest, sweep_num_requests: int) -> dict:
    """`search:` block of the per-replica search: no rate above what the whole target needs
    (one replica is then enough), none below what a replica must carry to fit in max_gpus."""
    need = req.target_rate * (1 + req.headroom)
    return {"min_rate": need / req.max_gpus / 2, "max_rate": need * 1.05,
            "start_rate": min(max(need / 8, need / req.max_gpus), need),
            # an estimate that the whole-cluster verification then checks: runs need not grow as long as
            # a standalone capacity answer's (64,000 requests)
            "max_requests": max(PER_REPLICA_MAX_REQUESTS, int(sweep_num_requests))}


def per_replica_sweep(sweep: dict, req: PlanRequest) -> dict:
    cap_sweep = sweep_file_dict(sweep, "per_replica", search=search_range(
        req, max([sweep["base"]["num_requests"], *sweep["axes"].get("num_requests", [])])))
    cap_sweep["seeds"] = sweep["seeds"][:1]
    return cap_sweep


def per_replica_capacity(sweep: dict, req: PlanRequest, out_dir: Path, log) -> tuple[pl.DataFrame, str]:
    """One row per deployment: capacity_low / capacity_high (the interval holding the highest
    stable rate within the SLO for one replica), limited_by; from `blis-sweep capacity`
    (steady-state search) on the candidates, run into OUT/per_replica/."""
    from blis_sweep.sweep.capacity import run_capacity

    cap_sweep = per_replica_sweep(sweep, req)
    path = write_sweep_file(out_dir / "per_replica.yaml", cap_sweep,
                            "# blis-sweep plan: per-replica capacity search (re-run with `blis-sweep capacity`)\n")
    log(f"per-replica capacity: `capacity` search over the candidates -> {out_dir / 'per_replica'}")
    run = run_capacity(path, out=out_dir / "per_replica", quiet=True, progress=False, overwrite=True)
    table = run.table.select(*DEPLOYMENT_COLUMNS, capacity_low=pl.col("max_rate_low"),
                             capacity_high=pl.col("max_rate_high"), limited_by=pl.col("limited_by"))
    return table, (f"steady-state capacity search (`blis-sweep capacity`, tolerance "
                   f"{run_tolerance(run):.0%}, {run.requests_total:,} requests simulated)")


def run_tolerance(run) -> float:
    import json

    try:
        return float(json.loads((run.out_dir / "manifest.json").read_text())["search"]["tolerance"])
    except (OSError, ValueError, KeyError):
        return float("nan")


# ---------------------------------------------------------------- verification

@dataclass
class Verdict:
    passed: bool
    text: str
    achieved_rps: float
    achieved_ratio: float
    ttft_p99_ms: float
    tpot_p99_ms: float
    output_tokens_per_s: float
    requests: int


def judge(rows: pl.DataFrame, slo: dict[str, float]) -> Verdict:
    """Pass when every seed keeps up (achieved >= SUSTAIN of offered over the steady window), has
    the steady-state verdict `stable` and meets every SLO bound (on its steady-window value)."""
    from blis_sweep.sweep.capacity import slo_column

    fails = set()
    for r in rows.iter_rows(named=True):
        if r.get("infeasible"):
            fails.add("infeasible")
            continue
        if not (r["achieved_ratio"] is not None and r["achieved_ratio"] >= SUSTAIN):
            fails.add("throughput")
        if r.get("verdict") not in (None, "stable"):
            fails.add(f"steady state: {r['verdict']}")
        for key, bound in slo.items():
            value = r.get(slo_column(key, r))
            if value is None or not value <= bound:
                fails.add(key)
    ttft, tpot = slo_column("ttft_p99_ms", rows.columns), slo_column("tpot_p99_ms", rows.columns)
    out_tps = rows["steady_output_tokens_per_s"].mean()
    return Verdict(passed=not fails, text="pass" if not fails else "fail: " + ", ".join(sorted(fails)),
                   achieved_rps=rows["achieved_rps"].mean(), achieved_ratio=rows["achieved_ratio"].min(),
                   ttft_p99_ms=rows[ttft].max(), tpot_p99_ms=rows[tpot].max(),
                   output_tokens_per_s=out_tps, requests=int(rows["num_requests"].sum()))


def verify(sweep: dict, candidate: dict, req: PlanRequest, out_dir: Path, tag: str) -> tuple[Verdict, Path]:
    """Simulate the whole cluster of a candidate at the target rate through `grid`."""
    import pyarrow.parquet as pq

    from blis_sweep.sweep.run import run_grid

    base = dict(sweep["base"])
    base.update({k: candidate[k] for k in DEPLOYMENT_COLUMNS})
    base.update(num_instances=candidate["replicas"], routing_policy=candidate["routing_policy"],
                rate=float(req.target_rate),
                num_requests=max(int(base["num_requests"]), math.ceil(req.target_rate * req.verify_seconds)))
    seed0 = sweep["seeds"][0]
    vs = {"name": tag, "description": f"blis-sweep plan: verification of {candidate['label']} at "
                                      f"{req.target_rate:g} req/s", "base": base,
          "seeds": [seed0 + i for i in range(VERIFY_SEEDS)], "slo": sweep["slo"]}
    path = write_sweep_file(out_dir / "verify" / f"{tag}.yaml", vs,
                            "# blis-sweep plan: whole-cluster verification (re-run with `blis-sweep grid`)\n")
    run_dir = out_dir / "verify" / tag
    run_grid(path, out=run_dir, quiet=True, progress=False, overwrite=True)
    rows = pl.from_arrow(pq.read_table(run_dir / "configs.parquet"))
    return judge(rows, sweep["slo"]), path


# ---------------------------------------------------------------- plan

def make_plan(req: PlanRequest, out: str | Path | None = None, quiet: bool = False) -> PlanResult:
    from blis_sweep.sweep.io import atomic_write_json, write_parquet_atomic
    from blis_sweep.sweep.run_info import git_commit, machine_info, package_versions

    log = _log(quiet)
    sweep, prices = check_request(req)
    out_dir = Path(out) if out is not None else Path("results") / f"plan_{req.target_rate:g}rps"
    check_capacity_sweep(per_replica_sweep(sweep, req), str(req.spec_path))
    try:
        (out_dir / "verify").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BlisError(f"output directory {out_dir} is not writable ({exc.strerror or exc}); choose another --out")
    clear_verifications(out_dir / "verify")
    started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")

    capacity, source = per_replica_capacity(sweep, req, out_dir, log)
    candidates = []
    for d in capacity.iter_rows(named=True):
        cap = d["capacity_low"]
        if cap is None:
            continue
        replicas = max(1, math.ceil(req.target_rate * (1 + req.headroom) / cap - 1e-9))
        if replicas * d["tp"] > req.max_gpus:
            continue
        for policy in (req.routing if replicas > 1 else [sweep["base"]["routing_policy"]]):
            candidates.append({**{k: d[k] for k in DEPLOYMENT_COLUMNS}, "replicas": replicas,
                               "routing_policy": policy, "capacity_low": cap, "capacity_high": d["capacity_high"],
                               "capacity_limited_by": d["limited_by"]})
    if not candidates:
        log("no deployment can serve the target rate within the SLO and --max-gpus")
    log(f"verifying {len(candidates)} candidate deployments: whole clusters at {req.target_rate:g} req/s, "
        f"{VERIFY_SEEDS} seeds x {req.verify_seconds:g} s of traffic each")
    rows = []
    for i, c in enumerate(candidates):
        start = c["replicas"]
        while True:
            c["label"] = plan_label(c, several_models=len(sweep["axes"]["model"]) > 1)
            verdict, path = verify(sweep, c, req, out_dir, f"c{i:02d}-x{c['replicas']}")
            if verdict.passed or c["replicas"] - start >= MAX_EXTRA_REPLICAS \
                    or (c["replicas"] + 1) * c["tp"] > req.max_gpus:
                break
            c["replicas"] += 1
        rows.append(_row(c, verdict, path, start, req, prices))
        log(f"  {c['label']}: {verdict.text}")
    table = _rank(pl.DataFrame(rows, schema=PLAN_SCHEMA) if rows else pl.DataFrame(schema=PLAN_SCHEMA))
    meta = {b"blis_sweep.kind": b"plan", b"blis_sweep.target_rate": repr(float(req.target_rate)).encode()}
    write_parquet_atomic(out_dir / PLAN_FILE, table.to_arrow(), meta)
    spec_text = req.spec_path.read_text(encoding="utf-8")
    (out_dir / "sweep.yaml").write_text(spec_text, encoding="utf-8")
    atomic_write_json(out_dir / "manifest.json", {
        "kind": "plan", "name": f"plan_{req.target_rate:g}rps", "status": "complete", "target_rate": req.target_rate,
        "slo": sweep["slo"], "gpus": sweep["axes"]["hardware"], "models": sweep["axes"]["model"],
        "max_gpus": req.max_gpus, "headroom": req.headroom, "routing": list(req.routing),
        "verify_seconds": req.verify_seconds, "verify_seeds": VERIFY_SEEDS, "sustain": SUSTAIN,
        "seeds": [sweep["seeds"][0] + i for i in range(VERIFY_SEEDS)],
        "spec_file": str(req.spec_path), "capacity_source": source,
        "prices": {g: {"usd_per_gpu_hour": p.usd_per_gpu_hour, "source": p.source, "date": p.date}
                   for g, p in prices.items() if g in sweep["axes"]["hardware"]},
        "prices_file": str(req.prices_file) if req.prices_file else None,
        "versions": package_versions(), "commit": git_commit(), "machine": machine_info(),
        "started_at": started, "finished_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    })
    return PlanResult(table, out_dir, source)


def clear_verifications(folder: Path) -> None:
    """Remove an earlier plan's verification runs (ours only: cNN-xR.yaml and their folders)."""
    import re
    import shutil

    for p in folder.iterdir():
        if re.fullmatch(r"c\d{2,}-x\d+(\.yaml)?", p.name):
            shutil.rmtree(p) if p.is_dir() else p.unlink()


PLAN_SCHEMA = {
    "rank": pl.Int64, "verified": pl.Boolean, "verdict": pl.String, "label": pl.String,
    "model": pl.String, "hardware": pl.String, "tp": pl.Int64, "max_num_running_reqs": pl.Int64,
    "max_num_scheduled_tokens": pl.Int64, "replicas": pl.Int64, "routing_policy": pl.String, "gpus": pl.Int64,
    "usd_per_gpu_hour": pl.Float64, "usd_per_hour": pl.Float64, "usd_per_million_output_tokens": pl.Float64,
    "target_rate_rps": pl.Float64, "per_replica_capacity_rps": pl.Float64, "per_replica_next_rps": pl.Float64,
    "per_replica_limited_by": pl.String, "headroom": pl.Float64, "planned_replicas": pl.Int64,
    "margin_to_saturation": pl.Float64, "achieved_rps": pl.Float64, "achieved_ratio_min": pl.Float64,
    "ttft_p99_ms": pl.Float64, "tpot_p99_ms": pl.Float64, "output_tokens_per_s": pl.Float64,
    "tokens_per_s_per_gpu": pl.Float64, "verify_requests": pl.Int64, "verify_sweep": pl.String,
}


def plan_label(c: dict, several_models: bool) -> str:
    """e.g. `H100 tp=1 x11 round-robin running=256 tokens=8192` (the model's name too when several are planned)."""
    model = c["model"].rsplit("/", 1)[-1] + " " if several_models else ""
    routing = f" {c['routing_policy']}" if c["replicas"] > 1 else ""
    return (f"{model}{c['hardware']} tp={c['tp']} x{c['replicas']}{routing} "
            f"running={c['max_num_running_reqs']} tokens={c['max_num_scheduled_tokens']}")


def _row(c: dict, v: Verdict, path: Path, planned: int, req: PlanRequest, prices: dict) -> dict:
    price = prices[c["hardware"]].usd_per_gpu_hour
    gpus = c["replicas"] * c["tp"]
    usd_h = price * gpus
    return {
        "rank": 0, "verified": v.passed, "verdict": v.text, "label": c["label"],
        **{k: c[k] for k in DEPLOYMENT_COLUMNS}, "replicas": c["replicas"], "routing_policy": c["routing_policy"],
        "gpus": gpus, "usd_per_gpu_hour": price, "usd_per_hour": usd_h,
        "usd_per_million_output_tokens": usd_h / (v.output_tokens_per_s * 3600) * 1e6 if v.output_tokens_per_s else None,
        "target_rate_rps": float(req.target_rate), "per_replica_capacity_rps": c["capacity_low"],
        "per_replica_next_rps": c["capacity_high"], "per_replica_limited_by": c["capacity_limited_by"],
        "headroom": req.headroom, "planned_replicas": planned,
        "margin_to_saturation": c["replicas"] * c["capacity_low"] / req.target_rate - 1,
        "achieved_rps": v.achieved_rps, "achieved_ratio_min": v.achieved_ratio, "ttft_p99_ms": v.ttft_p99_ms,
        "tpot_p99_ms": v.tpot_p99_ms, "output_tokens_per_s": v.output_tokens_per_s,
        "tokens_per_s_per_gpu": v.output_tokens_per_s / gpus, "verify_requests": v.requests,
        "verify_sweep": str(path),
    }


def _rank(table: pl.DataFrame) -> pl.DataFrame:
    return (table.sort(["verified", "usd_per_hour", "gpus", "ttft_p99_ms"], descending=[True, False, False, False],
                       nulls_last=True)
            .with_columns(rank=pl.int_range(1, pl.len() + 1, dtype=pl.Int64)))


def render_plan_table(table: pl.DataFrame, top: int, title: str):
    from rich.table import Table

    t = Table(title=title, header_style="bold", caption_justify="left",
              caption="verified = the whole cluster simulated at the target rate keeps up (achieved >= 95% of "
                      "offered) and meets the SLO on every seed; $ are on-demand list-price estimates")
    for name in ("#", "deployment", "GPUs", "$/hour", "$/M out tok", "tok/s/GPU", "TTFT p99", "TPOT p99",
                 "margin", "verdict"):
        t.add_column(name, justify="left" if name in ("deployment", "verdict") else "right", no_wrap=True)
    for r in table.head(top).iter_rows(named=True):
        style = "green" if r["verified"] else "red"
        t.add_row(str(r["rank"]), r["label"], str(r["gpus"]), f"{r['usd_per_hour']:,.2f}",
                  "-" if r["usd_per_million_output_tokens"] is None else f"{r['usd_per_million_output_tokens']:.3f}",
                  f"{r['tokens_per_s_per_gpu']:,.0f}", f"{r['ttft_p99_ms']:,.1f}", f"{r['tpot_p99_ms']:.2f}",
                  f"{r['margin_to_saturation']:+.0%}", f"[{style}]{r['verdict']}[/{style}]")
    return t
