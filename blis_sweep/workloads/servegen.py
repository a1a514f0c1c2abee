"""ServeGen data folders (`servegen_data:` in a workload spec): one client per active chunk.

Read the way the reference reads them: `chunk-<id>-trace.csv` files in string order
(rows `start_s, rate, cv, pattern, ...`, no header, unparsable numbers read as 0); per
chunk the highest-rate row (first wins ties) with start in [span_start, span_end) (each
bound only when > 0); a chunk whose best rate is <= 0 is skipped without reading its
dataset. Otherwise `chunk-<id>-dataset.json` maps window start -> {input_tokens,
output_tokens} as Python-dict strings `{tokens: weight, ...}`; the first window in string
order inside the span with both gives the empirical distributions.
"""
from __future__ import annotations

import csv
import fnmatch
import json
import math
import os
from pathlib import Path

from blis_sweep.errors import BlisError
from blis_sweep.go.strconv import GoNumError, parse_float
from blis_sweep.workloads.spec import MAX_LENGTH, ClientSpec, DistSpec, ServeGenSpec, WorkloadSpec, check_cv, \
    with_clients

_GO_SPACE = " \t\n\v\f\r\x85\xa0"


def _float_or_zero(text: str) -> float:
    """`v, _ := strconv.ParseFloat(s, 64)`: 0 on a syntax error, +-Inf when out of range."""
    try:
        return parse_float(text)
    except GoNumError as exc:
        if "out of range" in str(exc):
            return -math.inf if text.lstrip().startswith("-") else math.inf
        return 0.0


def _go_int(x: float) -> int:
    """Go's int(x) on amd64 (NaN and out-of-range give math.MinInt64)."""
    return int(x) if -2.0**63 <= x < 2.0**63 else -(1 << 63)


def servegen_clients(spec: WorkloadSpec) -> WorkloadSpec:
    """The spec with its clients loaded from the ServeGen folder (relative to spec.base_dir)."""
    sg = spec.servegen
    folder = Path(spec.base_dir) / sg.path
    try:
        names = sorted(n for n in os.listdir(folder) if fnmatch.fnmatchcase(n, "chunk-*-trace.csv"))
    except OSError:
        names = []
    if not names:
        raise BlisError(f"{sg.where}: no chunk-*-trace.csv files found in {sg.path} ({folder})")
    clients = []
    for name in names:
        chunk = name[len("chunk-"):-len("-trace.csv")]
        client = _chunk_client(spec, sg, folder, chunk)
        if client is not None:
            clients.append(client)
    if not clients:
        raise BlisError(f"{sg.where}: no active chunk in {sg.path} (every chunk's best rate inside the span is <= 0)")
    return with_clients(spec, clients)


def _in_span(start: float, sg: ServeGenSpec) -> bool:
    return not (sg.span_start > 0 and start < sg.span_start) and not (sg.span_end > 0 and start >= sg.span_end)


def _chunk_client(spec: WorkloadSpec, sg: ServeGenSpec, folder: Path, chunk: str) -> ClientSpec | None:
    trace = folder / f"chunk-{chunk}-trace.csv"
    best_start, best_rate, best_cv, best_pattern = 0.0, 0.0, 0.0, ""
    for row in _csv_rows(trace):
        if len(row) < 4:
            continue
        start, rate, cv = (_float_or_zero(row[k].strip(_GO_SPACE)) for k in range(3))
        if _in_span(start, sg) and rate > best_rate:
            best_start, best_rate, best_cv, best_pattern = start, rate, cv, row[3].strip(_GO_SPACE)
    if not best_rate > 0:
        return None
    if math.isinf(best_rate):
        raise BlisError(f"{trace}: rate of the row starting at {best_start:g} s is not finite")
    inputs, outputs = _dataset_pdfs(folder / f"chunk-{chunk}-dataset.json", sg)
    process, cv = "poisson", None
    if best_pattern.lower() in ("gamma", "weibull"):
        process, cv = best_pattern.lower(), best_cv

        def fail(msg):
            raise BlisError(f"{trace}: chunk {chunk}: cv of the row starting at {best_start:g} s {msg}")
        check_cv(process, cv, fail)
    where = f"{folder / f'chunk-{chunk}-dataset.json'}"
    return ClientSpec(id=f"servegen-chunk-{chunk}", tenant_id=f"chunk-{chunk}", rate_fraction=best_rate,
                      process=process, cv=cv,
                      input=DistSpec(type="empirical", params=inputs, where=where + ": input_tokens"),
                      output=DistSpec(type="empirical", params=outputs, where=where + ": output_tokens"))


