"""Reading the reference's request-trace CSV (plain or gzip) into a Workload.

Format: a header row, then per request `arrived_at` (seconds), `num_prefill_tokens`,
`num_decode_tokens`, `prefill_tokens` and `decode_tokens` (JSON lists). Like the
reference, only columns 0, 3 and 4 are read and rows are numbered from 0 after the
header. Reading stops at the first row that arrives after the horizon, so rows past
it are never parsed.
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
from blis_sweep.workload_arrays import Workload, build_workload_from_packed

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
    path = Path(path)
    csv.field_size_limit(max(csv.field_size_limit(), (1 << 31) - 1))  # token lists can be long
    arrivals: list[int] = []
    pieces: list[np.ndarray] = []  # input, output, input, output, ...
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
    return build_workload_from_packed(
        np.asarray(arrivals, dtype=np.int64), lengths[0::2].copy(), lengths[1::2].copy(), tokens, rate_per_s=0.0
    )


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
