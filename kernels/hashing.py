"""Polynomial prefix hashes over token sequences, modulo the Mersenne prime 2**61 - 1.

A block's identity in the reference is "the exact token prefix it closes". We
represent a token sequence s by H(s) = sum_i (s_i + 1) * B**(len-1-i) mod P, so
that hashes of concatenations and slices are O(1) from per-request prefix hashes:
    H(x ++ y) = H(x) * B**len(y) + H(y)
    H(s[a:b]) = ph[b] - ph[a] * B**(b-a)
Tokens are shifted by one so that a leading token 0 still changes the hash.
"""
import numpy as np
from numba import njit

MOD = np.uint64((1 << 61) - 1)
BASE = np.uint64(0x1F2E3D4C5B6A798)  # fixed odd base < MOD, chosen arbitrarily
_MASK30 = np.uint64((1 << 30) - 1)
_MASK31 = np.uint64((1 << 31) - 1)


@njit(cache=True, error_model="numpy", inline="always")
def reduce_mod_nb(x):
    x = (x & MOD) + (x >> np.uint64(61))
    if x >= MOD:
        x -= MOD
    return x


@njit(cache=True, error_model="numpy", inline="always")
def mulmod_nb(a, b):
    """a * b mod 2**61-1 for a, b < 2**61, without 128-bit integers."""
    au = a >> np.uint64(31)
    ad = a & _MASK31
    bu = b >> np.uint64(31)
    bd = b & _MASK31
    mid = ad * bu + au * bd
    midu = mid >> np.uint64(30)
    midd = mid & _MASK30
    return reduce_mod_nb(au * bu * np.uint64(2) + midu + (midd << np.uint64(31)) + ad * bd)


@njit(cache=True, error_model="numpy", inline="always")
def addmod_nb(a, b):
    s = a + b
    if s >= MOD:
        s -= MOD
    return s


@njit(cache=True, error_model="numpy", inline="always")
def submod_nb(a, b):
    if a >= b:
        return a - b
    return a + MOD - b


@njit(cache=True, error_model="numpy", inline="always")
def concat_hash_nb(h_left, h_right, pow_right):
    """H(x ++ y) given H(x), H(y) and B**len(y)."""
    return addmod_nb(mulmod_nb(h_left, pow_right), h_right)


@njit(cache=True, error_model="numpy", inline="always")
def slice_hash_nb(prefix, start, end, pow_table):
    """H(s[start:end]) from prefix hashes of s; end - start must be < len(pow_table)."""
    return submod_nb(prefix[end], mulmod_nb(prefix[start], pow_table[end - start]))


@njit(cache=True, error_model="numpy")
def power_table_nb(max_exponent):
    out = np.empty(max_exponent + 1, dtype=np.uint64)
    acc = np.uint64(1)
    for k in range(max_exponent + 1):
        out[k] = acc
        acc = mulmod_nb(acc, BASE)
    return out


@njit(cache=True, error_model="numpy")
def prefix_hashes_nb(tokens, seq_offsets, token_offsets):
    """Prefix hashes for many sequences packed end to end.

    tokens[token_offsets[r]:token_offsets[r+1]] is sequence r; the result holds
    H(seq_r[:i]) at seq_offsets[r] + i for i in 0..len(seq_r).
    """
    n = token_offsets.shape[0] - 1
    out = np.empty(seq_offsets[n], dtype=np.uint64)
    for r in range(n):
        base = seq_offsets[r]
        acc = np.uint64(0)
        out[base] = acc
        t0 = token_offsets[r]
        for i in range(token_offsets[r + 1] - t0):
            acc = addmod_nb(mulmod_nb(acc, BASE), np.uint64(tokens[t0 + i] + 1))
            out[base + i + 1] = acc
    return out
