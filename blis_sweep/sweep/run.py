"""`blis-sweep grid SPEC.yaml`: simulate every configuration of a sweep, streaming results to Parquet.

Output directory (default results/<sweep name>/)::

    sweep.yaml                  the expanded, normalised sweep (its hash identifies the run)
    manifest.json               versions, machine, spec hash, timings, status
    chunks/configs-00000.parquet  one row per configuration of chunk 0 (chunk_size configs)
    chunks/requests-00000.parquet per-request records of chunk 0 (with --requests)
    configs.parquet             all chunks, in config_id order
    requests.parquet            (with --requests)

Configurations run in chunks of `chunk_size` consecutive config ids; each chunk is
written atomically (temporary file, fsync, rename) with the spec hash in its Parquet
metadata, so an interrupted run leaves only complete chunks and re-running the same
command resumes after the last one. Memory is bounded by one chunk (plus the workload
caches), whatever the grid size: points are decoded on demand and the final files are
streamed together chunk by chunk.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import yaml

from blis_sweep.errors import BlisError
from blis_sweep.sweep.io import (META_CHUNK, META_HASH, atomic_write_json, atomic_write_text, concat_parquet_atomic,
                                parquet_identity, remove_stale_temps, write_parquet_atomic)
from blis_sweep.sweep.resolve import (PARAM_SCHEMA, Resolver, WorkloadCache, param_row, rows_to_param_arrays,
                                     workload_bytes, workload_key)
from blis_sweep.sweep.spec import GridSpec, load_grid_spec
from blis_sweep.limits import DEFAULT_MAX_CONFIGS
from blis_sweep.kernels.layout import INTEGER_COLUMNS, METRIC_COLUMNS
from blis_sweep.sweep.slo_classes import CLASS_BOOL_COLUMNS, CLASS_FLOAT_COLUMNS, CLASS_INT_COLUMNS, class_metrics
from blis_sweep.sweep.steady_state import (STEADY_FLOAT_COLUMNS, STEADY_INT_COLUMNS, STEADY_STRING_COLUMNS, WINDOW_COLUMNS,
                                     Attainment, SteadySettings, steady_metrics)

CONFIGS_FILE = "configs.parquet"
REQUESTS_FILE = "requests.parquet"
MANIFEST_FILE = "manifest.json"
SWEEP_FILE = "sweep.yaml"
CHUNKS_DIR = "chunks"
OUR_FILES = (CONFIGS_FILE, REQUESTS_FILE, MANIFEST_FILE, SWEEP_FILE, "curves.parquet")
PACK_BUDGET_BYTES = 256 << 20  # distinct workloads packed together for the kernel
KERNEL_BATCH = 64  # configurations per kernel call (progress granularity)

# Throughput and latencies over the steady window of each run (blis_sweep.sweep.steady_state):
# unlike responses_per_sec (completed / whole simulated time, which includes the ramp-up and
# the final drain), achieved_rps equals the offered rate while the deployment keeps up and
# its capacity once saturated; `verdict` says which.
STEADY_SCHEMA = ([(name, pa.float64()) for name in WINDOW_COLUMNS] + [(name, pa.int64()) for name in STEADY_INT_COLUMNS]
                 + [(name, pa.float64()) for name in STEADY_FLOAT_COLUMNS]
                 + [(name, pa.string()) for name in STEADY_STRING_COLUMNS])
# per SLO class of workload specs (blis_sweep.sweep.slo_classes), over the same steady window
STEADY_SCHEMA += ([(name, pa.int64()) for name in CLASS_INT_COLUMNS] + [(name, pa.float64()) for name in
                  CLASS_FLOAT_COLUMNS] + [(name, pa.bool_()) for name in CLASS_BOOL_COLUMNS])
CONFIGS_SCHEMA = pa.schema(
    PARAM_SCHEMA + [(name, pa.int64() if name in INTEGER_COLUMNS else pa.float64()) for name in METRIC_COLUMNS]
    + STEADY_SCHEMA)
REQUESTS_SCHEMA = pa.schema([
    ("config_id", pa.int64()), ("request_id", pa.int64()), ("arrival_us", pa.int64()),
    ("input_tokens", pa.int64()), ("output_tokens", pa.int64()),
    ("ttft_ms", pa.float64()), ("e2e_ms", pa.float64()), ("tpot_ms", pa.float64()), ("itl_sum_ms", pa.float64()),
    ("scheduling_delay_ms", pa.float64()), ("completed", pa.bool_()), ("rejected", pa.bool_()),
    ("instance", pa.int32()), ("slo_class", pa.string()), ("tenant_id", pa.string()),
])


@dataclass
class GridRunSummary:
    name: str
    out_dir: Path
    spec_hash: str
    num_points: int
    num_configs: int
    num_chunks: int
    chunks_run: int
    chunks_skipped: int
    infeasible: int
    simulated_configs: int
    simulated_requests: int
    wall_s: float
    compile_s: float
    simulate_s: float
    timings: dict = field(default_factory=dict)

    @property
    def configs_per_s(self) -> float:
        run = self.wall_s - self.compile_s
        return self.simulated_configs / run if run > 0 else float("nan")


def chunk_file(out_dir: Path, kind: str, k: int) -> Path:
    return out_dir / CHUNKS_DIR / f"{kind}-{k:05d}.parquet"


def _utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


# ---------------------------------------------------------------- output directory

def open_out_dir(out_dir: Path, sub: str) -> dict | None:
    """Create out_dir/sub, check it is writable, drop stale temporary files; the previous manifest or None."""
    try:
        if out_dir.exists() and not out_dir.is_dir():
            raise BlisError(f"output path {out_dir} exists and is not a directory; choose another --out")
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
        probe = out_dir / sub / f".write-probe.tmp-{id(out_dir)}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise BlisError(f"output directory {out_dir} is not writable ({exc.strerror or exc}); "
                        f"choose another --out") from None
    remove_stale_temps(out_dir)
    remove_stale_temps(out_dir / sub)

    manifest_path = out_dir / MANIFEST_FILE
    old = None
    if manifest_path.exists():
        try:
            old = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            old = {}
    return old


def _prepare_out_dir(out_dir: Path, spec_hash: str, requests: bool, overwrite: bool) -> dict | None:
    """Create/check the directory before any simulation; returns the previous manifest when resuming."""
    old = open_out_dir(out_dir, CHUNKS_DIR)
    if overwrite:
        _clear(out_dir)
        return None
    if old is not None:
        if old.get("spec_hash") != spec_hash:
            raise BlisError(f"{out_dir} holds results of a different sweep (spec hash {old.get('spec_hash')}, "
                            f"this sweep {spec_hash}); use another --out or --overwrite")
        if bool(old.get("requests")) != requests:
            raise BlisError(f"{out_dir} holds a run {'with' if old.get('requests') else 'without'} --requests; "
                            f"re-run with the same options, another --out, or --overwrite")
    return old


def _clear(out_dir: Path) -> None:
    for name in OUR_FILES:
        with contextlib.suppress(FileNotFoundError):
            (out_dir / name).unlink()
    chunks = out_dir / CHUNKS_DIR
    for p in chunks.glob("*-[0-9][0-9][0-9][0-9][0-9].parquet"):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def _chunk_done(out_dir: Path, k: int, expected_rows: int, spec_hash: str, requests: bool) -> bool:
    h, rows = parquet_identity(chunk_file(out_dir, "configs", k))
    if h != spec_hash or rows != expected_rows:
        return False
    if requests:
        h, _ = parquet_identity(chunk_file(out_dir, "requests", k))
        return h == spec_hash
    return True


# ---------------------------------------------------------------- progress

class _Progress:
    def __init__(self, enabled: bool, total: int, done: int, name: str):
        self._p = None
        self._start = time.perf_counter()
        self._simulated = 0
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        self._p = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                           TextColumn("configs"), TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
                           TextColumn("ETA"), TimeRemainingColumn(), console=Console(stderr=True))
        self._p.start()
        self._task = self._p.add_task(name, total=total, completed=done, rate="")

    def advance(self, n: int) -> None:
        self._simulated += n
        if self._p is not None:
            dt = time.perf_counter() - self._start
            self._p.update(self._task, advance=n, rate=f"{self._simulated / dt:,.1f}/s" if dt > 0 else "")

    def close(self) -> None:
        if self._p is not None:
            self._p.stop()


# ---------------------------------------------------------------- running chunks

class _PackCache:
    """Distinct workloads packed for the kernel; reused by every chunk whose workloads it already holds."""

    def __init__(self, wcache: WorkloadCache, budget: int = PACK_BUDGET_BYTES):
        self.wcache = wcache
        self.budget = budget
        self.index: dict = {}
        self.workloads: list = []
        self.packed = None
        self.packs = 0

    def ensure(self, keys: list) -> None:
        from blis_sweep import engine

        if self.packed is not None and all(k in self.index for k in keys):
            return
        union = list(self.index) + [k for k in dict.fromkeys(keys) if k not in self.index]
        held = dict(zip(self.index, self.workloads))
        ws = [held[k] if k in held else self.wcache.get(k) for k in union]
        if packed_bytes(ws) > self.budget:
            union = list(dict.fromkeys(keys))
            ws = [held[k] if k in held else self.wcache.get(k) for k in union]
        self.index = {k: i for i, k in enumerate(union)}
        self.workloads = ws
        self.packed = pack_sharing_tokens(ws)
        self.packs += 1


def _token_key(w) -> tuple:
    """Identity of a workload's token hashes: the rates of one base workload share the same array."""
    return (w.prefix_hash.__array_interface__["data"][0], w.prefix_hash.shape[0], w.seq_offset.shape[0])


