"""Go standard-library behaviour the reference's numbers depend on.

Owns: float formatting as Go's fmt/strconv print it (format), Go's number parsing (strconv),
and math/rand streams seeded as the reference seeds them (rand; the constant tables ship
here under Go's licence, GO_LICENSE).
May import: blis_sweep.errors, blis_sweep.kernels and this package.
"""
