"""Typer commands `grid` and `curves`, ready to register on the CLI app.

    from blis_sweep.sweep import cli as sweep_cli
    sweep_cli.register(app)          # or: app.command("grid")(sweep_cli.grid_command) ...

Both raise BlisError for bad input; cli.main turns it into `error: ...` and exit status 2.
"""
from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from blis_sweep.errors import BlisError
from blis_sweep.limits import DEFAULT_MAX_CONFIGS


# --backend and its flags, shared by `grid` and `capacity` (blis_sweep.sweep.ray_backend)
BackendOption = Annotated[str, typer.Option(
    "--backend", help="Where configurations are simulated: local (this process) or ray (a Ray cluster; "
                      "pip install 'blis-sweep[ray]').")]
AddressOption = Annotated[Optional[str], typer.Option(
    "--address", help="With --backend ray: the cluster to join (auto, or HOST:PORT of its head); "
                      "default: start a local Ray instance.", show_default=False)]
WorkersOption = Annotated[Optional[int], typer.Option(
    "--workers", help="With --backend ray: worker processes, one CPU each (default: every CPU of the cluster).",
    show_default=False)]


def default_sweep() -> Path:
    """The main job, run when `grid` is given no sweep file."""
    from blis_sweep.data.paths import bundled_sweep

    return bundled_sweep("h100_tp.yaml")


def grid_command(
    spec: Annotated[Optional[Path], typer.Argument(
        help="Sweep file (YAML): base configuration, axes, seeds, SLO. Default: the bundled sweeps/h100_tp.yaml.",
        show_default=False)] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Output directory (default: results/NAME/).",
                                                show_default=False)] = None,
    requests: Annotated[bool, typer.Option("--requests", help="Also write per-request records (requests.parquet).")
                        ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or status lines.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Discard results of another sweep in --out.")
                         ] = False,
    max_configs: Annotated[int, typer.Option(
        "--max-configs", help="Refuse grids with more configurations than this (a guard against typos in axes).")
                           ] = DEFAULT_MAX_CONFIGS,
    backend: BackendOption = "local",
    address: AddressOption = None,
    workers: WorkersOption = None,
) -> None:
    """Simulate every configuration of a sweep file; results stream to Parquet and resume if interrupted."""
    from blis_sweep.sweep.run import GridInterrupted, run_grid

    try:
        with chunk_backend(backend, address, workers) as chosen:
            summary = run_grid(spec or default_sweep(), out=out, requests=requests, quiet=quiet, overwrite=overwrite,
                               max_configs=max_configs, backend=chosen)
    except GridInterrupted as exc:
        print(f"interrupted: {exc.chunks_written} of {exc.num_chunks} chunks written to {exc.out_dir}; "
              f"run the same command to resume", file=sys.stderr)
        raise typer.Exit(130) from None
    except KeyboardInterrupt:
        print("interrupted before any chunk was written; run the same command to start again", file=sys.stderr)
        raise typer.Exit(130) from None
    if not quiet:
        t = summary.timings
        rate = summary.simulated_configs / max(t["wall_s"] - t["compile_s"], 1e-9)
        done = (f"{summary.simulated_configs} simulated" + (f", {summary.chunks_skipped} chunks reused"
                                                             if summary.chunks_skipped else ""))
        print(f"{summary.name}: {summary.num_configs} configurations ({done}, {summary.infeasible} infeasible) in "
              f"{t['wall_s']:.1f} s (kernel load/compile {t['compile_s']:.1f} s, simulate {t['simulate_s']:.1f} s; "
              f"{rate:,.1f} configs/s); results in {summary.out_dir}/configs.parquet", file=sys.stderr)


