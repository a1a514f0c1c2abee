"""`blis-sweep report` without a browser: the Pareto front, page content, bad input."""
from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blis_sweep.report.charts import pareto_front


def blis(*args):
    return subprocess.run(["blis-sweep", *map(str, args)], capture_output=True, text=True, timeout=600)


points = st.lists(st.tuples(st.integers(0, 20), st.integers(0, 20)), min_size=1, max_size=40)


@settings(max_examples=200, deadline=None)
@given(points)
def test_pareto_front_is_exactly_the_undominated_points(pts):
    x = np.array([p[0] for p in pts], float)
    y = np.array([p[1] for p in pts], float)
    front = pareto_front(x, y)

    def dominated(i):
        return any(x[j] >= x[i] and y[j] >= y[i] and (x[j] > x[i] or y[j] > y[i]) for j in range(len(pts)))

    for i in range(len(pts)):
        if dominated(i):
            assert not front[i]
    # every undominated value pair is on the front exactly once (duplicates of a point count once)
    undominated = {(x[i], y[i]) for i in range(len(pts)) if not dominated(i)}
    on_front = [(x[i], y[i]) for i in range(len(pts)) if front[i]]
    assert set(on_front) == undominated and len(on_front) == len(undominated)


SWEEP = Path(__file__).parent / "data" / "report_grid.yaml"


@pytest.fixture(scope="module")
def grid_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("grid")
    res = blis("grid", SWEEP, "--out", root / "run", "-q")
    assert res.returncode == 0, res.stderr
    return root / "run"


def test_report_is_one_offline_file_with_static_figures(grid_run, tmp_path):
    res = blis("report", grid_run, "--out", tmp_path / "r.html")
    assert res.returncode == 0, res.stderr
    text = (tmp_path / "r.html").read_text()
    assert "<script src=" not in text and "<link " not in text  # scripts and styles inline
    assert text.count('data-chart="') >= 3
    for section in ("Summary", "Ranked deployments", "GPU prices used", "Methods"):
        assert f"<h2>{section}</h2>" in text
    assert "d25e1935" in text and "name: report_grid" in text  # reference semantics and the sweep file
    assert text.index('id="summary"') < text.index('data-chart="saturation"')  # the answer comes first
    figures = sorted(p.name for p in (tmp_path / "r_figures").iterdir())
    assert "saturation.png" in figures and "saturation.svg" in figures
    assert (tmp_path / "r_figures" / "saturation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def one_error_line(res) -> str:
    assert res.returncode == 2, (res.returncode, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    return lines[0]


def test_bad_report_input(grid_run, tmp_path):
    assert "does not exist" in one_error_line(blis("report", tmp_path / "nothing"))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "manifest.json").write_text("{}")
    assert "is not the output directory of a finished run" in one_error_line(blis("report", tmp_path / "other"))
    assert "ending in .html" in one_error_line(blis("report", grid_run, "--out", tmp_path / "r.pdf"))
    assert "does not exist" in one_error_line(blis("report", grid_run, "--out", tmp_path / "no" / "r.html"))
    (tmp_path / "p.yaml").write_text("prices:\n  H100: -2\n")
    assert "price must be" in one_error_line(blis("report", grid_run, "--prices", tmp_path / "p.yaml",
                                                  "--out", tmp_path / "r.html"))
    assert not (tmp_path / "r.html").exists() and not (grid_run / "report.html").exists()