def packed_bytes(workloads: list) -> int:
    """Bytes of pack_sharing_tokens(workloads)."""
    shared = {_token_key(w): w.prefix_hash.nbytes for w in workloads}
    return sum(shared.values()) + sum(workload_bytes(w) - w.prefix_hash.nbytes for w in workloads)


def pack_sharing_tokens(workloads: list):
    """engine.pack_workloads, with each distinct token-hash array stored once.

    A rate sweep (or a capacity search) derives many workloads from one generated base:
    only arrival times differ, and the per-request offsets into the prefix hashes are
    relative to the base, so all of them can point into one copy of its hashes.
    """
    from blis_sweep.engine import PackedWorkloads

    counts = np.array([w.num_requests for w in workloads], dtype=np.int64)
    starts = np.zeros(len(workloads), dtype=np.int64)
    if len(workloads) > 1:
        np.cumsum(counts[:-1], out=starts[1:])
    hash_at: dict = {}
    hash_parts, seq_offs = [], []
    hash_base = 0
    for w in workloads:
        key = _token_key(w)
        if key not in hash_at:
            hash_at[key] = hash_base
            hash_parts.append(w.prefix_hash)
            hash_base += int(w.seq_offset[-1])
        seq_offs.append(w.seq_offset[:-1] + hash_at[key])
    return PackedWorkloads(
        start=starts, count=counts,
        arrival=np.concatenate([w.arrival_ticks for w in workloads]),
        in_len=np.concatenate([w.input_len for w in workloads]),
        out_len=np.concatenate([w.output_len for w in workloads]),
        seq_off=np.concatenate(seq_offs),
        prefix_hash=np.concatenate(hash_parts),
        id_rank=np.concatenate([w.id_rank for w in workloads]),
    )


