"""Many configurations at once: `grid`, `curves` and `capacity`.

Owns: sweep files (spec), their expansion into resolved configurations (resolve), chunked,
resumable batched runs into Parquet (run, io, run_info), steady-state metrics and SLO
attainment (steady_state, slo_classes), saturation curves (curves, curves_plot), the
capacity search (capacity), the Ray backend (ray_backend) and the typer commands (cli).
May import: everything below it (errors, atomic_io, sim_config, engine, limits, data, go,
workloads, kernels) and this package; not reference, plan or report.
"""
