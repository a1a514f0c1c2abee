"""`blis-sweep report`: one self-contained HTML page for a grid, capacity or plan run.

Owns: the page and its sections (document), the charts and their static copies (charts),
the per-kind content (grid, capacity, plan) and the typer command (cli).
May import: what blis_sweep.sweep may, plus blis_sweep.sweep; not reference or plan.
"""