def _interleave(m: int, threads: int) -> np.ndarray:
    """Order in which the kernel sees m configs so that each thread's contiguous share mixes neighbours.

    Numba splits a prange into one contiguous block per thread; neighbouring grid configs
    cost about the same, so dealing them round-robin balances the threads.
    """
    if threads <= 1 or m <= threads:
        return np.arange(m)
    return np.concatenate([np.arange(t, m, threads) for t in range(threads)])


@dataclass
class _ChunkResult:
    configs: pa.Table
    requests: pa.Table | None
    simulated: int
    infeasible: int
    requests_simulated: int
    simulate_s: float


def _run_chunk(spec: GridSpec, resolver: Resolver, wcache: WorkloadCache, packs: _PackCache, a: int, b: int,
               want_requests: bool, progress: _Progress, threads: int) -> _ChunkResult:
    return simulate_points(chunk_entries(spec, a, b), resolver, wcache, packs, want_requests, progress, threads,
                           spec.steady, spec.attainment, class_slo=spec.class_slo)


def _local_chunks(spec: GridSpec, resolver: Resolver, wcache: WorkloadCache, packs: _PackCache, todo: list,
                  want_requests: bool, progress: _Progress):
    """(chunk index, result, seconds it took) for each (k, a, b) of `todo`, simulated in this process."""
    import numba

    threads = numba.get_num_threads()
    for k, a, b in todo:
        t0 = time.perf_counter()
        res = _run_chunk(spec, resolver, wcache, packs, a, b, want_requests, progress, threads)
        yield k, res, time.perf_counter() - t0


