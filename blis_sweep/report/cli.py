"""Typer command `report`, registered on the CLI app by cli.py."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer


def report_command(
    run_dir: Annotated[Path, typer.Argument(help="Output directory of a `grid`, `capacity` or `plan` run.",
                                            show_default=False)],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="HTML file to write (default: RUN_DIR/report.html).",
                                                show_default=False)] = None,
    prices: Annotated[Optional[Path], typer.Option(
        "--prices", help="YAML file of GPU prices (USD per GPU-hour) replacing the bundled estimates GPU by GPU.",
        show_default=False)] = None,
    no_static: Annotated[bool, typer.Option("--no-static", help="Do not write PNG/SVG copies of the charts.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No status line.")] = False,
) -> None:
    """One self-contained HTML report of a run (opens offline), with PNG/SVG charts beside it."""
    from blis_sweep.report.document import write_report

    result = write_report(run_dir, out=out, prices=prices, static=not no_static)
    if not quiet:
        extra = f" and {len(result.figures)} figures in {result.figures[0].parent}" if result.figures else ""
        print(f"wrote {result.html_path}{extra}", file=sys.stderr)


def register(app: typer.Typer) -> None:
    app.command("report")(report_command)
