"""`blis-sweep plan`: the cheapest deployment that serves a target load, verified.

Owns: per-replica capacity search, replica counts, whole-cluster verification and pricing
(planner) and the typer command (cli).
May import: what blis_sweep.sweep may, plus blis_sweep.sweep; not reference or report.
"""
