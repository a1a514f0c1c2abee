"""Reading the reference's request-trace CSV (plain or gzip) into a Workload.

Format: a header row, then per request `arrived_at` (seconds), `num_prefill_tokens`,
`num_decode_tokens`, `prefill_tokens` and `decode_tokens` (JSON lists). Like the
reference, only columns 0, 3 and 4 are read and rows are numbered from 0 after the
header. Reading stops at the first row that arrives after the horizon, so rows past
it are never parsed.

Large traces are read in bulk: pieces of several MB are split into rows and their
token lists parsed column-wise by Numba scanners (kernels.token_lists), and prefix
hashes are computed piece by piece into one buffer, so memory stays near the size
of the hashes. Any file the bulk reader cannot vouch for - quoting beyond plain
`"..."` fields, non-ASCII bytes, a parse error, a bad value - goes through the
row-by-row reader, which owns every error message: both give the same requests and
the same messages.
"""
from __future__ import annotations

import csv
import gzip
import io
import math
import re
from pathlib import Path

import numpy as np

from blis_sweep.errors import BlisError
from blis_sweep.sim_config import INT64_MAX
from blis_sweep.workloads.arrays import Workload, build_workload_from_hashes, build_workload_from_packed

MIN_COLUMNS = 5
# Token ids are hashed as id + 1 modulo 2**61 - 1 (kernels.hashing), so they must stay below this.
TOKEN_ID_BOUND = (1 << 61) - 2

_WS = r"[ \t\n\r]*"  # JSON whitespace
_INT = r"-?(?:0|[1-9][0-9]*)"
# A JSON list of integers, nothing else (no floats, bools, strings or nesting), as Go's []int decoding demands.
_INT_LIST = re.compile(rf"{_WS}\[{_WS}(?:{_INT}(?:{_WS},{_WS}{_INT})*)?{_WS}\]{_WS}")
_NULL = re.compile(rf"{_WS}null{_WS}")
# Decimal float syntax accepted by Go's strconv.ParseFloat (no spaces, no underscores).
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def _open_text(path: Path):
    with open(path, "rb") as probe:
        gzipped = path.suffix == ".gz" or probe.read(2) == b"\x1f\x8b"
    raw = gzip.open(path, "rb") if gzipped else open(path, "rb")
    return io.TextIOWrapper(raw, encoding="utf-8", newline="")


def _token_list(text: str, where: str, column: str) -> np.ndarray:
    if _INT_LIST.fullmatch(text):
        inner = text.strip(" \t\n\r")[1:-1]
        return np.fromstring(inner, dtype=np.int64, sep=",") if inner.strip(" \t\n\r") else np.empty(0, np.int64)
    if _NULL.fullmatch(text):  # Go decodes `null` into an empty slice
        return np.empty(0, np.int64)
    shown = text if len(text) <= 40 else text[:37] + "..."
    raise BlisError(f"{where}: {column} is not a JSON list of integers: {shown!r}")


def _arrival_tick(text: str, where: str) -> int:
    seconds = float(text) if _DECIMAL.fullmatch(text) else math.nan
    if not math.isfinite(seconds):
        raise BlisError(f"{where}: arrived_at {text!r} is not a finite number of seconds")
    if seconds < 0:
        raise BlisError(f"{where}: arrived_at must be >= 0, got {text}")
    micros = seconds * 1e6
    if micros >= 2.0**63:
        raise BlisError(f"{where}: arrived_at {text} is too large")
    return int(micros)  # truncation toward zero, like Go's int64()


def read_trace(path: str | Path, horizon: int = INT64_MAX) -> Workload:
    """The trace's requests up to the first one past the horizon, checked as described above."""
    path = Path(path)
    try:
        workload = _read_trace_columnar(path, horizon)
    except _NotSimple:
        workload = None
    if workload is None:
        workload = _read_trace_rows(path, horizon)
    return workload