def write_chunk(out_dir: Path, k: int, res: _ChunkResult, spec_hash: str) -> None:
    """Chunk k's files, each atomic, configs last: a configs chunk on disk means the chunk is complete."""
    meta = {META_HASH: spec_hash.encode(), META_CHUNK: str(k).encode()}
    if res.requests is not None:
        write_parquet_atomic(chunk_file(out_dir, "requests", k), res.requests, meta)
    write_parquet_atomic(chunk_file(out_dir, "configs", k), res.configs, meta)


def chunk_entries(spec: GridSpec, a: int, b: int) -> list:
    """The PointEntry of each configuration id in [a, b)."""
    n_seeds = len(spec.seeds)
    entries = []
    last_p = -1
    values = lines = None
    for cid in range(a, b):
        p, rep = divmod(cid, n_seeds)
        if p != last_p:
            values, lines = spec.point(p)
            last_p = p
        entries.append(PointEntry(values, lines, cid, p, rep, spec.seeds[rep]))
    return entries


@dataclass
class PointEntry:
    """One configuration to simulate: a grid point's values with its ids and seed."""

    values: dict
    lines: dict
    config_id: int
    point_id: int
    replicate: int
    seed: int


def simulate_points(entries: list[PointEntry], resolver: Resolver, wcache: WorkloadCache, packs: _PackCache,
                    want_requests: bool, progress: _Progress, threads: int, steady: SteadySettings,
                    attainment: Attainment | None, kernel_batch: int = KERNEL_BATCH,
                    class_slo: dict | None = None) -> _ChunkResult:
    """Simulate configurations and build their result rows (CONFIGS_SCHEMA), kernel_batch per kernel call."""
    from blis_sweep import engine
    from blis_sweep.kernels import layout as L

    rows, cfgs, wkeys, feasible, wls = [], [], [], [], []
    a = entries[0].config_id if entries else 0
    for local, entry in enumerate(entries):
        values, seed = entry.values, entry.seed
        dep = resolver.deployment(values, entry.lines)
        key = workload_key(values, seed)
        wl = None
        if dep.infeasible is None:
            wl = wcache.get(key)
            feasible.append(local)
            cfgs.append(resolver.sim_config(values, dep, seed))
            wkeys.append(key)
        elif key[0] == "trace":
            wl = wcache.get(key)
        wls.append(wl)
        rows.append(param_row(values, dep, entry.config_id, entry.point_id, entry.replicate, seed, wl))

    m = len(entries)
    cluster = np.full(m, np.nan, dtype=L.metrics_dt)
    steady_rows: list[dict | None] = [None] * m
    req_parts = []
    simulate_s = 0.0
    n_req_sim = 0
    infeasible = m - len(feasible)
    if infeasible:
        progress.advance(infeasible)
    if feasible:
        packs.ensure(wkeys)
        wids = np.array([packs.index[k] for k in wkeys], dtype=np.int64)
        feasible_arr = np.asarray(feasible, dtype=np.int64)
        step = kernel_batch or len(feasible)
        for s in range(0, len(feasible), step):
            pos = np.arange(s, min(s + step, len(feasible)))
            order = pos[_interleave(pos.size, threads)]
            t0 = time.perf_counter()
            res = engine.simulate([cfgs[i] for i in order], packs.workloads, wids[order].tolist(),
                                  per_request=True, packed=packs.packed)
            simulate_s += time.perf_counter() - t0
            cluster[feasible_arr[order]] = res.cluster
            for j, i in enumerate(order):
                wl = wls[feasible[i]]
                n_req = int(np.searchsorted(wl.arrival_ticks, cfgs[i].horizon, side="right"))
                n_req_sim += n_req
                flags = res.req_flags[j, :n_req]
                steady_rows[feasible[i]] = steady_metrics(
                    wl.arrival_ticks[:n_req], (flags & L.RF_COMPLETED) != 0, (flags & L.RF_HAS_TTFT) != 0,
                    res.req_ttft[j, :n_req], res.req_e2e[j, :n_req], res.req_itl_sum[j, :n_req],
                    res.req_sched[j, :n_req], (flags & L.RF_SCHEDULED) != 0, wl.output_len[:n_req], steady,
                    attainment)
                row = steady_rows[feasible[i]]
                row.update(class_metrics(
                    wl.labels, slice(row["warmup_requests"], n_req - row["cooldown_requests"]),
                    (flags & L.RF_COMPLETED) != 0, (flags & L.RF_HAS_TTFT) != 0, res.req_ttft[j, :n_req],
                    res.req_e2e[j, :n_req], res.req_itl_sum[j, :n_req], wl.output_len[:n_req], class_slo))
            if want_requests:
                req_parts.append((order, res))
            progress.advance(pos.size)

    columns = rows_to_param_arrays(rows)
    for name in METRIC_COLUMNS:
        col = cluster[name]
        mask = np.isnan(col)
        if name in INTEGER_COLUMNS:
            columns.append(pa.array(np.where(mask, 0, col).astype(np.int64), mask=mask, type=pa.int64()))
        else:
            columns.append(pa.array(col, mask=mask, type=pa.float64()))
    for name, typ in STEADY_SCHEMA:
        col = [None if r is None else r[name] for r in steady_rows]
        if typ == pa.float64():
            arr = np.array([math.nan if v is None else v for v in col], dtype=np.float64)
            columns.append(pa.array(arr, mask=np.isnan(arr), type=typ))
        else:
            columns.append(pa.array(col, type=typ))
    table = pa.Table.from_arrays(columns, schema=CONFIGS_SCHEMA)

    req_table = None
    if want_requests:
        req_table = _requests_table(req_parts, feasible, wls, cfgs, a)
    return _ChunkResult(table, req_table, len(feasible), infeasible, n_req_sim, simulate_s)


