"""The report page of a `capacity` run: highest steady-state rate per deployment, Pareto, heatmap, costs."""
from __future__ import annotations

import html
from pathlib import Path

import polars as pl

from blis_sweep.report.document import Page, common_methods, fmt, html_table, read_manifest, read_text, slo_text
from blis_sweep.report.charts import bar_figure, pareto_figure
from blis_sweep.report.grid import best_rate_heatmap, heatmap_axes, label_of, price_note, usd_per_million_tokens

NOT_PARAMS = {"deployment_id", "rank", "sweep", "infeasible", "infeasible_reason", "kv_blocks_source",
              "total_kv_blocks", "alpha_coeffs", "beta_coeffs", "vllm_version"}


def varying_params(table: pl.DataFrame) -> list[str]:
    from blis_sweep.sweep.resolve import PARAM_COLUMNS

    cols = [c for c in PARAM_COLUMNS if c in table.columns and c not in NOT_PARAMS]
    return [c for c in cols if table.height > 1 and table[c].n_unique() > 1] or ["model", "hardware", "tp"]


def capacity_rows(table: pl.DataFrame, prices: dict, shown: list[str]) -> list[dict]:
    rows = []
    for r in table.sort("rank").iter_rows(named=True):
        price = prices.get(r["hardware"])
        usd_h = price.usd_per_gpu_hour * r["gpus"] if price else None
        rows.append({**r, "label": label_of(r, shown), "usd_per_hour": usd_h,
                     "usd_per_mtok": usd_per_million_tokens(usd_h, r.get("output_tokens_per_s"))})
    return rows


def capacity_charts(rows: list[dict], table: pl.DataFrame, shown: list[str], slo: dict) -> list[tuple[str, object]]:
    """Max rate per deployment (with its interval), tokens/s/GPU vs tokens/s/user, heatmap over two parameters."""
    charts = []
    found = [r for r in rows if r["max_rate_rps"] is not None]
    if found:
        charts.append(("capacity", bar_figure(
            [r["label"] for r in found], [r["max_rate_rps"] for r in found],
            "Highest stable rate within the SLO per replica (bars: the search's final interval)",
            "max rate (req/s)", low=[r["max_rate_low"] for r in found],
            high=[r["max_rate_high"] if r["max_rate_high"] is not None else r["max_rate_rps"] for r in found])))
    pts = [r for r in found if r.get("output_tokens_per_s_per_gpu") and r.get("steady_tpot_mean_ms")]
    if pts:
        charts.append(("pareto", pareto_figure(
            [1000.0 / r["steady_tpot_mean_ms"] for r in pts], [r["output_tokens_per_s_per_gpu"] for r in pts],
            [r["label"] for r in pts], "Throughput per GPU against speed per user, at each deployment's max rate",
            "output tokens/s per user (1000 / steady mean TPOT ms)", "output tokens/s per GPU")))
    axes = heatmap_axes([c for c in shown if c in table.columns], table) if len(shown) >= 2 else None
    if axes is not None:
        charts.append(("heatmap", best_rate_heatmap(table, axes, "max_rate_rps",
                                                    f"Highest stable rate (req/s) by {axes[0]} and {axes[1]}")))
    return charts


CAPACITY_COLUMNS = [("gpus", "GPUs"), ("max_rate_rps", "max rate"), ("max_rate_high", "first failing"),
                    ("capacity_rps", "overload throughput"), ("limited_by", "limited by"), ("converged", "converged"),
                    ("steady_ttft_p99_ms", "TTFT p99 ms"), ("steady_tpot_p99_ms", "TPOT p99 ms"),
                    ("goodput_rps", "goodput"), ("output_tokens_per_s_per_gpu", "tok/s/GPU"),
                    ("usd_per_hour", "$/hour"), ("usd_per_mtok", "$/M out tok"), ("run_requests", "run length"),
                    ("requests_simulated", "requests simulated")]
DIGITS = {"usd_per_mtok": 3, "usd_per_hour": 2, "steady_tpot_p99_ms": 2, "max_rate_rps": 2, "max_rate_high": 2}


def capacity_page(run_dir: Path, prices: dict) -> Page:
    manifest = read_manifest(run_dir)
    table = pl.read_parquet(run_dir / "capacity.parquet")
    shown = varying_params(table)
    rows = capacity_rows(table, prices, shown)
    slo = manifest.get("slo") or {}
    best = rows[0] if rows and rows[0]["max_rate_rps"] is not None else None
    priced = [r for r in rows if r["usd_per_mtok"] is not None]
    cheapest = min(priced, key=lambda r: r["usd_per_mtok"]) if priced else None
    question = (f"What is the highest offered rate each of {len(rows)} deployments sustains in steady state "
                f"(backlog not growing) within the SLO ({slo_text(slo)})?")
    if best is None:
        answer = "No deployment is stable within the SLO at any searched rate."
    else:
        answer = (f"<b>{html.escape(best['label'])}</b>: <b>{fmt(best['max_rate_rps'], 2)} req/s</b> (the boundary "
                  f"lies in [{fmt(best['max_rate_low'], 2)}, {fmt(best['max_rate_high'], 2)}), limited by "
                  f"{html.escape(str(best['limited_by']))}) on {best['gpus']} GPUs.")
        if cheapest is not None:
            answer += (f" Lowest cost per million output tokens at its max rate: "
                       f"<b>{html.escape(cheapest['label'])}</b>, ${cheapest['usd_per_mtok']:.3f}.")
    summary = {
        "deployments": ("Deployments", len(rows), ""),
        "best_max_rate_rps": ("Highest max rate", best["max_rate_rps"] if best else None, "req/s", 2),
        "best_max_rate_high": ("its first failing rate", best["max_rate_high"] if best else None, "req/s", 2),
        "best_capacity_rps": ("its throughput in overload", best["capacity_rps"] if best else None, "req/s", 2),
        "cheapest_usd_per_mtok": ("Lowest $ per million output tokens", cheapest["usd_per_mtok"] if cheapest else None,
                                  "USD", 3),
        "requests_simulated": ("Requests simulated", int(table["requests_simulated"].sum()), ""),
    }
    columns = [("rank", "#"), *[(c, c) for c in shown], *CAPACITY_COLUMNS]
    sections = [("Ranked deployments", html_table(columns, rows, "ranked", DIGITS)),
                ("GPU prices used", price_note(prices, sorted(table["hardware"].unique().to_list())))]
    search = manifest.get("search", {})
    steady = manifest.get("steady_state", {})
    methods = common_methods(manifest, run_dir) + [
        ("Search", html.escape(", ".join(f"{k} {v}" for k, v in search.items()))
         + ": bracket by doubling, then bisection to the tolerance; every rate judged on the seeds pooled; both ends "
           "re-run twice as long (convergence check)"),
        ("Steady state", html.escape(", ".join(f"{k} {v}" for k, v in steady.items()))
         + ": warm-up and cool-down cut, a rate is stable when the backlog grows by at most max_backlog_growth"),
        ("SLO", slo_text(slo) + " (on the steady window's percentiles)"),
    ]
    return Page(title=f"{manifest.get('name', run_dir.name)}: steady-state capacity of {len(rows)} deployments",
                kind="capacity", question=question, answer_html=answer, summary=summary,
                charts=capacity_charts(rows, table, shown, slo), sections=sections, methods=methods,
                sweep_text=read_text(run_dir / "sweep.yaml"))