def _read_trace_rows(path: Path, horizon: int) -> Workload:
    """Row by row with Python's csv module: the reference reader's semantics and messages."""
    csv.field_size_limit(max(csv.field_size_limit(), (1 << 31) - 1))  # token lists can be long
    arrivals: list[int] = []
    pieces: list[np.ndarray] = []  # input, output, input, output, ...
    later: list[int] = []  # arrivals of the rows after the first one past the horizon
    try:
        with _open_text(path) as f:
            rows = csv.reader(f, strict=True)
            header = next((r for r in rows if r), None)  # blank lines are skipped, like Go's csv reader
            if header is None:
                raise BlisError(f"trace {path} is empty: expected a header row")
            for row in rows:
                if not row:
                    continue
                where = f"trace {path}: row {len(arrivals)}"
                if len(row) < MIN_COLUMNS:
                    raise BlisError(f"{where} has {len(row)} columns, expected at least {MIN_COLUMNS}")
                if len(row) != len(header):
                    raise BlisError(f"{where} has {len(row)} columns but the header has {len(header)}")
                tick = _arrival_tick(row[0], where)
                if tick > horizon:
                    later = [tick] + _lenient_arrivals(rows)
                    break
                pieces.append(_token_list(row[3], where, "prefill_tokens"))
                pieces.append(_token_list(row[4], where, "decode_tokens"))
                arrivals.append(tick)
    except csv.Error as exc:
        raise BlisError(f"trace {path}: malformed CSV at row {len(arrivals)}: {exc}") from None
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise BlisError(f"cannot read trace {path}: {exc}") from None

    lengths = np.fromiter((p.shape[0] for p in pieces), dtype=np.int64, count=len(pieces))
    tokens = np.concatenate(pieces) if pieces else np.empty(0, np.int64)
    _check_token_range(path, tokens, lengths)
    arrival_ticks = np.asarray(arrivals, dtype=np.int64)
    _check_requests(path, horizon, arrival_ticks, lengths[0::2], lengths[1::2], np.asarray(later, dtype=np.int64))
    return build_workload_from_packed(arrival_ticks, lengths[0::2].copy(), lengths[1::2].copy(), tokens,
                                      rate_per_s=0.0)


def _lenient_arrivals(rows) -> list[int]:
    """Arrival ticks of the remaining rows, for the sortedness check only: the reference never reads
    these rows, so a row that does not parse is skipped (-1) and a CSV error ends the scan."""
    ticks = []
    try:
        for row in rows:
            if row:
                try:
                    ticks.append(_arrival_tick(row[0], ""))
                except BlisError:
                    ticks.append(-1)
    except csv.Error:
        pass
    return ticks


def _check_requests(path: Path, horizon: int, arrivals: np.ndarray, in_len: np.ndarray, out_len: np.ndarray,
                    later: np.ndarray) -> None:
    """What the reference accepts but cannot simulate sensibly (it crashes, or prints nothing).

    `later` holds the arrivals of the row past the horizon and of every row after it
    (-1 where a row's arrival does not parse).
    """
    empty = np.flatnonzero((in_len == 0) & (out_len == 0))
    if empty.size:
        raise BlisError(f"trace {path}: row {int(empty[0])}: prefill_tokens and decode_tokens are both empty; "
                        f"a request needs at least one token")
    n = arrivals.shape[0]
    if later.size:
        inside = np.flatnonzero((later >= 0) & (later <= horizon))
        if inside.size:
            k = int(inside[0])
            raise BlisError(
                f"trace {path}: row {n + k} arrives at {int(later[k])} us, within the horizon ({horizon} us), "
                f"but after row {n}, which arrives past it ({int(later[0])} us); reading stops at the first row "
                f"past the horizon (as the reference does), so with a horizon the rows must be sorted by arrived_at")
    if n == 0:
        if later.size:
            raise BlisError(f"trace {path}: row 0 arrives at {int(later[0])} us, after the horizon ({horizon} us), "
                            f"so no request would be simulated; the horizon must reach the first request")
        raise BlisError(f"trace {path} has a header row but no requests; at least one request row is needed")


