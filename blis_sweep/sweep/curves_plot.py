"""Saturation curves as a picture: achieved throughput and TTFT p99 against offered load."""
from __future__ import annotations

from pathlib import Path

from blis_sweep.errors import BlisError


PLOT_FORMATS = ("png", "svg", "pdf")


def check_plot_path(path: str | Path) -> str:
    """The format of a --plot file, after checking it can be written (nothing is created)."""
    from blis_sweep.data.paths import check_writable_file

    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in PLOT_FORMATS:
        raise BlisError(f"--plot {path}: unsupported file type {path.suffix or '(none)'!r} "
                        f"(allowed: .png, .svg, .pdf)")
    check_writable_file(path, "--plot")
    return fmt


def plot_curves(curves, path: str | Path, top: int = 8) -> Path:
    """Two panels (throughput, latency) with one line per group, best `top` groups, saturation marked.

    Written atomically; the format follows the file suffix (.png, .svg, .pdf).
    """
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt
    import polars as pl

    from blis_sweep.atomic_io import write_bytes_atomic

    path = Path(path)
    fmt = check_plot_path(path)
    shown = curves.varying_columns or ["model", "hardware", "tp"]
    best = curves.groups.head(top)
    fig, (ax_tp, ax_lat) = plt.subplots(1, 2, figsize=(13, 5.2), constrained_layout=True)
    for row in best.iter_rows(named=True):
        label = ", ".join(f"{c}={row[c]}" for c in shown)
        pts = curves.points.filter(pl.col("group_id") == row["group_id"]).sort("offered_rps")
        line, = ax_tp.plot(pts["offered_rps"], pts["achieved_rps"], marker="o", ms=3, label=label)
        ax_lat.plot(pts["offered_rps"], pts["ttft_p99_ms"], marker="o", ms=3, color=line.get_color())
        if row["saturation_rate"] is not None:
            ax_tp.axvline(row["saturation_rate"], color=line.get_color(), lw=0.8, ls=":")
    top_rate = curves.points["offered_rps"].max() or 1.0
    ax_tp.plot([0, top_rate], [0, top_rate], color="grey", lw=0.8, ls="--", label="achieved = offered")
    ax_tp.set(xlabel="offered load (requests/s)", ylabel="achieved throughput (requests/s)",
              title="Throughput (dotted: saturation point)")
    ax_lat.set(xlabel="offered load (requests/s)", ylabel="TTFT p99 (ms)", yscale="log", title="Time to first token")
    if "ttft_p99_ms" in curves.slo:
        ax_lat.axhline(curves.slo["ttft_p99_ms"], color="red", lw=1, ls="--", label="SLO")
        ax_lat.legend(loc="upper left", fontsize=8)
    ax_tp.legend(loc="upper left", fontsize=7)
    for ax in (ax_tp, ax_lat):
        ax.grid(alpha=0.3)
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=110)
    plt.close(fig)
    write_bytes_atomic(path, buf.getvalue())
    return path