def _requests_table(parts, feasible: list, wls: list, cfgs: list, a: int) -> pa.Table:
    from blis_sweep.kernels import layout as L

    cols: dict[str, list] = {name: [] for name in REQUESTS_SCHEMA.names}
    for order, res in parts:
        for j, i in enumerate(order):
            local = feasible[i]
            wl = wls[local]
            horizon = cfgs[i].horizon
            n = int(np.searchsorted(wl.arrival_ticks, horizon, side="right"))
            flags = res.req_flags[j, :n]
            has_ttft = (flags & L.RF_HAS_TTFT) != 0
            done = (flags & L.RF_COMPLETED) != 0
            sched = (flags & L.RF_SCHEDULED) != 0
            out_len = wl.output_len[:n]
            itl_sum = res.req_itl_sum[j, :n].astype(np.float64)
            tpot = np.where(out_len > 0, itl_sum / np.maximum(out_len - 1, 1), 0.0) / 1000.0
            inst = res.req_instance[j, :n]
            cols["config_id"].append(np.full(n, a + local, dtype=np.int64))
            cols["request_id"].append(np.arange(n, dtype=np.int64))
            cols["arrival_us"].append(wl.arrival_ticks[:n])
            cols["input_tokens"].append(wl.input_len[:n])
            cols["output_tokens"].append(out_len)
            labels = wl.labels  # workload specs: class and tenant per request ("" = none)
            cols["slo_class"].append(np.array(labels.slo_class_list()[:n] if labels else [None] * n, dtype=object))
            cols["tenant_id"].append(np.array(labels.tenant_list()[:n] if labels else [None] * n, dtype=object))
            cols["ttft_ms"].append((res.req_ttft[j, :n] / 1000.0, ~has_ttft))
            cols["e2e_ms"].append((res.req_e2e[j, :n] / 1000.0, ~done))
            cols["tpot_ms"].append((tpot, ~done))
            cols["itl_sum_ms"].append((itl_sum / 1000.0, ~done))
            cols["scheduling_delay_ms"].append((res.req_sched[j, :n] / 1000.0, ~sched))
            cols["completed"].append(done)
            cols["rejected"].append((flags & L.RF_REJECTED) != 0)
            cols["instance"].append((inst.astype(np.int32), inst < 0))
    arrays = []
    for name, typ in zip(REQUESTS_SCHEMA.names, REQUESTS_SCHEMA.types):
        parts_ = cols[name]
        if parts_ and isinstance(parts_[0], tuple):
            values = np.concatenate([v for v, _ in parts_])
            mask = np.concatenate([mk for _, mk in parts_])
            arrays.append(pa.array(values, mask=mask, type=typ))
        else:
            arrays.append(pa.array(np.concatenate(parts_) if parts_ else np.empty(0, dtype=object), type=typ))
    table = pa.Table.from_arrays(arrays, schema=REQUESTS_SCHEMA)
    return table.sort_by([("config_id", "ascending"), ("request_id", "ascending")])


