"""Go's math/rand value stream (rand.New(rand.NewSource(seed))), for reference-identical workloads.

The reference draws distribution workloads from Go's math/rand: an additive lagged
Fibonacci generator (607 lags, tap 273) seeded through a Lehmer generator and a table
of constants, Intn by rejection on Int31, and NormFloat64 by the ziggurat method with
float32 tables. The constant tables come from blis_sweep/go/go_math_rand_tables.json
(Go's BSD licence next to it); the state is one uint64 array: vec[0:607], tap, feed.
"""
import math
from collections import namedtuple

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
                              cooked, normal, in_len, out_len, tokens):
    # 11 arguments: the generator's inputs as the reference names them, then three outputs
    # preallocated by the caller
    """Draw n_requests requests in the reference's order: the shared prefix, then per request its
    prompt length, prompt tokens, output length, output tokens.

    Fills in_len/out_len (prefix included in in_len). With an empty `tokens` array it only
    measures; otherwise tokens receives every sequence (input then output) back to back.
    Returns the total number of tokens. `normal` holds the NormFloat64 tables (kn, wn, fn).
    """
    kn, wn, fn = normal
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


# ---------------------------------------------------------------------------
# The reference's workload-spec generator (sim/workload at d25e1935): exponential draws,
# Gamma / Weibull inter-arrival times and token-length samplers on Go's stream.

RE_EXP = 7.69711747013104972
INT64_MIN = -(1 << 63)
TWO63 = 9223372036854775808.0

ARRIVAL_POISSON = 0
ARRIVAL_GAMMA = 1
ARRIVAL_WEIBULL = 2

LENGTH_GAUSSIAN = 0
LENGTH_EXPONENTIAL = 1
LENGTH_PARETO_LOGNORMAL = 2
LENGTH_EMPIRICAL = 3

# the length samplers of a workload spec (their parameters, one row each; empirical
# distributions as values/cdf spans per sampler) and the ziggurat tables of Go's
# NormFloat64 (kn, wn, fn) and ExpFloat64 (ke, we, fe)
LengthSamplers = namedtuple("LengthSamplers", ("kinds", "fparams", "iparams", "offsets", "values", "cdf"))
Ziggurats = namedtuple("Ziggurats", ("kn", "wn", "fn", "ke", "we", "fe"))

# client columns of spec_client_requests_nb's `cols` argument (-1: absent)
CS_INPUT, CS_OUTPUT, CS_TEXT, CS_IMAGE, CS_IMAGE_COUNT, CS_AUDIO, CS_AUDIO_COUNT, CS_VIDEO, CS_VIDEO_COUNT, \
    CS_REASON_RATIO = range(10)
SPEC_TOO_MANY_DRAWS = -1
SPEC_TOO_MANY_TOKENS = -2
SPEC_NEGATIVE_LENGTH = -3


@njit(cache=True, error_model="numpy")
def go_float_to_int_nb(x):
    """Go's int64(x) on amd64: truncation; NaN and out-of-range values give math.MinInt64."""
    if not (-TWO63 <= x < TWO63):
        return np.int64(INT64_MIN)
    return np.int64(x)


@njit(cache=True, error_model="numpy")
def go_exp_float64_nb(state, ke, we, fe):
    """ExpFloat64: the exponential ziggurat (256 strips, float32 tables)."""
    while True:
        j = (go_int63_nb(state) >> 31) & 0xFFFFFFFF  # Uint32()
        i = j & 0xFF
        x = float(j) * float(we[i])
        if j < ke[i]:
            return x
        if i == 0:
            return RE_EXP - math.log(go_float64_nb(state))
        u = np.float32(go_float64_nb(state))
        if fe[i] + u * (fe[i - 1] - fe[i]) < np.float32(math.exp(-x)):
            return x


@njit(cache=True, error_model="numpy")
def _gamma_marsaglia_tsang_nb(state, shape, scale, kn, wn, fn):
    d = shape - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    while True:
        while True:
            x = go_norm_float64_nb(state, kn, wn, fn)
            v = 1.0 + c * x
            if v > 0:
                break
        v = v * v * v
        u = go_float64_nb(state)
        if u < 1.0 - 0.0331 * (x * x) * (x * x):
            return d * v * scale
        if math.log(u) < 0.5 * x * x + d * (1.0 - v + math.log(v)):
            return d * v * scale


