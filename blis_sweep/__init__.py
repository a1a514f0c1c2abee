"""blis-sweep: vectorized capacity-planning sweeps of LLM serving.

Layers, each importing only those before it (tests/test_package_layout.py checks this):
errors, atomic_io, sim_config -> data, go -> workloads -> engine (the only caller of the
Numba kernels in blis_sweep.kernels), limits -> reference (`run`), sweep (`grid`, `curves`,
`capacity`) -> plan, report -> cli (the console script).
"""
__version__ = "0.1.0"
