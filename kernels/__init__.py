"""Numba layer of blis-sweep: arrays and scalars in, arrays out; no Python objects.

Only `blis_sweep` calls into this package.

Numba's on-disk cache is keyed per source file, so a change in one kernel module
would not invalidate cached callers in another. The cache therefore lives in a
directory named after a digest of all kernel sources (override the root with
BLIS_SWEEP_CACHE_DIR). Kernels compiled with BLIS_SWEEP_NO_BORROW=1 (see borrow.py)
differ from the default ones without a source change, so they get a directory of their own.
"""
import hashlib
import os
from pathlib import Path

import numba

from .borrow import BORROW_ENABLED

_sources = sorted(Path(__file__).parent.glob("*.py"))
_digest = hashlib.sha256(b"".join(p.name.encode() + p.read_bytes() for p in _sources)).hexdigest()[:16]
_root = Path(os.environ.get("BLIS_SWEEP_CACHE_DIR", Path.home() / ".cache" / "blis-sweep"))
_variant = "" if BORROW_ENABLED else "-no-borrow"
numba.config.CACHE_DIR = str(_root / f"kernels-{_digest}{_variant}")
