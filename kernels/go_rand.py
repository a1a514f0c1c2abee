"""Go's math/rand value stream (rand.New(rand.NewSource(seed))), for reference-identical workloads.

The reference draws distribution workloads from Go's math/rand: an additive lagged
Fibonacci generator (607 lags, tap 273) seeded through a Lehmer generator and a table
of constants, Intn by rejection on Int31, and NormFloat64 by the ziggurat method with
float32 tables. The constant tables come from blis_sweep/data/go_math_rand_tables.json
(Go's BSD licence next to it); the state is one uint64 array: vec[0:607], tap, feed.
"""
import math

import numpy as np
from numba import njit

from .step_time import go_round_nb

RNG_LEN = 607
RNG_TAP = 273
INT32_MAX = (1 << 31) - 1
MASK63 = np.uint64((1 << 63) - 1)
RN = 3.442619855899


@njit(cache=True, error_model="numpy")
def _seedrand_nb(x):
    """x[n+1] = 48271 * x[n] mod (2**31 - 1), Schrage's method as Go computes it (int32 safe)."""
    hi = x // 44488
    lo = x % 44488
    x = 48271 * lo - 3399 * hi
    if x < 0:
        x += INT32_MAX
    return x


@njit(cache=True, error_model="numpy")
def go_seed_nb(seed, cooked):
    """State of rand.NewSource(seed)."""
    state = np.zeros(RNG_LEN + 2, dtype=np.uint64)
    seed = seed % INT32_MAX
    if seed < 0:
        seed += INT32_MAX
    if seed == 0:
        seed = 89482311
    x = seed
    for i in range(-20, RNG_LEN):
        x = _seedrand_nb(x)
        if i >= 0:
            u = np.uint64(x) << np.uint64(40)
            x = _seedrand_nb(x)
            u ^= np.uint64(x) << np.uint64(20)
            x = _seedrand_nb(x)
            u ^= np.uint64(x)
            u ^= cooked[i]
            state[i] = u
    state[RNG_LEN] = 0  # tap
    state[RNG_LEN + 1] = RNG_LEN - RNG_TAP  # feed
    return state


@njit(cache=True, error_model="numpy")
def go_int63_nb(state):
    tap = np.int64(state[RNG_LEN]) - 1
    if tap < 0:
        tap += RNG_LEN
    feed = np.int64(state[RNG_LEN + 1]) - 1
    if feed < 0:
        feed += RNG_LEN
    state[RNG_LEN] = tap
    state[RNG_LEN + 1] = feed
    x = state[feed] + state[tap]  # wraps modulo 2**64, as Go's int64 addition
    state[feed] = x
    return np.int64(x & MASK63)


@njit(cache=True, error_model="numpy")
def go_intn_nb(state, n):
    """Intn(n) for 0 < n < 2**31 (Int31n: mask for powers of two, else rejection)."""
    if n & (n - 1) == 0:
        return (go_int63_nb(state) >> 32) & (n - 1)
    limit = INT32_MAX - (1 << 31) % n
    v = go_int63_nb(state) >> 32
    while v > limit:
        v = go_int63_nb(state) >> 32
    return v % n


@njit(cache=True, error_model="numpy")
def go_float64_nb(state):
    while True:
        f = float(go_int63_nb(state)) / 9223372036854775808.0
        if f != 1.0:
            return f


@njit(cache=True, error_model="numpy")
def go_norm_float64_nb(state, kn, wn, fn):
    """NormFloat64: the ziggurat, with its float32 wedge test."""
    while True:
        u32 = (go_int63_nb(state) >> 31) & 0xFFFFFFFF
        j = u32 - (1 << 32) if u32 >= (1 << 31) else u32  # int32(Uint32())
        i = j & 0x7F
        x = float(j) * float(wn[i])
        absj = -j if j < 0 else j
        if absj < kn[i]:
            return x
        if i == 0:
            while True:
                x = -math.log(go_float64_nb(state)) * (1.0 / RN)
                y = -math.log(go_float64_nb(state))
                if y + y >= x * x:
                    break
            if j > 0:
                return RN + x
            return -RN - x
        u = np.float32(go_float64_nb(state))
        if fn[i] + u * (fn[i - 1] - fn[i]) < np.float32(math.exp(-0.5 * x * x)):
            return x


@njit(cache=True, error_model="numpy")
def go_length_gauss_nb(state, mean, std, lo, hi, kn, wn, fn):
    """The reference's clamped Gaussian length (no draw when min == max)."""
    if lo == hi:
        return lo
    val = go_norm_float64_nb(state, kn, wn, fn) * float(std) + float(mean)
    clamped = max(float(lo), min(float(hi), val))
    return np.int64(go_round_nb(clamped))


@njit(cache=True, error_model="numpy")
def reference_distribution_nb(seed, n_requests, prefix_tokens, prompt, output, max_token_id,
                              cooked, kn, wn, fn, in_len, out_len, tokens):
    """Draw n_requests requests in the reference's order: the shared prefix, then per request its
    prompt length, prompt tokens, output length, output tokens.

    Fills in_len/out_len (prefix included in in_len). With an empty `tokens` array it only
    measures; otherwise tokens receives every sequence (input then output) back to back.
    Returns the total number of tokens.
    """
    state = go_seed_nb(seed, cooked)
    prefix = np.empty(prefix_tokens, dtype=np.int64)
    for k in range(prefix_tokens):
        prefix[k] = go_intn_nb(state, max_token_id)
    write = tokens.shape[0] > 0
    pos = 0
    for r in range(n_requests):
        n_prompt = go_length_gauss_nb(state, prompt[0], prompt[1], prompt[2], prompt[3], kn, wn, fn)
        if write:
            tokens[pos:pos + prefix_tokens] = prefix
        pos += prefix_tokens
        for k in range(n_prompt):
            t = go_intn_nb(state, max_token_id)
            if write:
                tokens[pos] = t
            pos += 1
        n_output = go_length_gauss_nb(state, output[0], output[1], output[2], output[3], kn, wn, fn)
        for k in range(n_output):
            t = go_intn_nb(state, max_token_id)
            if write:
                tokens[pos] = t
            pos += 1
        in_len[r] = prefix_tokens + n_prompt
        out_len[r] = n_output
    return pos