def _check_token_range(path: Path, tokens: np.ndarray, lengths: np.ndarray) -> None:
    bad = np.flatnonzero((tokens < 0) | (tokens >= TOKEN_ID_BOUND))
    if bad.size == 0:
        return
    piece = int(np.searchsorted(np.cumsum(lengths), bad[0], side="right"))
    column = "prefill_tokens" if piece % 2 == 0 else "decode_tokens"
    raise BlisError(
        f"trace {path}: row {piece // 2}: {column} holds token id {int(tokens[bad[0]])}; "
        f"token ids must be in [0, {TOKEN_ID_BOUND})"
    )


# ---------------------------------------------------------------- bulk reading
class _NotSimple(Exception):
    """The bulk reader cannot vouch for this file; the row reader decides."""


_CHUNK_BYTES = 1 << 21  # raw bytes per step (small: transients stay small); a longer row makes a longer step
_DECIMAL_BYTES = re.compile(_DECIMAL.pattern.encode())


def _raw_chunks(path: Path, gzipped: bool):
    opener = gzip.open if gzipped else open
    with opener(path, "rb") as f:
        while chunk := f.read(_CHUNK_BYTES):
            yield chunk


def _plain_rows(path: Path, gzipped: bool):
    """(text, its bytes as an array, row spans) of consecutive pieces of the file after its header row (see
    kernels.token_lists.split_plain_csv_nb); raises _NotSimple for anything but plain CSV."""
    from blis_sweep.kernels.token_lists import split_plain_csv_nb

    pending = b""
    n_columns = 0
    chunks = _raw_chunks(path, gzipped)
    for chunk in chunks:
        text = pending + chunk
        if n_columns == 0:  # the header: one plain line first in the file
            end = min((k for k in (text.find(b"\n"), text.find(b"\r")) if k >= 0), default=-1)
            if end < 0:
                pending = text
                continue
            first = text[:end]
            if end == 0 or b'"' in first or max(first, default=0) >= 128:
                raise _NotSimple
            n_columns = len(first.split(b","))
            if n_columns < MIN_COLUMNS:
                raise _NotSimple
            text = text[end + 1:]
        buf = np.frombuffer(text, dtype=np.uint8)
        spans, rows, done, plain = split_plain_csv_nb(buf, 0, False, n_columns)
        if not plain:
            raise _NotSimple
        yield text, buf, spans[:rows]
        pending = text[done:]
    if n_columns == 0:
        raise _NotSimple  # no header line end: the row reader words it
    buf = np.frombuffer(pending, dtype=np.uint8)
    spans, rows, done, plain = split_plain_csv_nb(buf, 0, True, n_columns)
    if not plain:
        raise _NotSimple
    yield pending, buf, spans[:rows]