def _csv_rows(path: Path) -> list[list[str]]:
    """encoding/csv with its defaults: every record must have as many fields as the first."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = [row for row in csv.reader(f, strict=True) if row]
    except OSError as exc:
        raise BlisError(f"cannot read ServeGen trace {path}: {exc.strerror or exc}") from None
    except (csv.Error, UnicodeDecodeError) as exc:
        raise BlisError(f"ServeGen trace {path}: malformed CSV: {exc}") from None
    for i, row in enumerate(rows):
        if len(row) != len(rows[0]):
            raise BlisError(f"ServeGen trace {path}: record {i + 1} has {len(row)} fields, "
                            f"the first has {len(rows[0])}")
    return rows


def _dataset_pdfs(path: Path, sg: ServeGenSpec) -> tuple[tuple, tuple]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BlisError(f"ServeGen dataset {path} is missing (its chunk is active)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BlisError(f"cannot read ServeGen dataset {path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise BlisError(f"ServeGen dataset {path}: not valid JSON: {exc}") from None
    if not isinstance(data, dict) or not all(
            w is None or isinstance(w, dict) and all(v is None or isinstance(v, str) for v in w.values())
            for w in data.values()):
        raise BlisError(f"ServeGen dataset {path}: must map window start -> {{input_tokens: \"{{...}}\", "
                        f"output_tokens: \"{{...}}\"}} (strings)")
    for key in sorted(data, key=lambda k: k.encode("utf-8")):
        if not _in_span(_float_or_zero(key), sg):
            continue
        window = data[key] or {}
        inputs, outputs = window.get("input_tokens") or "", window.get("output_tokens") or ""
        if inputs and outputs:
            return (_pdf(inputs, f"{path}: window {key!r}: input_tokens"),
                    _pdf(outputs, f"{path}: window {key!r}: output_tokens"))
    raise BlisError(f"ServeGen dataset {path}: no window inside the span has both input_tokens and output_tokens")


def _pdf(text: str, where: str) -> tuple:
    """`{100: 0.5, 200.0: 0.3, }` -> ((100, 0.5), (200, 0.3)); later duplicates win, keys truncate."""
    s = text.strip(_GO_SPACE)
    if not (s.startswith("{") and s.endswith("}")):
        raise BlisError(f"{where}: expected a dict string {{tokens: weight, ...}}, got {s[:40]!r}")
    s = s[1:-1].strip(_GO_SPACE)
    if not s:
        raise BlisError(f"{where}: empty distribution")
    pdf: dict[int, float] = {}
    for pair in s.split(","):
        pair = pair.strip(_GO_SPACE)
        if not pair:
            continue
        key_text, sep, value_text = pair.partition(":")
        if not sep:
            raise BlisError(f"{where}: invalid key:value pair {pair!r}")
        try:
            key = _go_int(parse_float(key_text.strip(_GO_SPACE)))
            value = parse_float(value_text.strip(_GO_SPACE))
        except GoNumError as exc:
            raise BlisError(f"{where}: {exc}") from None
        if not 0 <= key < MAX_LENGTH:
            raise BlisError(f"{where}: token count {key_text.strip()!r} must be in [0, {MAX_LENGTH})")
        if not math.isfinite(value):
            raise BlisError(f"{where}: weight of {key} must be a finite number, got {value_text.strip()!r}")
        pdf[key] = value
    if not pdf:
        raise BlisError(f"{where}: no entries")
    return tuple(pdf.items())
