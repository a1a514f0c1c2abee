"""Typer command `plan`, registered on the CLI app by cli.py."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from blis_sweep.errors import BlisError


def _names(option: str, text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise BlisError(f"{option}: give a comma-separated list, got {text!r}")
    return names


def plan_command(
    spec: Annotated[Optional[Path], typer.Argument(
        help="Sweep file of candidate deployments and the workload (default: the bundled sweeps/plan_llama8b.yaml); "
             "`rate` must not be an axis.", show_default=False)] = None,
    target_rate: Annotated[float, typer.Option("--target-rate", help="Requests/s the deployment must serve.",
                                               show_default=False)] = float("nan"),
    slo: Annotated[Optional[list[str]], typer.Option(
        "--slo", help="SLO bound METRIC=VALUE (e.g. ttft_p99_ms=500); repeatable. Default: the sweep file's slo:.",
        show_default=False)] = None,
    gpus: Annotated[Optional[str], typer.Option("--gpus", help="GPU types, comma-separated (default: H100,A100-80GB).",
                                                show_default=False)] = None,
    models: Annotated[Optional[str], typer.Option("--models", help="Models, comma-separated (default: the sweep "
                                                                   "file's).", show_default=False)] = None,
    max_gpus: Annotated[int, typer.Option("--max-gpus", help="Largest deployment considered, in GPUs.")] = 64,
    prices: Annotated[Optional[Path], typer.Option(
        "--prices", help="YAML file of GPU prices (USD per GPU-hour) replacing the bundled estimates GPU by GPU.",
        show_default=False)] = None,
    headroom: Annotated[float, typer.Option("--headroom", help="Replicas = ceil(target x (1 + headroom) / "
                                                                "per-replica capacity).")] = 0.2,
    routing: Annotated[str, typer.Option("--routing", help="Routing policies tried when replicas > 1.")
                       ] = "least-loaded,round-robin",
    verify_seconds: Annotated[float, typer.Option("--verify-seconds", help="Simulated seconds of traffic per "
                                                                           "verification run.")] = 60.0,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Output directory (default: "
                                                "results/plan_<rate>rps/).", show_default=False)] = None,
    top: Annotated[int, typer.Option("--top", help="Rows of the terminal table.")] = 15,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only write the files.")] = False,
) -> None:
    """Cheapest deployments that serve --target-rate within the SLO, each verified by simulating the whole cluster."""
    from blis_sweep.sweep.spec import parse_slo_args
    from blis_sweep.plan.planner import DEFAULT_PLAN_SPEC, PlanRequest, make_plan, render_plan_table

    if target_rate != target_rate:
        raise BlisError("plan needs --target-rate R (requests/s the deployment must serve, > 0)")
    req = PlanRequest(target_rate=target_rate, slo=parse_slo_args(slo), spec_path=spec or DEFAULT_PLAN_SPEC,
                      gpus=_names("--gpus", gpus), models=_names("--models", models), max_gpus=max_gpus,
                      headroom=headroom, routing=_names("--routing", routing), verify_seconds=verify_seconds,
                      prices_file=prices)
    result = make_plan(req, out=out, quiet=quiet)
    if not quiet:
        from rich.console import Console

        console = Console()
        if not console.is_terminal:
            console = Console(width=200)
        console.print(render_plan_table(result.table, top, f"plan: {target_rate:g} req/s, "
                                        f"{result.table['verified'].sum()} of {result.table.height} candidates verified"))
        console.print(f"per-replica capacity from: {result.capacity_source}; wrote {result.out_dir / 'plan.parquet'}")


def register(app: typer.Typer) -> None:
    app.command("plan")(plan_command)