def _warm_up(want_requests: bool) -> float:
    """Time the first kernel call on a tiny input: JIT compilation, or loading the on-disk cache."""
    t0 = time.perf_counter()
    from blis_sweep import engine
    from blis_sweep.sim_config import SimConfig
    from blis_sweep.workloads.arrays import build_workload

    wl = build_workload([0, 1000], [[1, 2, 3], [1, 2, 4, 5]], [[7, 8], [9]])
    cfg = SimConfig(total_kv_blocks=64, alpha_coeffs=(100.0, 1.0, 1.0), beta_coeffs=(1000.0, 10.0, 10.0))
    engine.simulate([cfg], [wl], [0], per_request=want_requests)
    return time.perf_counter() - t0


# ---------------------------------------------------------------- entry point

class GridInterrupted(KeyboardInterrupt):
    """Ctrl-C during the chunk loop; every chunk written so far is complete and is reused on resume."""

    def __init__(self, chunks_written: int, num_chunks: int, out_dir: Path):
        super().__init__(f"{chunks_written} of {num_chunks} chunks written to {out_dir}")
        self.chunks_written, self.num_chunks, self.out_dir = chunks_written, num_chunks, out_dir


def check_grid_size(spec: GridSpec, max_configs: int) -> None:
    """Refuse grids above --max-configs (checked before any per-point validation)."""
    if isinstance(max_configs, bool) or not isinstance(max_configs, int) or max_configs < 1:
        raise BlisError(f"--max-configs must be an integer >= 1, got {max_configs!r}")
    if spec.num_configs > max_configs:
        raise BlisError(f"{spec.source}: the grid has {spec.num_configs:,} configurations "
                        f"({spec.num_points:,} points x {len(spec.seeds)} seeds), more than --max-configs {max_configs:,}; shrink the axes, or "
                        f"raise --max-configs if you mean it")


