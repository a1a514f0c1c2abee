"""`blis-sweep report RUN_DIR`: one self-contained HTML page answering the run's question.

The page works offline: Plotly's JavaScript, the data of every chart and the styles are
inline. Order: the question and its answer, charts, the ranked table, costs, methods.
Every number of the summary also sits in a `data-key`/`data-value` attribute so that it
can be checked against the Parquet results (tests/test_report_browser.py does).
Static copies of the charts (PNG and SVG) are written to `<stem>_figures/` beside the page.
"""
from __future__ import annotations

import datetime as _dt
import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from blis_sweep.errors import BlisError

REFERENCE = "inference-sim/inference-sim at commit d25e1935 plus its four follow-up fixes"
RUN_KINDS = {"plan": "plan.parquet", "capacity": "capacity.parquet", "grid": "configs.parquet"}


@dataclass
class Page:
    title: str
    kind: str
    question: str
    answer_html: str
    summary: dict[str, tuple]  # key -> (label, value, unit[, digits])
    charts: list[tuple[str, object]] = field(default_factory=list)  # (key, plotly figure)
    sections: list[tuple[str, str]] = field(default_factory=list)  # (title, html) after the charts
    methods: list[tuple[str, str]] = field(default_factory=list)  # (term, html)
    sweep_text: str = ""
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- inputs

def run_kind(run_dir: Path) -> str:
    """'plan', 'capacity' or 'grid', from the result file the directory holds."""
    if not run_dir.is_dir():
        raise BlisError(f"run directory {run_dir} does not exist (give the output directory of `grid`, "
                        f"`capacity` or `plan`)")
    for kind, name in RUN_KINDS.items():
        if (run_dir / name).is_file():
            return kind
    raise BlisError(f"{run_dir} is not the output directory of a finished run: it holds none of "
                    f"{', '.join(RUN_KINDS.values())} (allowed: a `grid`, `capacity` or `plan` output directory)")


