"""Parsing a trace's token-list columns (JSON lists of integers) straight from CSV text buffers.

The grammar is the row reader's (blis_sweep.trace_csv._INT_LIST): JSON whitespace,
`[`, integers without leading zeros separated by commas, `]`; or `null` (an empty
list). Column values arrive as one byte buffer plus offsets (Arrow's string layout).
"""
import numpy as np
from numba import njit

INVALID = -1
TOO_LONG = -2  # valid, but a number has more digits than int64 arithmetic here allows
_MAX_DIGITS = 18


@njit(cache=True, error_model="numpy", inline="always")
def _is_ws_nb(c):
    return c == 32 or c == 9 or c == 10 or c == 13


@njit(cache=True, error_model="numpy", inline="always")
def _skip_ws_nb(data, k, end):
    while k < end and _is_ws_nb(data[k]):
        k += 1
    return k


@njit(cache=True, error_model="numpy", inline="always")
def scan_int_list_nb(data, start, end, out, pos, write):
    """Tokens in data[start:end]: their count (written to out[pos:] when `write`), INVALID or TOO_LONG."""
    k = _skip_ws_nb(data, start, end)
    if k == end:
        return INVALID
    if data[k] == 110:  # "null"
        if end - k < 4 or data[k + 1] != 117 or data[k + 2] != 108 or data[k + 3] != 108:
            return INVALID
        return 0 if _skip_ws_nb(data, k + 4, end) == end else INVALID
    if data[k] != 91:  # "["
        return INVALID
    k = _skip_ws_nb(data, k + 1, end)
    if k < end and data[k] == 93:  # "]"
        return 0 if _skip_ws_nb(data, k + 1, end) == end else INVALID
    count = 0
    too_long = False
    while True:
        negative = False
        if k < end and data[k] == 45:  # "-"
            negative = True
            k += 1
        if k >= end or data[k] < 48 or data[k] > 57:
            return INVALID
        first = k
        if data[k] == 48:  # a leading 0 stands alone
            k += 1
        else:
            while k < end and 48 <= data[k] <= 57:
                k += 1
        if k - first > _MAX_DIGITS:
            too_long = True
        elif write:
            value = 0
            for j in range(first, k):
                value = value * 10 + (data[j] - 48)
            out[pos + count] = -value if negative else value
        count += 1
        k = _skip_ws_nb(data, k, end)
        if k >= end:
            return INVALID
        if data[k] == 44:  # ","
            k = _skip_ws_nb(data, k + 1, end)
            continue
        if data[k] == 93:  # "]"
            if _skip_ws_nb(data, k + 1, end) != end:
                return INVALID
            return TOO_LONG if too_long else count
        return INVALID


@njit(cache=True, error_model="numpy")
def parse_token_lists_nb(in_data, in_offsets, out_data, out_offsets):
    """Both token columns of n rows, in one pass -> (input lengths, output lengths, tokens packed
    request by request as input then output, first row whose prefill list is not valid, same
    for decode, first row with a number too long); row indices are -1 when there is none, and
    the tokens are meaningful only when all three are -1."""
    n = in_offsets.shape[0] - 1
    in_len = np.zeros(n, dtype=np.int64)
    out_len = np.zeros(n, dtype=np.int64)
    bad_in = -1
    bad_out = -1
    too_long = -1
    # every token takes at least two bytes (a digit and a separator or bracket)
    capacity = (in_offsets[n] - in_offsets[0] + out_offsets[n] - out_offsets[0]) // 2 + 2
    tokens = np.empty(capacity, dtype=np.int64)
    pos = 0
    for r in range(n):
        a = scan_int_list_nb(in_data, in_offsets[r], in_offsets[r + 1], tokens, pos, True)
        pos += max(a, 0)
        b = scan_int_list_nb(out_data, out_offsets[r], out_offsets[r + 1], tokens, pos, True)
        pos += max(b, 0)
        if a == INVALID and bad_in < 0:
            bad_in = r
        if b == INVALID and bad_out < 0:
            bad_out = r
        if (a == TOO_LONG or b == TOO_LONG) and too_long < 0:
            too_long = r
        in_len[r] = max(a, 0)
        out_len[r] = max(b, 0)
    return in_len, out_len, tokens[:pos], bad_in, bad_out, too_long
