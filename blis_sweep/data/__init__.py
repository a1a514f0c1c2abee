"""Loaders of the data shipped with blis-sweep, each validating what it reads.

Owns: where bundled data lives (paths), model config.json files (model_config), the GPU
table (hardware), defaults.yaml coefficients and presets (defaults), GPU prices (prices),
and YAML loading that keeps line numbers for error messages (yaml_positions).
May import: blis_sweep.errors, blis_sweep.sim_config and this package.
"""