@njit(cache=True, error_model="numpy")
def go_gamma_nb(state, shape, scale, kn, wn, fn):
    """Gamma(shape, scale): Marsaglia-Tsang; below shape 1, Gamma(shape+1) * U^(1/shape), U drawn first."""
    if shape < 1.0:
        u = go_float64_nb(state)
        return _gamma_marsaglia_tsang_nb(state, shape + 1.0, scale, kn, wn, fn) * math.pow(u, 1.0 / shape)
    return _gamma_marsaglia_tsang_nb(state, shape, scale, kn, wn, fn)


@njit(cache=True, error_model="numpy")
def spec_iat_nb(state, kind, p0, p1, zig):
    """One inter-arrival time in µs (>= 1). poisson: p0 = rate/µs; gamma: (shape, scale); weibull: (k, scale)."""
    kn, wn, fn, ke, we, fe = zig
    if kind == ARRIVAL_GAMMA:
        sample = go_gamma_nb(state, p0, p1, kn, wn, fn)
    elif kind == ARRIVAL_WEIBULL:
        u = go_float64_nb(state)
        sample = p1 * math.pow(-math.log(u), 1.0 / p0)
    else:
        sample = go_exp_float64_nb(state, ke, we, fe) / p0
    iat = go_float_to_int_nb(sample)
    return iat if iat >= 1 else np.int64(1)


@njit(cache=True, error_model="numpy")
def _rounded_length_nb(val):
    n = go_float_to_int_nb(go_round_nb(val))
    return n if n >= 1 else np.int64(1)


@njit(cache=True, error_model="numpy")
def spec_length_nb(state, s, samplers, zig):
    """One draw of length sampler s of `samplers` (LengthSamplers; the reference's LengthSampler.Sample)."""
    kinds, fparams, iparams, emp_offsets, emp_values, emp_cdf = samplers
    kn, wn, fn, ke, we, fe = zig
    kind = kinds[s]
    if kind == LENGTH_GAUSSIAN:
        lo = iparams[s, 0]
        hi = iparams[s, 1]
        if lo == hi:
            return lo
        val = go_norm_float64_nb(state, kn, wn, fn) * fparams[s, 1] + fparams[s, 0]
        return _rounded_length_nb(min(float(hi), max(float(lo), val)))
    if kind == LENGTH_EXPONENTIAL:
        return _rounded_length_nb(go_exp_float64_nb(state, ke, we, fe) * fparams[s, 0])
    if kind == LENGTH_PARETO_LOGNORMAL:
        if go_float64_nb(state) < fparams[s, 4]:
            u = go_float64_nb(state)
            val = fparams[s, 1] / math.pow(u, 1.0 / fparams[s, 0])
        else:
            z = go_norm_float64_nb(state, kn, wn, fn)
            val = math.exp(fparams[s, 2] + fparams[s, 3] * z)
        return _rounded_length_nb(val)
    a = emp_offsets[s]
    b = emp_offsets[s + 1]
    if b == a:
        return np.int64(1)
    if b - a == 1:
        return emp_values[a]
    u = go_float64_nb(state)
    idx = a + np.searchsorted(emp_cdf[a:b], u)  # first entry with cdf >= u
    if idx >= b:
        idx = b - 1
    return emp_values[idx]


@njit(cache=True, error_model="numpy")
def _grow_nb(a, need):
    if need <= a.shape[0]:
        return a
    b = np.empty(max(need, 2 * a.shape[0]), dtype=a.dtype)
    b[: a.shape[0]] = a
    return b


@njit(cache=True, error_model="numpy")
def _draw_ids_nb(state, tokens, start, count, max_token_id):
    """tokens[start:start+count] = Intn draws (growing the array as needed); returns the array."""
    tokens = _grow_nb(tokens, start + count)
    for k in range(count):
        tokens[start + k] = go_intn_nb(state, max_token_id)
    return tokens


