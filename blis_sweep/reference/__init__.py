"""`blis-sweep run`: the drop-in for the reference simulator's `run` command.

Owns: the reference's flags and their validation (args, argv, help), the command itself
(command), its output formats byte for byte (output), the fitness score (fitness) and policy
bundles (policy_bundle).
May import: blis_sweep.errors, atomic_io, sim_config, engine, limits, blis_sweep.data,
blis_sweep.go, blis_sweep.workloads, blis_sweep.kernels and this package.
"""
