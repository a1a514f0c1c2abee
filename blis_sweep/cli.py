"""Command-line interface: `blis-sweep run | grid | curves | report | plan`.

Bad input raises BlisError anywhere below; it reaches the user as one line on
stderr with exit status 2, never as a traceback.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from blis_sweep.errors import BlisError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Vectorized capacity-planning sweeps of LLM serving, exact to the BLIS reference simulator.")

_PASSTHROUGH = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}


@app.command(context_settings=_PASSTHROUGH)
def run(ctx: typer.Context) -> None:
    """Drop-in for the reference simulator's `run` (same flags, same output). `run --help` lists the flags."""
    argv = list(ctx.args)
    if "-h" in argv or "--help" in argv:
        from blis_sweep.run_help import run_help_text

        typer.echo(run_help_text())
        return
    from blis_sweep.run_command import run_reference

    raise typer.Exit(run_reference(argv))


from blis_sweep import grid_cli  # noqa: E402  (commands register on the app above)

grid_cli.register(app)

from blis_sweep import report_cli  # noqa: E402

report_cli.register(app)

from blis_sweep import plan_cli  # noqa: E402

plan_cli.register(app)


def main() -> None:
    """Console entry point: one-line errors for bad input; tracebacks only with BLIS_SWEEP_DEBUG=1."""
    try:
        app(standalone_mode=False)
    except BlisError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - the last line of defence against tracebacks
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, click.exceptions.Abort):
            sys.exit(1)
        if os.environ.get("BLIS_SWEEP_DEBUG"):
            raise
        print(f"internal error: {type(exc).__name__}: {exc} (set BLIS_SWEEP_DEBUG=1 for a traceback)",
              file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
