"""Requests: everything that turns a workload description into request arrays.

Owns: trace files (traces), generated distribution workloads and presets (requests), the
reference's workload specs and their generator (spec, spec_gen, servegen), and the packed
arrays with per-request prefix hashes that the engine consumes (arrays).
May import: blis_sweep.errors, blis_sweep.sim_config, blis_sweep.data, blis_sweep.go,
blis_sweep.kernels and this package.
"""
