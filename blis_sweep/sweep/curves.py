"""`blis-sweep curves RUN_DIR`: saturation curves of a grid run, with Polars.

Rows of configs.parquet are grouped by every parameter except the rate and the seed
(a *group* is one deployment + workload; its rows form a curve along the rate axis).
For each (group, rate), over the replicates (seeds):

* offered_rps     arrivals per second over each run's steady window (blis_sweep.sweep.steady_state:
                  warm-up and cool-down cut)
* achieved_rps    completions per second over the steady window, with mean / min / max /
                  std across replicates. Unlike responses_per_sec (the reference's completed
                  / total simulated time, also reported) it counts neither the ramp-up nor
                  the final drain, so it equals the offered rate while the deployment keeps
                  up and its capacity once saturated
* achieved_ratio  achieved_rps / offered_rps (mean over replicates)
* latency percentiles over the steady window (mean over replicates); an SLO bound on a
                  metric with a steady-window version (ttft_p99_ms, ...) is judged on it
* slo_met         fraction of replicates whose run meets every SLO bound (metric <= bound)
* goodput_rps     with an attainment SLO, good requests (meeting every per-request bound)
                  per second of the steady window; otherwise achieved_rps of runs that meet
                  every SLO bound, 0 for runs that do not; averaged over replicates
* sustained       every replicate's verdict is `stable` (no backlog drift; runs without a
                  verdict: achieved_ratio >= --sustain) and meets the SLO

Per group, the saturation rate is the highest tested rate r such that every tested rate
<= r is sustained (None when the lowest rate already fails); the true saturation point
lies in [saturation_rate, next_rate), next_rate being the first rate that fails.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from blis_sweep.errors import BlisError
from blis_sweep.sweep.resolve import DERIVED_COLUMNS, PARAM_COLUMNS

CURVES_FILE = "curves.parquet"
DEFAULT_SUSTAIN = 0.95
LATENCY_COLUMNS = ("ttft_p50_ms", "ttft_p99_ms", "tpot_p50_ms", "tpot_p99_ms", "itl_p99_ms", "e2e_p50_ms",
                   "e2e_p99_ms", "scheduling_delay_p99_ms")
# not curve-group keys: the rate axis, replicate identity, and values derived from other parameters
NOT_GROUP_KEYS = DERIVED_COLUMNS | {"rate"}


@dataclass
class Curves:
    points: pl.DataFrame  # one row per (group, rate), group summary columns repeated
    groups: pl.DataFrame  # one row per group, best first
    group_columns: list[str]
    varying_columns: list[str]  # group columns that differ between groups
    slo: dict[str, float]
    sustain: float
    infeasible_configs: int


def load_run_slo(run_dir: Path) -> dict[str, float]:
    """The `slo:` of the sweep that produced run_dir (from its manifest), or {}."""
    try:
        manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    slo = manifest.get("slo") or {}
    return {str(k): float(v) for k, v in slo.items()}


def steady_view(configs: pl.DataFrame, metrics: list[str]) -> pl.DataFrame:
    """configs with each latency metric replaced by its steady-window version (runs of grid that have one)."""
    swap = [pl.col(f"steady_{m}").alias(m) for m in dict.fromkeys(metrics) if f"steady_{m}" in configs.columns]
    return configs.with_columns(swap) if swap else configs


def compute_curves(run_dir: str | Path | None = None, slo: dict[str, float] | None = None,
                   sustain: float = DEFAULT_SUSTAIN, configs: pl.DataFrame | None = None) -> Curves:
    """Curves of a run directory (or of a configs table given directly).

    slo: metric -> upper bound; None or {} uses the sweep file's slo: section.
    """
    if configs is None:
        run_dir = Path(run_dir)
        path = run_dir / "configs.parquet"
        if not path.is_file():
            raise BlisError(f"{path} not found: is {run_dir} the output directory of a finished `grid` run?")
        configs = pl.read_parquet(path)
        if not slo:
            slo = load_run_slo(run_dir)
    slo = dict(slo or {})
    if not (0 < sustain <= 1):
        raise BlisError(f"sustain ratio must be in (0, 1], got {sustain}")
    for key in slo:
        if key not in configs.columns:
            raise BlisError(f"SLO metric {key!r} is not a column of the results")

    configs = steady_view(configs, list(LATENCY_COLUMNS) + list(slo))
    n_infeasible = int(configs["infeasible"].sum()) if "infeasible" in configs.columns else 0
    df = configs.filter(~pl.col("infeasible")) if "infeasible" in configs.columns else configs
    group_cols = [c for c in PARAM_COLUMNS if c in df.columns and c not in NOT_GROUP_KEYS]

    slo_ok = pl.lit(True)
    for key, bound in slo.items():
        slo_ok = slo_ok & (pl.col(key) <= bound).fill_null(False)
    df = df.with_columns(
        _slo_ok=slo_ok,
        _ratio_ok=((pl.col("verdict") == "stable") if "verdict" in df.columns
                   else (pl.col("achieved_ratio") >= sustain)).fill_null(False),
        group_id=pl.struct(group_cols).rank("dense").cast(pl.Int64) - 1 if df.height else pl.lit(0, pl.Int64),
    ).with_columns(
        _goodput=(pl.col("goodput_rps").fill_null(0.0) if "goodput_rps" in df.columns
                  and df["goodput_rps"].null_count() < df.height
                  else pl.when(pl.col("_slo_ok")).then(pl.col("achieved_rps").fill_null(0.0)).otherwise(0.0)),
        _sustained=pl.col("_slo_ok") & pl.col("_ratio_ok"),
    )
    slo_fail = [pl.when(~(pl.col(k) <= b).fill_null(False)).then(pl.lit(k)) for k, b in slo.items()]
    fail_reason = pl.concat_str([pl.when(~pl.col("_ratio_ok")).then(pl.lit("throughput")), *slo_fail],
                                separator=",", ignore_nulls=True)
    df = df.with_columns(_fail=fail_reason)

    lat = [c for c in LATENCY_COLUMNS if c in df.columns]
    points = (
        df.group_by(["group_id", "rate"], maintain_order=True)
        .agg(
            *[pl.col(c).first() for c in group_cols],
            n_replicates=pl.len(),
            offered_rps=pl.col("offered_rps").mean(),
            achieved_rps=pl.col("achieved_rps").mean(),
            achieved_rps_min=pl.col("achieved_rps").min(),
            achieved_rps_max=pl.col("achieved_rps").max(),
            achieved_rps_std=pl.col("achieved_rps").std(),
            achieved_ratio=pl.col("achieved_ratio").mean(),
            responses_per_sec=pl.col("responses_per_sec").mean(),
            **{c: pl.col(c).mean() for c in lat},
            **({"preemptions": pl.col("preemptions").mean()} if "preemptions" in df.columns else {}),
            slo_met=pl.col("_slo_ok").mean(),
            goodput_rps=pl.col("_goodput").mean(),
            sustained=pl.col("_sustained").all(),
            fail_reason=pl.col("_fail").str.split(",").explode().filter(pl.col("_fail").str.split(",").explode()
                                                                          != "").unique().sort().str.join(","),
        )
        .with_columns(fail_reason=pl.when(pl.col("sustained")).then(None).otherwise(pl.col("fail_reason")))
        .sort(["group_id", "rate"], nulls_last=True)
        .with_columns(_prefix=pl.col("sustained").cast(pl.Int8).cum_min().over("group_id").cast(pl.Boolean))
    )
    groups = (
        points.group_by("group_id", maintain_order=True)
        .agg(
            *[pl.col(c).first() for c in group_cols],
            rates=pl.len(),
            saturation_rate=pl.col("rate").filter(pl.col("_prefix")).max(),
            next_rate=pl.col("rate").filter(~pl.col("_prefix")).min(),
            limited_by=pl.col("fail_reason").filter(~pl.col("_prefix")).first(),
            achieved_at_saturation=pl.col("achieved_rps").filter(pl.col("_prefix")).last(),
            goodput_at_saturation=pl.col("goodput_rps").filter(pl.col("_prefix")).last(),
            ttft_p99_at_saturation=pl.col("ttft_p99_ms").filter(pl.col("_prefix")).last(),
            tpot_p99_at_saturation=pl.col("tpot_p99_ms").filter(pl.col("_prefix")).last(),
            max_achieved_rps=pl.col("achieved_rps").max(),
            max_goodput_rps=pl.col("goodput_rps").max(),
        )
        .sort(["saturation_rate", "max_goodput_rps", "max_achieved_rps", "group_id"],
              descending=[True, True, True, False], nulls_last=True)
        .with_columns(rank=pl.int_range(1, pl.len() + 1))
    )
    summary_cols = ["group_id", "rank", "saturation_rate", "next_rate", "limited_by", "max_achieved_rps",
                    "max_goodput_rps"]
    points = (points.drop("_prefix")
              .join(groups.select(summary_cols), on="group_id", how="left")
              .sort(["rank", "rate"], nulls_last=True))
    varying = [c for c in group_cols if groups.height > 1 and groups[c].n_unique() > 1]
    return Curves(points=points, groups=groups, group_columns=group_cols, varying_columns=varying, slo=slo,
                  sustain=sustain, infeasible_configs=n_infeasible)


def write_curves(run_dir: str | Path, curves: Curves) -> Path:
    from blis_sweep.sweep.io import write_parquet_atomic

    path = Path(run_dir) / CURVES_FILE
    meta = {b"blis_sweep.slo": json.dumps(curves.slo).encode(), b"blis_sweep.sustain": str(curves.sustain).encode()}
    write_parquet_atomic(path, curves.points.to_arrow(), meta)
    return path


def _fmt(v, digits: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return str(v)


def render_table(curves: Curves, top: int = 20, title: str | None = None):
    """A rich Table of the best groups (highest saturation rate first)."""
    from rich.table import Table

    slo_text = ", ".join(f"{k} <= {v:g}" for k, v in curves.slo.items()) or "none"
    table = Table(title=title, caption=f"SLO: {slo_text}; sustained = verdict stable (no backlog drift) and SLO met at every "
                          f"rate up to it; rates in requests/s, latencies in ms over the steady window (at the "
                          f"saturation rate)",
                  header_style="bold", caption_justify="left")
    shown = curves.varying_columns or ["model", "hardware", "tp"]
    table.add_column("#", justify="right", no_wrap=True)
    for c in shown:
        table.add_column(c, justify="right" if curves.groups[c].dtype.is_numeric() else "left", no_wrap=True)
    for name in ("sat. rate", "next rate", "limited by", "achieved", "goodput", "ttft p99", "tpot p99",
                 "max achieved"):
        table.add_column(name, justify="left" if name == "limited by" else "right", no_wrap=True)
    for row in curves.groups.head(top).iter_rows(named=True):
        table.add_row(str(row["rank"]), *[_fmt(row[c], 2) for c in shown],
                      _fmt(row["saturation_rate"], 1), _fmt(row["next_rate"], 1), row["limited_by"] or "-",
                      _fmt(row["achieved_at_saturation"]), _fmt(row["goodput_at_saturation"]),
                      _fmt(row["ttft_p99_at_saturation"]), _fmt(row["tpot_p99_at_saturation"], 2),
                      _fmt(row["max_achieved_rps"]))
    return table


def run_curves(run_dir: str | Path, slo: dict[str, float] | None = None, sustain: float = DEFAULT_SUSTAIN,
               top: int = 20, quiet: bool = False, console=None) -> Curves:
    """Compute, write RUN_DIR/curves.parquet and print the table (unless quiet)."""
    curves = compute_curves(run_dir, slo=slo, sustain=sustain)
    path = write_curves(run_dir, curves)
    if not quiet:
        from rich.console import Console

        if console is None:
            console = Console()
            if not console.is_terminal:
                console = Console(width=200)  # pipes and files: do not squeeze the table to 80 columns
        console.print(render_table(curves, top=top,
                                   title=f"{Path(run_dir).name}: {curves.groups.height} curves, best first"))
        more = curves.groups.height - min(top, curves.groups.height)
        notes = [f"wrote {path}"]
        if more > 0:
            notes.append(f"{more} more curves in the file")
        if curves.infeasible_configs:
            notes.append(f"{curves.infeasible_configs} infeasible configurations left out")
        console.print("; ".join(notes))
    return curves
