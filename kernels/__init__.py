"""Numba layer of blis-sweep: arrays and scalars in, arrays out; no Python objects.

Only `blis_sweep` calls into this package.
"""