def curves_command(
    run_dir: Annotated[Path, typer.Argument(help="Output directory of a `grid` run.", show_default=False)],
    slo: Annotated[Optional[list[str]], typer.Option(
        "--slo", help="SLO bound METRIC=VALUE (upper limit, e.g. ttft_p99_ms=200); repeatable. "
                      "Replaces the sweep file's slo: section.", show_default=False)] = None,
    sustain: Annotated[float, typer.Option("--sustain", help="Achieved/offered ratio a rate must reach.")] = 0.95,
    top: Annotated[int, typer.Option("--top", help="Rows of the terminal table.")] = 20,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only write curves.parquet.")] = False,
    plot: Annotated[Optional[Path], typer.Option(
        "--plot", help="Also draw the best curves (throughput and TTFT p99 against offered load) to this "
                       ".png/.svg/.pdf file.", show_default=False)] = None,
) -> None:
    """Saturation curves of a grid run: writes RUN_DIR/curves.parquet and prints the best configurations."""
    from blis_sweep.sweep.curves import run_curves
    from blis_sweep.sweep.spec import parse_slo_args

    check_curves_args(run_dir, top, sustain, plot)
    curves = run_curves(run_dir, slo=parse_slo_args(slo), sustain=sustain, top=top, quiet=quiet)
    if plot is not None:
        from blis_sweep.sweep.curves_plot import plot_curves

        written = plot_curves(curves, plot, top=min(top, 8))
        if not quiet:
            print(f"wrote {written}", file=sys.stderr)


MAX_TOP = 1_000_000


def check_curves_args(run_dir: Path, top: int, sustain: float, plot: Optional[Path]) -> None:
    """Everything about `curves` arguments that can be checked before curves.parquet is written."""
    import math
    import os

    if not 1 <= top <= MAX_TOP:
        raise BlisError(f"--top must be an integer in [1, {MAX_TOP}] (rows of the table), got {top}")
    if not (math.isfinite(sustain) and 0 < sustain <= 1):
        raise BlisError(f"--sustain must be a number in (0, 1] (achieved/offered ratio), got {sustain}")
    if run_dir.is_dir() and not os.access(run_dir, os.W_OK | os.X_OK):
        raise BlisError(f"{run_dir} is not writable (curves.parquet is written there)")
    if plot is not None:
        from blis_sweep.sweep.curves_plot import check_plot_path

        check_plot_path(plot)


@contextlib.contextmanager
def chunk_backend(name: str, address: str | None, workers: int | None):
    """None for the local backend, or a RayBackend closed on exit; BlisError for bad flags."""
    if name == "local":
        for flag, value in (("--address", address), ("--workers", workers)):
            if value is not None:
                raise BlisError(f"{flag}: only with --backend ray")
        yield None
        return
    if name != "ray":
        raise BlisError(f"--backend: unknown backend {name!r} (allowed: local, ray)")
    from blis_sweep.sweep.ray_backend import RayBackend

    backend = RayBackend(address=address, workers=workers)
    try:
        yield backend
    finally:
        backend.close()


def capacity_command(
    spec: Annotated[Path, typer.Argument(
        help="Sweep file (YAML) without a rate axis: deployments, workload, seeds, slo:, search: "
             "(tolerance, start_rate, min_rate, max_rate, max_requests, convergence_check, overload_factor).",
        show_default=False)],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Output directory (default: results/NAME/).",
                                                show_default=False)] = None,
    top: Annotated[int, typer.Option("--top", help="Rows of the terminal table.")] = 40,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar, status lines or table.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Discard results of another search in --out.")
                         ] = False,
    backend: BackendOption = "local",
    address: AddressOption = None,
    workers: WorkersOption = None,
) -> None:
    """Highest stable offered rate within the SLO for every deployment (bracket + bisection, converged runs)."""
    from blis_sweep.sweep.capacity import load_capacity_spec, print_capacity, run_capacity

    with chunk_backend(backend, address, workers) as chosen:
        evaluate = None
        if chosen is not None:
            from blis_sweep.sweep.ray_backend import RayEvaluator

            loaded, _, slo = load_capacity_spec(spec)  # bad input is reported before Ray starts
            chosen.start(False)
            evaluate = RayEvaluator(loaded, slo, chosen)
        run = run_capacity(spec, out=out, quiet=quiet, overwrite=overwrite, evaluate=evaluate)
    if not quiet:
        print_capacity(run, top=top)
        print(f"{run.deployments} deployments in {run.rounds} rounds, {run.requests_total:,} requests simulated "
              f"({run.reused_probes} probes reused), {run.wall_s:.1f} s; results in {run.out_dir}/capacity.parquet",
              file=sys.stderr)


def register(app: typer.Typer) -> None:
    app.command("grid")(grid_command)
    app.command("curves")(curves_command)
    app.command("capacity")(capacity_command)
