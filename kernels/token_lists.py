"""Reading a request trace's CSV text in bulk: rows split into field spans, token lists
(JSON lists of integers) parsed straight from the bytes.

Only plain CSV is split here (see split_plain_csv_nb); anything else is left to the
row-by-row reader in blis_sweep.workloads.traces. The token-list grammar is that reader's
(_INT_LIST): JSON whitespace, `[`, integers without leading zeros separated by commas,
`]`; or `null` (an empty list).
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


@njit(cache=True, error_model="numpy")
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
                value = value * 10 + (np.int64(data[j]) - 48)  # int64 also as Python (uint8 would wrap)
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
def parse_token_lists_nb(data, spans):
    """The token lists of n rows in one pass: prefill in data[spans[r, 2]:spans[r, 3]], decode in
    data[spans[r, 4]:spans[r, 5]] -> (input lengths, output lengths, tokens packed request by
    request as input then output, first row whose prefill list is not valid, same for decode,
    first row with a number too long); row indices are -1 when there is none, and the tokens
    are meaningful only when all three are -1."""
    n = spans.shape[0]
    in_len = np.zeros(n, dtype=np.int64)
    out_len = np.zeros(n, dtype=np.int64)
    bad_in = -1
    bad_out = -1
    too_long = -1
    # every token takes at least two bytes (a digit and a separator or bracket)
    capacity = 2
    for r in range(n):
        capacity += (spans[r, 3] - spans[r, 2] + spans[r, 5] - spans[r, 4]) // 2
    tokens = np.empty(capacity, dtype=np.int64)
    pos = 0
    for r in range(n):
        a = scan_int_list_nb(data, spans[r, 2], spans[r, 3], tokens, pos, True)
        pos += max(a, 0)
        b = scan_int_list_nb(data, spans[r, 4], spans[r, 5], tokens, pos, True)
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


@njit(cache=True, error_model="numpy")
def split_plain_csv_nb(buf, start, final, n_columns):
    """Rows of plain CSV text in buf[start:], each as the (start, end) byte spans of columns 0, 3 and 4.

    Plain means: a quoted field is `"..."` with no quote inside, followed by a delimiter;
    an unquoted field holds no quote; every row has n_columns fields; bytes are ASCII.
    Blank lines are skipped. Returns (spans [rows, 6], rows, end of the last complete row,
    plain); when `final` is false an incomplete last row is left for the next call.
    """
    n = buf.shape[0]
    spans = np.empty(((n - start) // max(n_columns, 1) + 2, 6), dtype=np.int64)
    rows = 0
    k = start
    while k < n:
        c = buf[k]
        if c == 10 or c == 13:  # blank line
            k += 1
            continue
        row_start = k
        field = 0
        incomplete = False
        while True:
            if k < n and buf[k] == 34:  # quoted field
                close = k + 1
                while close < n and buf[close] != 34:
                    if buf[close] >= 128:
                        return spans, rows, row_start, False
                    close += 1
                if close >= n:
                    if final:
                        return spans, rows, row_start, False
                    incomplete = True
                    break
                a, b = k + 1, close
                k = close + 1
                if k < n and buf[k] != 44 and buf[k] != 10 and buf[k] != 13:
                    return spans, rows, row_start, False
            else:
                a = k
                while k < n and buf[k] != 44 and buf[k] != 10 and buf[k] != 13:
                    if buf[k] == 34 or buf[k] >= 128:
                        return spans, rows, row_start, False
                    k += 1
                b = k
            if k >= n and not final:
                incomplete = True
                break
            if field == 0 or field == 3 or field == 4:
                column = 0 if field == 0 else field - 2
                spans[rows, 2 * column] = a
                spans[rows, 2 * column + 1] = b
            field += 1
            if k < n and buf[k] == 44:
                k += 1
                continue
            break
        if incomplete:
            return spans, rows, row_start, True
        if field != n_columns:
            return spans, rows, row_start, False
        if k < n and buf[k] == 13:
            if k + 1 >= n and not final:
                return spans, rows, row_start, True  # "\r" of a "\r\n" split between chunks
            k += 1
            if k < n and buf[k] == 10:
                k += 1
        elif k < n:
            k += 1
        rows += 1
    return spans, rows, k, True