@njit(cache=True, error_model="numpy")
def _spec_input_length_nb(state, multimodal, cols, samplers, zig):
    """A request's input length: one draw, or for a multimodal client the text length plus the
    image/audio/video counts and sizes (at least 1)."""
    if not multimodal:
        return spec_length_nb(state, cols[CS_INPUT], samplers, zig)
    total = np.int64(0)
    if cols[CS_TEXT] >= 0:
        total += spec_length_nb(state, cols[CS_TEXT], samplers, zig)
    for size_col in (CS_IMAGE, CS_AUDIO, CS_VIDEO):
        if cols[size_col] >= 0:
            count = spec_length_nb(state, cols[size_col + 1], samplers, zig)
            for _ in range(count):
                total += spec_length_nb(state, cols[size_col], samplers, zig)
    return total if total != 0 else np.int64(1)


@njit(cache=True, error_model="numpy", inline="always")
def _in_windows_nb(windows, now):
    for w in range(windows.shape[0]):
        if windows[w, 0] <= now < windows[w, 1]:
            return True
    return False


@njit(cache=True, error_model="numpy")
def spec_client_requests_nb(seed, arrival, horizon, windows, has_lifecycle, multimodal, cols, samplers, limits,
                            cooked, zig):
    # 11 arguments: one client's generation inputs, each a different kind of thing (grouped where they are one)
    """One client's requests as the reference generates them from its own source (seeded with `seed`).

    arrival = (kind, p0, p1) (see spec_iat_nb); cols: the client's sampler per CS_* column of
    `samplers` (LengthSamplers); limits = (max_token_id, max_draws, max_tokens); zig: Ziggurats.
    Arrivals: draw an inter-arrival time, stop at >= horizon, skip times outside every
    lifecycle window (no other draws). Then input length, output length, input token ids,
    output token ids; or, for a multimodal client, the input length (_spec_input_length_nb),
    the input token ids, output length and ids. Returns (status, arrival ticks, input lengths,
    output lengths, tokens packed input-then-output); status < 0: SPEC_TOO_MANY_DRAWS / _TOKENS /
    SPEC_NEGATIVE_LENGTH.
    """
    arrival_kind, arrival_p0, arrival_p1 = arrival
    max_token_id, max_draws, max_tokens = limits
    state = go_seed_nb(seed, cooked)
    arrivals = np.empty(64, dtype=np.int64)
    in_len = np.empty(64, dtype=np.int64)
    out_len = np.empty(64, dtype=np.int64)
    tokens = np.empty(4096, dtype=np.int64)
    n = 0
    pos = 0
    draws = 0
    now = np.int64(0)
    status = 0
    while now < horizon:
        draws += 1
        if draws > max_draws:
            status = SPEC_TOO_MANY_DRAWS
            break
        now += spec_iat_nb(state, arrival_kind, arrival_p0, arrival_p1, zig)
        if now >= horizon:
            break
        if has_lifecycle and not _in_windows_nb(windows, now):
            continue
        n_in = _spec_input_length_nb(state, multimodal, cols, samplers, zig)
        if n_in < 0:
            status = SPEC_NEGATIVE_LENGTH
            break
        n_out = np.int64(0)
        if not multimodal:  # both lengths, then both id runs
            n_out = spec_length_nb(state, cols[CS_OUTPUT], samplers, zig)
        if pos + n_in > max_tokens:
            status = SPEC_TOO_MANY_TOKENS
            break
        tokens = _draw_ids_nb(state, tokens, pos, n_in, max_token_id)
        if multimodal:  # the output length only after the input ids
            n_out = spec_length_nb(state, cols[CS_OUTPUT], samplers, zig)
        if n_out < 0:
            status = SPEC_NEGATIVE_LENGTH
            break
        if pos + n_in + n_out > max_tokens:
            status = SPEC_TOO_MANY_TOKENS
            break
        tokens = _draw_ids_nb(state, tokens, pos + n_in, n_out, max_token_id)
        arrivals = _grow_nb(arrivals, n + 1)
        in_len = _grow_nb(in_len, n + 1)
        out_len = _grow_nb(out_len, n + 1)
        arrivals[n] = now
        in_len[n] = n_in
        out_len[n] = n_out
        n += 1
        pos += n_in + n_out
    return status, arrivals[:n], in_len[:n], out_len[:n], tokens[:pos]


@njit(cache=True, error_model="numpy")
def go_token_ids_nb(state, out, max_token_id):
    """out[:] = successive Intn(max_token_id) draws (the reference's GenerateRandomTokenIDs)."""
    for k in range(out.shape[0]):
        out[k] = go_intn_nb(state, max_token_id)
