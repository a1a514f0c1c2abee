"""Charts of `blis-sweep report`: Plotly figures for the HTML page, and the same figures as static files.

Each chart is built once as a Plotly figure (interactive in the page); `save_static` draws
that figure's traces again with matplotlib for documents (PNG/SVG beside the report), so
the two never disagree and no browser or image-export service is needed.
"""
from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf")
SLO_COLOR = "#d62728"


def _go():
    import plotly.graph_objects as go

    return go


def _layout(fig, title: str, height: int = 430) -> None:
    fig.update_layout(title=dict(text=title, x=0.01), height=height, template="plotly_white",
                      margin=dict(l=60, r=20, t=60, b=50), legend=dict(font=dict(size=10)))


def saturation_figure(curves: list[dict], slo: dict[str, float]):
    """Three panels against offered load: achieved throughput (replicate min-max as error bars,
    saturation interval as a band on the x axis), TTFT p99 and TPOT p99 (SLO bounds as lines).

    curves: [{label, offered, achieved, achieved_min, achieved_max, ttft_p99, tpot_p99, sat, next}]
    """
    from plotly.subplots import make_subplots

    go = _go()
    fig = make_subplots(rows=1, cols=3, horizontal_spacing=0.07,
                        subplot_titles=("achieved vs offered (req/s)", "TTFT p99 (ms)", "TPOT p99 (ms)"))
    top = 1.0
    for i, c in enumerate(curves):
        color = PALETTE[i % len(PALETTE)]
        top = max(top, max(c["offered"], default=1.0))
        err = dict(type="data", symmetric=False, array=np.subtract(c["achieved_max"], c["achieved"]).tolist(),
                   arrayminus=np.subtract(c["achieved"], c["achieved_min"]).tolist(), thickness=1, width=2)
        fig.add_trace(go.Scatter(x=c["offered"], y=c["achieved"], error_y=err, mode="lines+markers",
                                 name=c["label"], legendgroup=c["label"], line=dict(color=color)), 1, 1)
        if c["sat"] is not None:
            hi = c["next"] if c["next"] is not None else c["sat"]
            fig.add_trace(go.Scatter(x=[c["sat"], hi], y=[0, 0], mode="lines", line=dict(color=color, width=8),
                                     opacity=0.5, name=f"saturation interval {c['label']}", legendgroup=c["label"],
                                     showlegend=False, hovertemplate="saturation in [%{x}]<extra></extra>"), 1, 1)
        for col, key in ((2, "ttft_p99"), (3, "tpot_p99")):
            fig.add_trace(go.Scatter(x=c["offered"], y=c[key], mode="lines+markers", name=c["label"],
                                     legendgroup=c["label"], showlegend=False, line=dict(color=color)), 1, col)
    fig.add_trace(go.Scatter(x=[0, top], y=[0, top], mode="lines", name="achieved = offered",
                             line=dict(color="grey", dash="dash", width=1)), 1, 1)
    for col, key in ((2, "ttft_p99_ms"), (3, "tpot_p99_ms")):
        if key in slo:
            fig.add_trace(go.Scatter(x=[0, top], y=[slo[key], slo[key]], mode="lines", name=f"SLO {key}",
                                     line=dict(color=SLO_COLOR, dash="dot", width=1.5)), 1, col)
        fig.update_yaxes(type="log", dtick="D2", row=1, col=col)  # labels at 1, 2, 5 x 10^k only
    for col in (1, 2, 3):
        fig.update_xaxes(title_text="offered load (req/s)", row=1, col=col)
    _layout(fig, "Saturation curves (bars: replicate min-max; thick band on the x axis: saturation interval)", 470)
    return fig


def pareto_front(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Mask of the points no other point beats in both x and y (higher is better in both)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = np.zeros(x.shape[0], dtype=bool)
    best_y = -math.inf
    for i in sorted(range(x.shape[0]), key=lambda k: (-x[k], -y[k])):
        if y[i] > best_y:
            keep[i] = True
            best_y = y[i]
    return keep


def pareto_figure(x, y, labels, title: str, x_title: str, y_title: str):
    """Scatter of every point, the non-dominated ones joined and highlighted."""
    go = _go()
    x, y = np.asarray(x, float), np.asarray(y, float)
    front = pareto_front(x, y)
    order = np.argsort(x[front])
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=x[~front].tolist(), y=y[~front].tolist(), mode="markers", name="dominated",
                             text=[labels[i] for i in np.flatnonzero(~front)], marker=dict(color="#9aa7b1", size=7),
                             hovertemplate="%{text}<br>%{x:.1f}, %{y:.1f}<extra></extra>"))
    fig.add_trace(go.Scatter(x=x[front][order].tolist(), y=y[front][order].tolist(), mode="lines+markers",
                             name="Pareto front", text=[labels[i] for i in np.flatnonzero(front)[order]],
                             marker=dict(color="#d62728", size=10), line=dict(color="#d62728"),
                             hovertemplate="%{text}<br>%{x:.1f}, %{y:.1f}<extra></extra>"))
    fig.update_xaxes(title_text=x_title)
    fig.update_yaxes(title_text=y_title)
    _layout(fig, title)
    return fig


def heatmap_figure(z: list[list], x: list, y: list, title: str, x_title: str, y_title: str, z_title: str):
    go = _go()
    text = [["-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3g}" for v in row] for row in z]
    fig = go.Figure(go.Heatmap(z=z, x=[str(v) for v in x], y=[str(v) for v in y], text=text,
                               texttemplate="%{text}", colorscale="Viridis", colorbar=dict(title=z_title),
                               hovertemplate=f"{x_title}=%{{x}}<br>{y_title}=%{{y}}<br>{z_title}=%{{z}}<extra></extra>"))
    fig.update_xaxes(title_text=x_title, type="category")
    fig.update_yaxes(title_text=y_title, type="category")
    _layout(fig, title)
    return fig