def check_grid_before_writing(spec: GridSpec, resolver: Resolver, requests: bool) -> None:
    """Checks that need the whole grid, done before the output directory is touched: every
    trace file (read and parsed once; the run reuses it) and the memory one kernel batch needs."""
    from blis_sweep.sweep.resolve import preset_lengths
    from blis_sweep.limits import WorkloadSize, check_memory, expected_size, kernel_bytes

    threads = 1
    with contextlib.suppress(Exception):
        import numba

        threads = max(1, numba.config.NUMBA_NUM_THREADS)
    for values, _lines in spec.distinct(("workload", "num_requests", "num_instances", "block_size")):
        wl = values["workload"]
        if "spec" in wl:
            # A spec's size depends on its rate and run length; its loader bounds how much it
            # may generate, and the kernel's working memory follows the generated requests.
            continue
        if "trace" in wl:
            size = WorkloadSize.of(resolver.trace_workload(wl["trace"]))
        else:
            lengths = wl["distribution"] if "distribution" in wl else preset_lengths(wl["preset"])
            size = expected_size(values["num_requests"], lengths)
        per_config = kernel_bytes(size, values["num_instances"], values["block_size"], 2**62)
        outputs = KERNEL_BATCH * 6 * 8 * size.num_requests
        chunk_rows = spec.chunk_size * size.num_requests * 120 if requests else 0
        check_memory(threads * per_config + outputs + chunk_rows,
                     f"{spec.source}: a configuration with {size.num_requests} requests and "
                     f"{values['num_instances']} instance(s)")


