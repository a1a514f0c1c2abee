"""Reference-identical distribution workloads: Go math/rand draws, in the reference's order."""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from blis_sweep.kernels.go_rand import reference_distribution_nb

MAX_TOKEN_ID = 128000  # the reference's token-id bound


@lru_cache(maxsize=1)
def go_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(rngCooked as uint64, kn as int64, wn, fn as float32) from the bundled table file."""
    data = json.loads((Path(__file__).parent / "go_math_rand_tables.json").read_text())
    cooked = np.array(data["rng_cooked"], dtype=np.int64).view(np.uint64)
    kn = np.array(data["kn"], dtype=np.int64)
    wn = np.array([np.float32(v) for v in data["wn"]], dtype=np.float32)
    fn = np.array([np.float32(v) for v in data["fn"]], dtype=np.float32)
    return cooked, kn, wn, fn


def reference_requests(seed: int, n_requests: int, prefix_tokens: int, prompt: tuple, output: tuple):
    """(input lengths, output lengths, tokens packed input-then-output) of the first n requests
    the reference generates with this seed."""
    cooked, kn, wn, fn = go_tables()
    in_len = np.empty(n_requests, dtype=np.int64)
    out_len = np.empty(n_requests, dtype=np.int64)
    prompt_a = np.asarray(prompt, dtype=np.int64)
    output_a = np.asarray(output, dtype=np.int64)
    empty = np.empty(0, dtype=np.int64)
    total = reference_distribution_nb(np.int64(seed), n_requests, prefix_tokens, prompt_a, output_a, MAX_TOKEN_ID,
                                      cooked, (kn, wn, fn), in_len, out_len, empty)
    tokens = np.empty(total, dtype=np.int64)
    reference_distribution_nb(np.int64(seed), n_requests, prefix_tokens, prompt_a, output_a, MAX_TOKEN_ID,
                              cooked, (kn, wn, fn), in_len, out_len, tokens)
    return in_len, out_len, tokens