def read_manifest(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return ""


# ---------------------------------------------------------------- formatting

def fmt(v, digits: int = 1) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return html.escape(str(v))


def num(key: str, value, unit: str = "", digits: int = 1) -> str:
    """A number in the page that a test can read back exactly (data-value holds full precision)."""
    raw = "" if value is None or (isinstance(value, float) and math.isnan(value)) else repr(value)
    return (f'<span class="num" data-key="{html.escape(key)}" data-value="{html.escape(raw)}">'
            f"{fmt(value, digits)}{(' ' + html.escape(unit)) if unit else ''}</span>")


def html_table(columns: list[tuple[str, str]], rows: list[dict], table_id: str, digits: dict | None = None) -> str:
    """columns: (key, header). Numbers right-aligned."""
    digits = digits or {}
    head = "".join(f"<th>{html.escape(h)}</th>" for _, h in columns)
    body = []
    for row in rows:
        cells = []
        for key, _ in columns:
            v = row.get(key)
            cls = ' class="r"' if isinstance(v, (int, float)) and not isinstance(v, bool) else ""
            cells.append(f"<td{cls}>{fmt(v, digits.get(key, 1))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<div class="tablewrap"><table id="{table_id}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>")


def slo_text(slo: dict[str, float]) -> str:
    return ", ".join(f"{k} &le; {v:g}" for k, v in slo.items()) or "none"


def common_methods(manifest: dict, run_dir: Path) -> list[tuple[str, str]]:
    versions = manifest.get("versions", {})
    engine = (f"blis-sweep {versions.get('blis-sweep', '?')} (commit {manifest.get('commit') or 'unknown'}); "
              + ", ".join(f"{k} {v}" for k, v in versions.items() if k != "blis-sweep"))
    machine = manifest.get("machine", {})
    out = [
        ("Engine", html.escape(engine)),
        ("Semantics", f"every configuration is simulated by <code>blis_sweep.engine.simulate</code> with the exact "
                      f"semantics of the reference simulator BLIS ({html.escape(REFERENCE)}): per-request TTFT and "
                      f"E2E equal to the reference's, checked on its shared parity cases"),
        ("Run", html.escape(f"{run_dir}; started {manifest.get('started_at', '?')}, finished "
                            f"{manifest.get('finished_at', '?')}, wall {manifest.get('wall_s', '?')} s on "
                            f"{machine.get('cpu', '?')} x {machine.get('cores', '?')} cores")),
    ]
    if manifest.get("seeds"):
        out.append(("Seeds", html.escape(", ".join(str(s) for s in manifest["seeds"]))))
    return out


# ---------------------------------------------------------------- page

CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0;color:#1d2733;background:#f6f8fa}
main{max-width:1280px;margin:0 auto;padding:18px 28px 60px}
h1{font-size:24px;margin:8px 0 2px} h2{font-size:19px;margin:28px 0 8px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
.sub{color:#57606a;font-size:13px}
.summary{background:#fff;border:1px solid #d0d7de;border-left:5px solid #2da44e;border-radius:6px;padding:12px 18px}
.summary .q{font-weight:600} .summary .a{font-size:17px;margin:8px 0}
dl.kv{display:grid;grid-template-columns:max-content auto;gap:4px 18px;margin:8px 0 0}
dl.kv dt{color:#57606a} dl.kv dd{margin:0}
.chart{background:#fff;border:1px solid #d0d7de;border-radius:6px;margin:14px 0;padding:4px}
.tablewrap{overflow-x:auto;background:#fff;border:1px solid #d0d7de;border-radius:6px}
table{border-collapse:collapse;font-size:13px;width:100%} th,td{padding:4px 8px;border-bottom:1px solid #eaeef2;white-space:nowrap}
th{background:#f0f3f6;text-align:left;position:sticky;top:0} td.r{text-align:right;font-variant-numeric:tabular-nums}
.pass{color:#1a7f37;font-weight:600} .fail{color:#cf222e;font-weight:600}
pre{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:10px;overflow-x:auto;font-size:12px}
.note{color:#57606a;font-size:13px}
"""


def render(page: Page) -> str:
    import plotly
    import plotly.offline

    charts = []
    for key, fig in page.charts:
        div = fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"chart-{key}",
                          config={"displaylogo": False, "responsive": True})
        charts.append(f'<div class="chart" data-chart="{key}">{div}</div>')
    summary = "".join(f"<dt>{html.escape(item[0])}</dt><dd>{num(key, *item[1:])}</dd>"
                      for key, item in page.summary.items())
    sections = "".join(f"<h2>{html.escape(t)}</h2>{body}" for t, body in page.sections)
    methods = "".join(f"<dt>{html.escape(t)}</dt><dd>{body}</dd>" for t, body in page.methods)
    notes = "".join(f'<p class="note">{n}</p>' for n in page.notes)
    sweep = (f"<h3>The sweep file (as expanded by the run)</h3><pre>{html.escape(page.sweep_text)}</pre>"
             if page.sweep_text else "")
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(page.title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{CSS}</style>
<script type="text/javascript">{plotly.offline.get_plotlyjs()}</script>
</head><body><main data-run-kind="{page.kind}">
<h1>{html.escape(page.title)}</h1>
<div class="sub">blis-sweep report of a {page.kind} run, written {now} (plotly.js {plotly.__version__} inline;
no network access needed)</div>
<h2>Summary</h2>
<div class="summary" id="summary"><div class="q">Question: {page.question}</div>
<div class="a" id="answer">{page.answer_html}</div><dl class="kv">{summary}</dl></div>
{notes}
{''.join(charts)}
{sections}
<h2>Methods</h2><dl class="kv" id="methods">{methods}</dl>
{sweep}
</main></body></html>
"""


@dataclass
class ReportResult:
    html_path: Path
    figures: list[Path]
    page: Page


def write_report(run_dir: str | Path, out: str | Path | None = None, prices: str | Path | None = None,
                 static: bool = True) -> ReportResult:
    """Build the page of a grid, capacity or plan run; checked before anything is written."""
    from blis_sweep.atomic_io import write_text_atomic
    from blis_sweep.data.prices import load_prices
    from blis_sweep.report.charts import save_static

    run_dir = Path(run_dir)
    kind = run_kind(run_dir)
    out = Path(out) if out is not None else run_dir / "report.html"
    if out.suffix.lower() not in (".html", ".htm"):
        raise BlisError(f"--out: the report is an HTML file, got {out} (allowed: a path ending in .html)")
    if not out.parent.is_dir():
        raise BlisError(f"--out: folder {out.parent} does not exist")
    price_table = load_prices(prices)
    if kind == "grid":
        from blis_sweep.report.grid import grid_page

        page = grid_page(run_dir, price_table)
    elif kind == "capacity":
        from blis_sweep.report.capacity import capacity_page

        page = capacity_page(run_dir, price_table)
    else:
        from blis_sweep.report.plan import plan_page

        page = plan_page(run_dir, price_table)
    write_text_atomic(out, render(page))
    out.chmod(0o644)  # a page to share, not a private temporary file
    figures = []
    if static:
        fig_dir = out.parent / f"{out.stem}_figures"
        fig_dir.mkdir(exist_ok=True)
        for key, fig in page.charts:
            for suffix in (".png", ".svg"):
                figures.append(save_static(fig, fig_dir / f"{key}{suffix}"))
    return ReportResult(out, figures, page)