def run_grid(spec_path: str | Path, out: str | Path | None = None, requests: bool = False, quiet: bool = False,
             overwrite: bool = False, progress: bool | None = None, log=None,
             max_configs: int = DEFAULT_MAX_CONFIGS, backend=None) -> GridRunSummary:
    """Run a sweep file; returns a summary. Bad input raises BlisError before any simulation
    or write. Ctrl-C in the chunk loop raises GridInterrupted (finished chunks are kept).

    progress: show the progress bar (default: when stderr is a terminal and not quiet).
    log: callable for status lines (default: print to stderr unless quiet).
    backend: None simulates in this process; a blis_sweep.sweep.ray_backend.RayBackend simulates the chunks on a
    Ray cluster (the caller closes it). Either way chunks are written, merged and resumed here.
    """
    t_start = time.perf_counter()
    started_at = _utc_now()
    if log is None:
        log = (lambda msg: None) if quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    if progress is None:
        progress = not quiet and sys.stderr.isatty()

    spec = load_grid_spec(spec_path)
    check_grid_size(spec, max_configs)
    resolver = Resolver(spec)
    resolver.validate()
    check_grid_before_writing(spec, resolver, requests)
    if backend is not None:
        backend.connect()  # an unreachable cluster is reported before anything is written
    out_dir = Path(out) if out is not None else Path("results") / spec.name
    spec_hash = spec.spec_hash()
    previous = _prepare_out_dir(out_dir, spec_hash, requests, overwrite)

    n = spec.num_configs
    cs = spec.chunk_size
    n_chunks = math.ceil(n / cs)
    bounds = [(k * cs, min(n, (k + 1) * cs)) for k in range(n_chunks)]
    todo = [k for k, (a, b) in enumerate(bounds) if not _chunk_done(out_dir, k, b - a, spec_hash, requests)]
    todo_set = set(todo)
    done_configs = sum(b - a for k, (a, b) in enumerate(bounds) if k not in todo_set)

    from blis_sweep.sweep.run_info import git_commit, machine_info, package_versions

    manifest = {
        "name": spec.name,
        "status": "running",
        "spec_file": str(Path(spec_path)),
        "spec_hash": spec_hash,
        "requests": requests,
        "num_points": spec.num_points,
        "num_configs": n,
        "num_chunks": n_chunks,
        "chunk_size": cs,
        "seeds": list(spec.seeds),
        "slo": spec.slo,
        "attainment": spec.attainment.as_dict() if spec.attainment else None,
        "steady_state": spec.steady.as_dict(),
        "versions": package_versions(),
        "commit": git_commit(),
        "machine": machine_info(),
        "started_at": started_at,
        "invocations": (previous or {}).get("invocations", []),
    }
    header = (f"# blis-sweep grid: expanded sweep of {spec.source}\n# spec hash {spec_hash}: "
              f"{spec.num_points} points x {len(spec.seeds)} seeds = {n} configurations\n")
    atomic_write_text(out_dir / SWEEP_FILE,
                      header + yaml.safe_dump(spec.normalized(), sort_keys=False, default_flow_style=None))
    atomic_write_json(out_dir / MANIFEST_FILE, manifest)
    log(f"{spec.name}: {spec.num_points} points x {len(spec.seeds)} seeds = {n} configurations in {n_chunks} "
        f"chunks" + (f" ({n_chunks - len(todo)} already done)" if len(todo) < n_chunks else "") + f" -> {out_dir}")

    compile_s = 0.0
    simulate_s = build_s = write_s = 0.0
    infeasible = simulated = sim_requests = 0
    wcache = WorkloadCache(resolver)
    packs = _PackCache(wcache)
    if todo:
        todo_bounds = [(k, *bounds[k]) for k in todo]
        bar = None
        try:
            compile_s = _warm_up(requests) if backend is None else backend.start(requests)
            bar = _Progress(progress, n, done_configs, spec.name)
            chunks = (_local_chunks(spec, resolver, wcache, packs, todo_bounds, requests, bar) if backend is None
                      else backend.grid_chunks(spec, todo_bounds, requests, bar))
            for k, res, chunk_s in chunks:
                t1 = time.perf_counter()
                write_chunk(out_dir, k, res, spec_hash)
                write_s += time.perf_counter() - t1
                build_s += chunk_s - res.simulate_s
                simulate_s += res.simulate_s
                infeasible += res.infeasible
                simulated += res.simulated
                sim_requests += res.requests_simulated
        except KeyboardInterrupt:
            if bar is not None:
                bar.close()
            # count what is on disk: the signal may land between a chunk's rename and the counter
            written = sum(1 for k, (a, b) in enumerate(bounds)
                          if _chunk_done(out_dir, k, b - a, spec_hash, requests))
            manifest.update(status="interrupted", interrupted_at=_utc_now(), chunks_written=written)
            with contextlib.suppress(Exception):
                atomic_write_json(out_dir / MANIFEST_FILE, manifest)
            raise GridInterrupted(written, n_chunks, out_dir) from None
        finally:
            if bar is not None:
                bar.close()

    t_merge = time.perf_counter()
    file_meta = {META_HASH: spec_hash.encode(), b"blis_sweep.name": spec.name.encode()}
    concat_parquet_atomic(out_dir / CONFIGS_FILE, [chunk_file(out_dir, "configs", k) for k in range(n_chunks)],
                          CONFIGS_SCHEMA, file_meta)
    if requests:
        concat_parquet_atomic(out_dir / REQUESTS_FILE,
                              [chunk_file(out_dir, "requests", k) for k in range(n_chunks)], REQUESTS_SCHEMA,
                              file_meta)
    merge_s = time.perf_counter() - t_merge
    infeasible = _count_infeasible(out_dir / CONFIGS_FILE)  # over all chunks, also those of earlier runs
    wall = time.perf_counter() - t_start
    timings = {"wall_s": round(wall, 3), "compile_s": round(compile_s, 3), "simulate_s": round(simulate_s, 3),
               "build_s": round(build_s, 3), "write_s": round(write_s, 3), "merge_s": round(merge_s, 3)}
    manifest["invocations"] = manifest["invocations"] + [{
        "started_at": started_at, "backend": backend.describe() if backend is not None else {"name": "local"},
        "chunks_run": len(todo), "chunks_skipped": n_chunks - len(todo),
        "simulated_configs": simulated, "simulated_requests": sim_requests, **timings}]
    manifest.update(status="complete", finished_at=_utc_now(), infeasible_configs=infeasible,
                    workloads_generated=wcache.generated, workload_packs=packs.packs, **timings)
    atomic_write_json(out_dir / MANIFEST_FILE, manifest)
    return GridRunSummary(name=spec.name, out_dir=out_dir, spec_hash=spec_hash, num_points=spec.num_points,
                          num_configs=n, num_chunks=n_chunks, chunks_run=len(todo),
                          chunks_skipped=n_chunks - len(todo), infeasible=infeasible, simulated_configs=simulated,
                          simulated_requests=sim_requests, wall_s=wall, compile_s=compile_s, simulate_s=simulate_s,
                          timings=timings)


def _count_infeasible(path: Path) -> int:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    col = pq.read_table(path, columns=["infeasible"]).column("infeasible")
    return int(pc.sum(col).as_py() or 0)
