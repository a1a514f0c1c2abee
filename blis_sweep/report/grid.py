"""The report page of a `grid` run: saturation curves, Pareto front, heatmaps, ranked table, costs."""
from __future__ import annotations

import html
import math
from pathlib import Path

import polars as pl

from blis_sweep.report.document import Page, common_methods, fmt, html_table, read_manifest, read_text, slo_text
from blis_sweep.report.charts import heatmap_figure, pareto_figure, saturation_figure

TOP_CURVES = 8
HEATMAP_PREFERENCE = ("tp", "max_num_running_reqs", "max_num_scheduled_tokens", "num_instances", "hardware",
                      "model", "routing_policy", "scheduler")


def per_point_throughput(configs: pl.DataFrame, group_cols: list[str]) -> pl.DataFrame:
    """Per (group, rate), means over replicates of the steady window: output tokens/s, per GPU,
    and per user (1000 / mean TPOT in ms: the decode speed one user sees)."""
    df = configs.filter(~pl.col("infeasible")) if "infeasible" in configs.columns else configs
    instances = pl.col("num_instances") if "num_instances" in df.columns else pl.lit(1)
    steady = "steady_output_tokens_per_s" in df.columns  # runs written before steady-state metrics lack them
    return (df.with_columns(
        _gpus=pl.col("tp") * instances,
        _out_tps=pl.col("steady_output_tokens_per_s") if steady
        else pl.col("achieved_rps") * pl.col("total_output_tokens") / pl.col("completed_requests"),
        _user_tps=1000.0 / pl.col("steady_tpot_mean_ms" if steady else "tpot_mean_ms"),
    ).group_by([*group_cols, "rate"], maintain_order=True).agg(
        gpus=pl.col("_gpus").first(),
        output_tokens_per_s=pl.col("_out_tps").mean(),
        tokens_per_s_per_user=pl.col("_user_tps").mean(),
    ).with_columns(tokens_per_s_per_gpu=pl.col("output_tokens_per_s") / pl.col("gpus"),
                   _key=pl.struct([*group_cols, "rate"]).hash()))


def usd_per_million_tokens(usd_per_hour: float | None, tokens_per_s: float | None) -> float | None:
    if usd_per_hour is None or not tokens_per_s or tokens_per_s <= 0 or math.isnan(tokens_per_s):
        return None
    return usd_per_hour / (tokens_per_s * 3600.0) * 1e6


SHORT_NAMES = {"max_num_running_reqs": "running", "max_num_scheduled_tokens": "tokens", "num_instances": "replicas",
               "routing_policy": "routing", "long_prefill_token_threshold": "chunk"}


def label_of(row: dict, cols: list[str]) -> str:
    """A short name of a deployment: GPU and model names as they are, other parameters as key=value."""
    parts = []
    for c in cols:
        v = row[c]
        if c == "model" and isinstance(v, str):
            parts.append(v.rsplit("/", 1)[-1])
        elif c == "hardware":
            parts.append(str(v))
        else:
            parts.append(f"{SHORT_NAMES.get(c, c)}={v}")
    return " ".join(parts)


def heatmap_axes(varying: list[str], groups: pl.DataFrame) -> tuple[str, str] | None:
    candidates = [c for c in HEATMAP_PREFERENCE if c in varying] + [c for c in varying if c not in HEATMAP_PREFERENCE]
    # two parameters that vary independently (zipped axes give a diagonal, not a map)
    for i, a in enumerate(candidates):
        for b in candidates[i + 1:]:
            if groups.select(a, b).unique().height > max(groups[a].n_unique(), groups[b].n_unique()):
                return a, b
    return None


def best_rate_heatmap(table: pl.DataFrame, axes: tuple[str, str], column: str, title: str):
    """Heatmap of the best `column` value for each pair of values of two parameters."""
    a, b = axes
    cells = table.group_by(a, b).agg(pl.col(column).max())
    xs, ys = sorted(cells[a].unique().to_list()), sorted(cells[b].unique().to_list())
    lookup = {(r[a], r[b]): r[column] for r in cells.iter_rows(named=True)}
    return heatmap_figure([[lookup.get((x, y)) for x in xs] for y in ys], xs, ys, title, a, b, "req/s")


