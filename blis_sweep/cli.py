"""Command-line interface: `blis-sweep run | grid | curves | capacity | plan | report | warmup`.

Bad input raises BlisError anywhere below; it reaches the user as one line on
stderr with exit status 2, never as a traceback.
"""
from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from blis_sweep.errors import BlisError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  context_settings={"help_option_names": ["-h", "--help"]},
                  help="Vectorized capacity-planning sweeps of LLM serving, exact to the BLIS reference simulator.")

_PASSTHROUGH = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"blis-sweep {version('blis-sweep')}")
        except PackageNotFoundError:  # running from a checkout without installing
            typer.echo("blis-sweep (not installed)")
        raise typer.Exit(0)


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", help="Print the version and exit.", is_eager=True,
                                                callback=_print_version)] = False) -> None:
    """Vectorized capacity-planning sweeps of LLM serving, exact to the BLIS reference simulator."""


@app.command(context_settings=_PASSTHROUGH)
def run(ctx: typer.Context) -> None:
    """Drop-in for the reference simulator's `run` (same flags, same output). `run --help` lists the flags."""
    argv = list(ctx.args)
    if "-h" in argv or "--help" in argv:
        from blis_sweep.reference.help import run_help_text

        typer.echo(run_help_text())
        return
    from blis_sweep.reference.command import run_reference

    try:
        code = run_reference(argv)
    except KeyboardInterrupt:  # nothing is written before the run ends, so nothing is left half-done
        print("interrupted", file=sys.stderr)
        raise typer.Exit(130) from None
    raise typer.Exit(code)


@app.command()
def warmup() -> None:
    """Compile the simulation kernels now (once per installation), so that later commands start at once."""
    from blis_sweep.engine import ensure_compiled, kernels_cached

    cached = kernels_cached()
    seconds = ensure_compiled()
    if cached:
        typer.echo(f"simulation kernels already compiled (loaded from the cache in {seconds:.1f} s)", err=True)


from blis_sweep.sweep import cli as sweep_cli  # noqa: E402  (commands register on the app above)

sweep_cli.register(app)

from blis_sweep.report import cli as report_cli  # noqa: E402

report_cli.register(app)

from blis_sweep.plan import cli as plan_cli  # noqa: E402

plan_cli.register(app)


def main() -> None:
    """Console entry point.

    typer runs in its standalone mode, so usage errors (unknown command or option, a
    value of the wrong type) end with typer's usage text and exit status 2, and Ctrl-C
    with status 130, whatever typer's version. Bad input (BlisError) is one line on
    stderr and status 2; tracebacks only with BLIS_SWEEP_DEBUG=1.
    """
    try:
        app(prog_name="blis-sweep")
    except BlisError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - the last line of defence against tracebacks
        if os.environ.get("BLIS_SWEEP_DEBUG"):
            raise
        print(f"internal error: {type(exc).__name__}: {exc} (set BLIS_SWEEP_DEBUG=1 for a traceback)",
              file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