def bar_figure(labels: list[str], values: list[float], title: str, y_title: str, low=None, high=None,
               colors: list[str] | None = None, line: tuple[float, str] | None = None):
    """Bars (optionally with an interval [low, high] and a horizontal reference line)."""
    go = _go()
    err = None
    if low is not None and high is not None:
        err = dict(type="data", symmetric=False, array=np.subtract(high, values).tolist(),
                   arrayminus=np.subtract(values, low).tolist())
    fig = go.Figure(go.Bar(x=labels, y=values, error_y=err, marker=dict(color=colors or PALETTE[0]),
                           name=y_title))
    if line is not None:
        fig.add_trace(go.Scatter(x=[labels[0], labels[-1]], y=[line[0], line[0]], mode="lines", name=line[1],
                                 line=dict(color=SLO_COLOR, dash="dot")))
    fig.update_yaxes(title_text=y_title)
    fig.update_xaxes(type="category", tickangle=-30)
    _layout(fig, title, 460)
    return fig


# ---------------------------------------------------------------- static copies

def _axis_of(trace, axes: dict):
    xa = (trace.xaxis or "x").replace("x", "") or "1"
    return axes.get(int(xa), axes[1])


def save_static(fig, path: Path) -> Path:
    """Draw a Plotly figure's traces with matplotlib (PNG or SVG by suffix), written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from blis_sweep.atomic_io import write_bytes_atomic

    layout = fig.layout
    n_panels = sum(1 for k in layout.to_plotly_json() if k.startswith("xaxis")) or 1
    mfig, axs = plt.subplots(1, n_panels, figsize=(5.2 * n_panels if n_panels > 1 else 8, 4.6), squeeze=False,
                             constrained_layout=True)
    axes = {i + 1: ax for i, ax in enumerate(axs[0])}
    titles = [a.text for a in (layout.annotations or ())]
    for i, ax in axes.items():
        xaxis = layout[f"xaxis{'' if i == 1 else i}"]
        yaxis = layout[f"yaxis{'' if i == 1 else i}"]
        ax.set_xlabel(xaxis.title.text or "")
        ax.set_ylabel(yaxis.title.text or "")
        if yaxis.type == "log":
            ax.set_yscale("log")
        if i - 1 < len(titles):
            ax.set_title(titles[i - 1], fontsize=10)
        ax.grid(alpha=0.3)
    if n_panels == 1:
        axes[1].set_title(layout.title.text or "", fontsize=10)
    else:
        mfig.suptitle(layout.title.text or "", fontsize=10)
    for trace in fig.data:
        ax = _axis_of(trace, axes)
        if trace.type == "heatmap":
            z = np.array([[np.nan if v is None else v for v in row] for row in trace.z], dtype=float)
            im = ax.imshow(z, aspect="auto", origin="lower", cmap="viridis")
            ax.set_xticks(range(len(trace.x)), list(trace.x))
            ax.set_yticks(range(len(trace.y)), list(trace.y))
            for (r, c), v in np.ndenumerate(z):
                if not np.isnan(v):
                    ax.text(c, r, f"{v:.3g}", ha="center", va="center", fontsize=8, color="white")
            mfig.colorbar(im, ax=ax)
        elif trace.type == "bar":
            yerr = None
            if trace.error_y is not None and trace.error_y.array is not None:
                yerr = [trace.error_y.arrayminus, trace.error_y.array]
            ax.bar(range(len(trace.x)), trace.y, yerr=yerr, color=trace.marker.color, capsize=3)
            ax.set_xticks(range(len(trace.x)), list(trace.x), rotation=30, ha="right", fontsize=7)
        else:
            xs = list(trace.x)
            if xs and isinstance(xs[0], str):
                continue  # a reference line over categorical bars: drawn below
            mode = trace.mode or "lines"
            style = dict(color=trace.line.color or trace.marker.color, alpha=trace.opacity or 1.0)
            if trace.line.dash in ("dash", "dot"):
                style["linestyle"] = "--" if trace.line.dash == "dash" else ":"
            if trace.line.width and trace.line.width > 4:
                style["linewidth"] = trace.line.width
            label = trace.name if trace.showlegend is not False else None
            if "lines" not in mode:
                style["linestyle"] = "none"
            line = ax.plot(xs, list(trace.y), marker="o" if "markers" in mode else None, ms=3, label=label,
                           **style)[0]
            if trace.error_y is not None and trace.error_y.array is not None:
                ax.errorbar(xs, list(trace.y), yerr=[trace.error_y.arrayminus, trace.error_y.array], fmt="none",
                            ecolor=line.get_color(), elinewidth=0.8, capsize=2)
    for trace in fig.data:
        if trace.type == "scatter" and list(trace.x) and isinstance(list(trace.x)[0], str):
            _axis_of(trace, axes).axhline(trace.y[0], color=SLO_COLOR, ls=":", label=trace.name)
    handles, labels = axes[1].get_legend_handles_labels()
    if handles:
        axes[1].legend(fontsize=7, loc="best")
    buf = io.BytesIO()
    mfig.savefig(buf, format=path.suffix.lstrip(".").lower(), dpi=100)
    plt.close(mfig)
    write_bytes_atomic(path, buf.getvalue())
    return path