def grid_page(run_dir: Path, prices: dict) -> Page:
    from blis_sweep.sweep.curves import compute_curves

    manifest = read_manifest(run_dir)
    configs = pl.read_parquet(run_dir / "configs.parquet")
    curves = compute_curves(run_dir)
    shown = curves.varying_columns or ["model", "hardware", "tp"]
    tput = per_point_throughput(configs, curves.group_columns)
    points = curves.points.with_columns(_key=pl.struct([*curves.group_columns, "rate"]).hash()).join(
        tput.select("_key", "gpus", "output_tokens_per_s", "tokens_per_s_per_user", "tokens_per_s_per_gpu"),
        on="_key", how="left")

    # per group: throughput at the saturation rate, cost
    rows = []
    for g in curves.groups.iter_rows(named=True):
        at = points.filter((pl.col("group_id") == g["group_id"]) & (pl.col("rate") == g["saturation_rate"]))
        pt = at.row(0, named=True) if at.height else {}
        price = prices.get(g["hardware"])
        gpus = int(g["tp"] * (g.get("num_instances") or 1))
        usd_h = price.usd_per_gpu_hour * gpus if price else None
        rows.append({**g, "label": label_of(g, shown), "gpus": gpus,
                     "tokens_per_s_per_gpu": pt.get("tokens_per_s_per_gpu"),
                     "output_tokens_per_s": pt.get("output_tokens_per_s"), "usd_per_hour": usd_h,
                     "usd_per_mtok": usd_per_million_tokens(usd_h, pt.get("output_tokens_per_s"))})
    best = rows[0] if rows else None
    priced = [r for r in rows if r["usd_per_mtok"] is not None]
    cheapest = min(priced, key=lambda r: r["usd_per_mtok"]) if priced else None

    models = ", ".join(sorted(configs["model"].unique().to_list()))
    gpus_used = ", ".join(sorted(configs["hardware"].unique().to_list()))
    kept_up = ("stable in steady state (backlog not growing)" if "verdict" in configs.columns
               else f"achieved throughput &ge; {curves.sustain:.0%} of offered")
    question = (f"Which deployment of {html.escape(models)} on {html.escape(gpus_used)} sustains the highest offered "
                f"load: {kept_up} and SLO ({slo_text(curves.slo)}) "
                f"at every tested rate up to it? {len(rows)} deployments x "
                f"{configs['rate'].n_unique()} rates x {len(manifest.get('seeds') or [1])} seeds.")
    if best is None or best["saturation_rate"] is None:
        answer = "No deployment sustains even the lowest tested rate within the SLO."
    else:
        answer = (f"<b>{html.escape(best['label'])}</b> sustains <b>{fmt(best['saturation_rate'])} req/s</b> "
                  f"(the limit lies in [{fmt(best['saturation_rate'])}, {fmt(best['next_rate'])}) req/s, "
                  f"limited by {html.escape((best['limited_by'] or 'nothing tested').replace(',', ', '))}) on "
                  f"{best['gpus']} GPUs.")
        if cheapest is not None:
            answer += (f" Lowest cost per million output tokens at the saturation rate: "
                       f"<b>{html.escape(cheapest['label'])}</b>, ${cheapest['usd_per_mtok']:.3f} "
                       f"({html.escape(cheapest['hardware'])} at ${prices[cheapest['hardware']].usd_per_gpu_hour:.2f}"
                       f"/GPU-hour, an on-demand list-price estimate).")
    summary = {
        "deployments": ("Deployments (curves)", len(rows), ""),
        "configurations": ("Configurations simulated", configs.height - curves.infeasible_configs, ""),
        "infeasible": ("Infeasible configurations (weights do not fit)", curves.infeasible_configs, ""),
        "best_saturation_rate": ("Best saturation rate", best["saturation_rate"] if best else None, "req/s"),
        "best_next_rate": ("First failing rate of the best", best["next_rate"] if best else None, "req/s"),
        "best_tokens_per_s_per_gpu": ("Output tokens/s per GPU of the best, at saturation",
                                      best["tokens_per_s_per_gpu"] if best else None, ""),
        "cheapest_usd_per_mtok": ("Lowest $ per million output tokens",
                                  cheapest["usd_per_mtok"] if cheapest else None, "USD", 3),
    }

    charts = []
    top = rows[:TOP_CURVES]
    curve_data = []
    for r in top:
        pts = points.filter(pl.col("group_id") == r["group_id"]).sort("offered_rps")
        curve_data.append({"label": r["label"], "offered": pts["offered_rps"].to_list(),
                           "achieved": pts["achieved_rps"].to_list(), "achieved_min": pts["achieved_rps_min"].to_list(),
                           "achieved_max": pts["achieved_rps_max"].to_list(), "ttft_p99": pts["ttft_p99_ms"].to_list(),
                           "tpot_p99": pts["tpot_p99_ms"].to_list(), "sat": r["saturation_rate"],
                           "next": r["next_rate"]})
    if curve_data:
        charts.append(("saturation", saturation_figure(curve_data, curves.slo)))
    sustained = points.filter(pl.col("sustained") & pl.col("tokens_per_s_per_gpu").is_not_null()
                              & pl.col("tokens_per_s_per_user").is_not_null())
    pareto_src = sustained if sustained.height else points.drop_nulls(["tokens_per_s_per_gpu", "tokens_per_s_per_user"])
    if pareto_src.height:
        labels = [f"{label_of(p, shown)}, rate={p['rate']:g}" for p in pareto_src.iter_rows(named=True)]
        charts.append(("pareto", pareto_figure(
            pareto_src["tokens_per_s_per_user"].to_list(), pareto_src["tokens_per_s_per_gpu"].to_list(), labels,
            "Throughput per GPU against speed per user" + (" (sustained points only)" if sustained.height else ""),
            "output tokens/s per user (1000 / steady mean TPOT ms)", "output tokens/s per GPU")))
    axes = heatmap_axes(curves.varying_columns, curves.groups)
    if axes is not None:
        charts.append(("heatmap", best_rate_heatmap(curves.groups, axes, "saturation_rate",
                                                    f"Highest sustained rate (req/s) by {axes[0]} and {axes[1]}"
                                                    + (" (best over the other parameters)"
                                                       if len(curves.varying_columns) > 2 else ""))))
    if rows:
        rates = sorted(points["rate"].unique().to_list())
        ratio = {(r["group_id"], r["rate"]): r["achieved_ratio"] for r in points.iter_rows(named=True)}
        z = [[ratio.get((r["group_id"], x)) for x in rates] for r in top]
        charts.append(("ratio", heatmap_figure(z, [f"{x:g}" for x in rates], [r["label"] for r in top],
                                               "Achieved / offered by deployment and offered rate",
                                               "offered rate (req/s)", "deployment", "ratio")))

    columns = [("rank", "#"), *[(c, c) for c in shown], ("gpus", "GPUs"), ("saturation_rate", "sat. rate"),
               ("next_rate", "next rate"), ("limited_by", "limited by"), ("achieved_at_saturation", "achieved"),
               ("goodput_at_saturation", "goodput"), ("ttft_p99_at_saturation", "TTFT p99 ms"),
               ("tpot_p99_at_saturation", "TPOT p99 ms"), ("tokens_per_s_per_gpu", "tok/s/GPU"),
               ("usd_per_hour", "$/hour"), ("usd_per_mtok", "$/M out tok")]
    table = html_table(columns, rows, "ranked", digits={"usd_per_mtok": 3, "usd_per_hour": 2,
                                                          "tpot_p99_at_saturation": 2})
    sections = [("Ranked deployments", table + '<p class="note">Rates in requests/s at the saturation rate; '
                 "$/hour from the price table below; $/M out tok = $/hour / (output tokens/s x 3600) x 10<sup>6</sup> "
                 "at the saturation rate.</p>")]
    sections.append(("GPU prices used", price_note(prices, sorted(configs["hardware"].unique().to_list()))))

    num_requests = sorted(configs["num_requests"].unique().to_list()) if "num_requests" in configs.columns else []
    arrival = ", ".join(sorted(configs["arrival"].unique().to_list())) if "arrival" in configs.columns else "?"
    methods = common_methods(manifest, run_dir) + [
        ("Run lengths", html.escape(f"{', '.join(str(n) for n in num_requests)} requests per configuration, "
                                    f"{arrival} arrivals; {len(manifest.get('seeds') or [1])} replicates (seeds) "
                                    f"per point, spread shown as min-max")),
        ("Steady state", steady_note(configs, curves.sustain)),
        ("SLO", slo_text(curves.slo) + (" (from the sweep file)" if curves.slo else "")),
        ("Saturation rate", "the highest tested rate r such that every tested rate &le; r is sustained (every "
                            "replicate keeps up and meets the SLO); the true limit lies in [r, next rate)"),
    ]
    return Page(title=f"{manifest.get('name', run_dir.name)}: capacity of {len(rows)} deployments", kind="grid",
                question=question, answer_html=answer, summary=summary, charts=charts, sections=sections,
                methods=methods, sweep_text=read_text(run_dir / "sweep.yaml"))


