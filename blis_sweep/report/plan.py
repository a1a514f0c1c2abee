"""The report page of a `plan` run: the cheapest verified deployment first, then every candidate."""
from __future__ import annotations

import html
from pathlib import Path

import polars as pl

from blis_sweep.report.document import Page, common_methods, fmt, html_table, read_manifest, read_text, slo_text
from blis_sweep.report.capacity import capacity_charts, capacity_rows, varying_params
from blis_sweep.report.charts import bar_figure
from blis_sweep.report.grid import price_note

PASS_COLOR, FAIL_COLOR = "#2da44e", "#cf222e"


def plan_page(run_dir: Path, prices: dict) -> Page:
    manifest = read_manifest(run_dir)
    table = pl.read_parquet(run_dir / "plan.parquet").sort("rank")
    rows = table.to_dicts()
    target = manifest.get("target_rate")
    slo = manifest.get("slo") or {}
    verified = [r for r in rows if r["verified"]]
    best = verified[0] if verified else None
    question = (f"What is the cheapest deployment of {html.escape(', '.join(manifest.get('models', [])))} on "
                f"{html.escape(', '.join(manifest.get('gpus', [])))} that serves <b>{fmt(target, 1)} req/s</b> "
                f"within the SLO ({slo_text(slo)}), with at most {manifest.get('max_gpus')} GPUs?")
    if best is None:
        answer = "No candidate deployment passed the whole-cluster verification at the target rate."
    else:
        answer = (f"<b>{html.escape(best['label'])}</b>: {best['gpus']} GPUs, <b>${best['usd_per_hour']:.2f}/hour</b> "
                  f"(${best['usd_per_million_output_tokens']:.3f} per million output tokens). Verified by simulating "
                  f"the whole cluster at {fmt(target, 1)} req/s: <span class=\"pass\">{html.escape(best['verdict'])}"
                  f"</span>, TTFT p99 {fmt(best['ttft_p99_ms'])} ms, TPOT p99 {fmt(best['tpot_p99_ms'], 2)} ms, "
                  f"{best['margin_to_saturation']:+.0%} capacity margin over the target.")
    summary = {
        "target_rate": ("Target rate", target, "req/s"),
        "candidates": ("Candidates verified", len(rows), ""),
        "verified": ("Candidates that pass", len(verified), ""),
        "cheapest_gpus": ("Cheapest passing: GPUs", best["gpus"] if best else None, ""),
        "cheapest_usd_per_hour": ("Cheapest passing: $/hour", best["usd_per_hour"] if best else None, "USD", 2),
        "cheapest_usd_per_mtok": ("Cheapest passing: $ per million output tokens",
                                  best["usd_per_million_output_tokens"] if best else None, "USD", 3),
        "cheapest_ttft_p99_ms": ("Cheapest passing: TTFT p99 at the target", best["ttft_p99_ms"] if best else None,
                                 "ms"),
        "cheapest_tpot_p99_ms": ("Cheapest passing: TPOT p99 at the target", best["tpot_p99_ms"] if best else None,
                                 "ms", 2),
    }
    charts = []
    if rows:
        labels = [f"#{r['rank']} {r['label']}" for r in rows]
        colors = [PASS_COLOR if r["verified"] else FAIL_COLOR for r in rows]
        charts.append(("cost", bar_figure(labels, [r["usd_per_hour"] for r in rows],
                                          "Cost of every candidate (green: verified at the target rate, red: failed)",
                                          "USD per hour", colors=colors)))
        if "ttft_p99_ms" in slo or not slo:
            charts.append(("ttft", bar_figure(labels, [r["ttft_p99_ms"] for r in rows],
                                              "TTFT p99 of the whole cluster at the target rate (worst seed)",
                                              "TTFT p99 (ms)", colors=colors,
                                              line=(slo["ttft_p99_ms"], "SLO") if "ttft_p99_ms" in slo else None)))
    per_replica = run_dir / "per_replica" / "capacity.parquet"
    if per_replica.is_file():
        cap = pl.read_parquet(per_replica)
        shown = varying_params(cap)
        charts += capacity_charts(capacity_rows(cap, prices, shown), cap, shown, slo)
    columns = [("rank", "#"), ("verdict", "verdict"), ("label", "deployment"), ("gpus", "GPUs"),
               ("usd_per_hour", "$/hour"), ("usd_per_million_output_tokens", "$/M out tok"),
               ("tokens_per_s_per_gpu", "tok/s/GPU"), ("ttft_p99_ms", "TTFT p99 ms"), ("tpot_p99_ms", "TPOT p99 ms"),
               ("achieved_ratio_min", "achieved/offered"), ("per_replica_capacity_rps", "per-replica cap."),
               ("planned_replicas", "planned replicas"), ("replicas", "replicas"),
               ("margin_to_saturation", "margin"), ("verify_requests", "requests simulated")]
    shown_rows = [{**r, "margin_to_saturation": r["margin_to_saturation"]} for r in rows]
    sections = [("Every candidate, ranked", html_table(columns, shown_rows, "ranked", {
        "usd_per_million_output_tokens": 3, "usd_per_hour": 2, "tpot_p99_ms": 2, "achieved_ratio_min": 3,
        "margin_to_saturation": 2, "per_replica_capacity_rps": 2}) + '<p class="note">margin = replicas x '
                 "per-replica capacity / target - 1. Each verification sweep file is in RUN_DIR/verify/ and re-runs "
                 "with <code>blis-sweep grid</code>.</p>"),
                ("GPU prices used", price_note(prices, manifest.get("gpus", [])))]
    methods = common_methods(manifest, run_dir) + [
        ("Per-replica capacity", html.escape(manifest.get("capacity_source", "?"))),
        ("Replicas", f"ceil(target x (1 + headroom) / per-replica capacity), headroom "
                     f"{manifest.get('headroom', 0):.0%}; routing policies tried when replicas &gt; 1: "
                     f"{html.escape(', '.join(manifest.get('routing', [])))}"),
        ("Verification", f"the whole cluster (all replicas behind the router) simulated at the target rate for "
                         f"{manifest.get('verify_seconds')} s of traffic, {manifest.get('verify_seeds')} seeds; "
                         f"passes when every seed keeps up (achieved &ge; {manifest.get('sustain', 0.95):.0%} of "
                         f"offered over the steady window), its steady-state verdict is stable and the steady-window "
                         f"percentiles meet the SLO; a failing candidate gets one more replica and is verified again"),
        ("SLO", slo_text(slo)),
    ]
    return Page(title=f"Plan: {fmt(target, 1)} req/s within {slo_text(slo)}".replace("&le;", "<="), kind="plan",
                question=question, answer_html=answer, summary=summary, charts=charts, sections=sections,
                methods=methods, sweep_text=read_text(run_dir / "sweep.yaml"))