def _read_trace_columnar(path: Path, horizon: int) -> Workload | None:
    """The row reader's result, column by column over large pieces; raises _NotSimple to hand over."""
    from blis_sweep.kernels.hashing import prefix_hashes_nb
    from blis_sweep.kernels.token_lists import parse_token_lists_nb

    try:
        with open(path, "rb") as probe:
            gzipped = path.suffix == ".gz" or probe.read(2) == b"\x1f\x8b"
        # prefix hashes go straight into one buffer: one entry per token and per request, at most
        # one per two bytes of CSV text (unknown for gzip: grown as needed)
        capacity = 0 if gzipped else path.stat().st_size // 2 + 16
        hashes = np.empty(capacity, dtype=np.uint64)
        used = 0
        arrivals, in_lens, out_lens, later = [], [], [], []
        range_error = None
        row0 = 0
        for raw, buf, spans in _plain_rows(path, gzipped):
            n = spans.shape[0]
            if n == 0:
                continue
            text = [raw[a:b] for a, b in spans[:, :2].tolist()]
            seconds = np.array([float(t) if _DECIMAL_BYTES.fullmatch(t) else math.nan for t in text])
            with np.errstate(invalid="ignore", over="ignore"):
                micros = seconds * 1e6
                arrival_ok = np.isfinite(micros) & (seconds >= 0) & (micros < 2.0**63)
                ticks = np.where(arrival_ok, micros, 0.0).astype(np.int64)
            if later:  # past the horizon already: only the sortedness check reads on
                later.append(np.where(arrival_ok, ticks, -1))
                row0 += n
                continue
            past = np.flatnonzero(arrival_ok & (ticks > horizon))
            cut = int(past[0]) if past.size else n
            in_len, out_len, tokens, bad_in, bad_out, too_long = parse_token_lists_nb(buf, spans[:cut])
            bad_arrival = np.flatnonzero(~arrival_ok[:cut])
            first_bad = min([int(x) for x in (*bad_arrival[:1], bad_in, bad_out) if x >= 0], default=-1)
            if first_bad >= 0:
                field = lambda j: raw[spans[first_bad, j]:spans[first_bad, j + 1]].decode()  # noqa: E731
                _raise_row_error(path, row0 + first_bad, field(0), field(2), field(4))
            if too_long >= 0:
                raise _NotSimple  # numbers beyond int64 arithmetic: the row reader words their error
            if cut < n:
                later.append(np.where(arrival_ok, ticks, -1)[cut:])
            if range_error is None:
                lengths = np.empty(2 * cut, dtype=np.int64)
                lengths[0::2], lengths[1::2] = in_len, out_len
                try:
                    _check_token_range(path, tokens, lengths)
                except BlisError as exc:  # reported after every row has parsed, as the row reader does
                    range_error = _renumber(exc, path, row0)
            token_offsets = np.zeros(cut + 1, dtype=np.int64)
            np.cumsum(in_len + out_len, out=token_offsets[1:])
            seq_offsets = token_offsets + np.arange(cut + 1, dtype=np.int64)
            size = int(seq_offsets[-1])
            if used + size > hashes.shape[0]:
                grown = np.empty(max(2 * hashes.shape[0], used + size), dtype=np.uint64)
                grown[:used] = hashes[:used]
                hashes = grown
            hashes[used:used + size] = prefix_hashes_nb(tokens, seq_offsets, token_offsets)
            used += size
            arrivals.append(ticks[:cut])
            in_lens.append(in_len)
            out_lens.append(out_len)
            row0 += n
    except (OSError, EOFError, UnicodeDecodeError, ValueError):
        raise _NotSimple from None  # a read problem: the row reader finds it and words it
    if range_error is not None:
        raise range_error
    concat = lambda parts: np.concatenate(parts) if parts else np.empty(0, np.int64)  # noqa: E731
    arrival_ticks, in_len, out_len = concat(arrivals), concat(in_lens), concat(out_lens)
    _check_requests(path, horizon, arrival_ticks, in_len, out_len, concat(later))
    return build_workload_from_hashes(arrival_ticks, in_len, out_len, hashes[:used], rate_per_s=0.0)


def _raise_row_error(path: Path, row: int, arrived_at: str, prefill: str, decode: str) -> None:
    """The row reader's message for a row the column checks rejected."""
    where = f"trace {path}: row {row}"
    _arrival_tick(arrived_at, where)
    _token_list(prefill, where, "prefill_tokens")
    _token_list(decode, where, "decode_tokens")
    raise _NotSimple  # the checks disagree: let the row reader decide


def _renumber(exc: BlisError, path: Path, row0: int) -> BlisError:
    """A batch-relative `row k` in a token-range message, made absolute."""
    text = str(exc)
    prefix = f"trace {path}: row "
    rest = text[len(prefix):]
    k, _, tail = rest.partition(":")
    return BlisError(f"{prefix}{row0 + int(k)}:{tail}")