def steady_note(configs: pl.DataFrame, sustain: float) -> str:
    if "verdict" not in configs.columns:  # runs written before steady-state metrics
        return (f"a rate is kept up with when achieved &ge; {sustain:.0%} of offered, both measured between the 5% "
                f"and 95% quantiles of arrival and completion times")
    counts = configs.group_by("verdict").len().sort("verdict")
    return ("each run's warm-up and cool-down are cut (blis_sweep.sweep.steady_state); a rate is kept up with when the "
            "run's verdict is stable (the backlog does not grow); latencies and throughput over the steady window; "
            "per-run verdicts: " + ", ".join(f"{html.escape(str(r['verdict']))} {r['len']}"
                                             for r in counts.iter_rows(named=True)))


def price_note(prices: dict, gpus: list[str]) -> str:
    rows = [{"gpu": g, "usd": prices[g].usd_per_gpu_hour if g in prices else None,
             "source": (prices[g].source if g in prices else "no price known: give one with --prices FILE"),
             "date": prices[g].date if g in prices else ""} for g in gpus]
    return (html_table([("gpu", "GPU"), ("usd", "USD per GPU-hour"), ("date", "date"), ("source", "source")], rows,
                       "prices", digits={"usd": 2})
            + '<p class="note">On-demand list-price <b>estimates</b> (hardware/gpu_prices.yaml unless overridden with '
              "--prices): reserved, spot or negotiated prices differ widely.</p>")
