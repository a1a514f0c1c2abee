"""The one way into the kernel: pack configurations and workloads, simulate, unpack.

`run`, `grid` and the tests all call `simulate`; a single configuration is a batch of one.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np
from numpy.lib.recfunctions import structured_to_unstructured

from blis_sweep.sim_config import RoutingPolicy, SimConfig
from blis_sweep.workloads.arrays import Workload
from blis_sweep.kernels import layout as L
from blis_sweep.kernels import state as S
from blis_sweep.kernels.engine import simulate_batch_nb
from blis_sweep.kernels.hashing import power_table_nb

MAX_CAPACITY_RETRIES = 6
# what a cold compile took on the 2-core development machine (benchmarks/bench_compile.py); the
# message uses the last compile measured on this machine instead once there is one
DEFAULT_COMPILE_S = 45
_LAST_COMPILE_FILE = "last-compile-seconds"
_kernels_ready = False


def _keep_freed_memory_mapped() -> None:
    """Let glibc reuse freed working memory instead of returning it to the OS.

    Each configuration allocates its working arrays (megabytes) and frees them at the
    end; by default glibc maps and unmaps such blocks, and the page faults of touching
    fresh pages cost about a fifth of the simulation time. Raising the mmap and trim
    thresholds keeps those pages in the process for the next configuration.
    """
    try:
        import ctypes
        import ctypes.util

        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        libc.mallopt(m_mmap_threshold, 32 * 1024 * 1024)  # glibc's maximum
        libc.mallopt(m_trim_threshold, 1 << 30)
    except (OSError, AttributeError):  # not glibc: nothing to tune
        pass


_keep_freed_memory_mapped()


@dataclass
class BatchResult:
    """Kernel output for a batch: metric blocks and optional per-request arrays.

    Metric blocks are records of kernels.layout.metrics_dt, whose field names are the
    results tables' column names: `result.cluster[k]["completed_requests"]`,
    `result.cluster["status"]` (a column over the batch)."""

    cluster: np.ndarray  # [C] metrics_dt
    instances: np.ndarray  # [C, max_instances] metrics_dt (empty second axis when not requested)
    requests: np.ndarray  # [C, n] kernels.layout.request_out_dt (empty second axis when not requested)
    trace_route: np.ndarray  # [C, n] route_trace_dt: routing decisions (empty unless traced)
    trace_candidates: np.ndarray  # [C, n, k] candidate_dt: top-k counterfactual candidates

    # per-request results as [C, n] arrays (views of `requests`)
    @property
    def req_ttft(self) -> np.ndarray:  # ticks, first-token time relative to arrival
        return self.requests["ttft"]

    @property
    def req_e2e(self) -> np.ndarray:  # ticks
        return self.requests["e2e"]

    @property
    def req_itl_sum(self) -> np.ndarray:  # ticks, sum of the request's inter-token latencies
        return self.requests["itl_sum"]

    @property
    def req_sched(self) -> np.ndarray:  # ticks, last scheduling delay
        return self.requests["sched"]

    @property
    def req_flags(self) -> np.ndarray:  # kernels.layout.RF_* bits
        return self.requests["flag_bits"]

    @property
    def req_instance(self) -> np.ndarray:
        return self.requests["instance"]


def metric_values(blocks) -> np.ndarray:
    """Metric blocks (records) as plain float64 values, one trailing axis of fields (for comparing
    blocks whole: NaN fields compare equal in numpy.testing, which records do not)."""
    return structured_to_unstructured(np.asarray(blocks))


# cfg_dt fields that are not SimConfig/RooflineParams fields of the same name
_CFG_DERIVED = frozenset({"workload", "roofline", "capacity_scale", "trace_k", "alpha0", "alpha1", "alpha2",
                          "beta0", "beta1", "beta2"})


def pack_configs(configs: list[SimConfig], workload_ids: list[int], trace_k: int = -1) -> np.ndarray:
    """One kernels.layout.cfg_dt record per configuration; fields are copied by name from the
    SimConfig (and its RooflineParams, zero without one)."""
    cfgs = np.zeros(len(configs), dtype=L.cfg_dt)
    if not configs:
        return cfgs
    for name in L.cfg_dt.names:
        if name in _CFG_DERIVED:
            continue
        if hasattr(configs[0], name):
            cfgs[name] = [getattr(c, name) for c in configs]
        else:
            cfgs[name] = [getattr(c.roofline, name) if c.roofline is not None else 0 for c in configs]
    for k in range(3):
        cfgs[f"alpha{k}"] = [c.alpha_coeffs[k] for c in configs]
        cfgs[f"beta{k}"] = [c.beta_coeffs[k] for c in configs]
    cfgs["workload"] = workload_ids
    cfgs["roofline"] = [c.roofline is not None for c in configs]
    cfgs["capacity_scale"] = 1
    cfgs["trace_k"] = trace_k
    return cfgs


@dataclass(frozen=True)
class PackedWorkloads:
    start: np.ndarray
    count: np.ndarray
    arrival: np.ndarray
    in_len: np.ndarray
    out_len: np.ndarray
    seq_off: np.ndarray
    prefix_hash: np.ndarray
    id_rank: np.ndarray

    @property
    def max_requests(self) -> int:
        return int(self.count.max()) if self.count.size else 0


def pack_workloads(workloads: list[Workload]) -> PackedWorkloads:
    """Concatenate workloads; per-request sequence offsets become absolute.

    A single workload is used as it is (no copy of its prefix hashes, the largest array)."""
    if len(workloads) == 1:
        w = workloads[0]
        return PackedWorkloads(start=np.zeros(1, dtype=np.int64), count=np.array([w.num_requests], dtype=np.int64),
                               arrival=w.arrival_ticks, in_len=w.input_len, out_len=w.output_len,
                               seq_off=w.seq_offset[:-1], prefix_hash=w.prefix_hash, id_rank=w.id_rank)
    counts = np.array([w.num_requests for w in workloads], dtype=np.int64)
    starts = np.zeros(len(workloads), dtype=np.int64)
    if len(workloads) > 1:
        np.cumsum(counts[:-1], out=starts[1:])
    hash_base = 0
    seq_offs = []
    for w in workloads:
        seq_offs.append(w.seq_offset[:-1] + hash_base)
        hash_base += int(w.seq_offset[-1])
    return PackedWorkloads(
        start=starts,
        count=counts,
        arrival=np.concatenate([w.arrival_ticks for w in workloads]),
        in_len=np.concatenate([w.input_len for w in workloads]),
        out_len=np.concatenate([w.output_len for w in workloads]),
        seq_off=np.concatenate(seq_offs),
        prefix_hash=np.concatenate([w.prefix_hash for w in workloads]),
        id_rank=np.concatenate([w.id_rank for w in workloads]),
    )


def simulate(configs: list[SimConfig], workloads: list[Workload], workload_ids: list[int],
             per_request: bool = False, per_instance: bool = False,
             packed: PackedWorkloads | None = None, trace_k: int = -1) -> BatchResult:
    """Simulate configs[k] on workloads[workload_ids[k]], all in one kernel call.

    trace_k >= 0 records routing decisions with top-k counterfactual candidates.
    """
    if not _kernels_ready:
        ensure_compiled()
    packed = packed or pack_workloads(workloads)
    cfgs = pack_configs(configs, workload_ids, trace_k)
    n_cfg = len(configs)
    max_bs = int(cfgs["block_size"].max()) if n_cfg else 1
    wls = S.Workloads(packed.start, packed.count, packed.arrival, packed.in_len, packed.out_len, packed.seq_off,
                      packed.prefix_hash, packed.id_rank, power_table_nb(max_bs))
    shape = _OutputShape(int(cfgs["num_instances"].max()) if (per_instance and n_cfg) else 0,
                         packed.max_requests if per_request else 0,
                         packed.max_requests if trace_k >= 0 else 0, max(trace_k, 0))
    result = _new_outputs(n_cfg, shape)
    todo = np.arange(n_cfg)
    for _attempt in range(MAX_CAPACITY_RETRIES):
        sub = _run_kernel(cfgs[todo], wls, shape)
        for full, part in zip(result, sub):
            full[todo] = part
        retry = todo[result.cluster["status"][todo] == L.STATUS_CAPACITY]
        if retry.size == 0:
            break
        cfgs["capacity_scale"][retry] *= 4
        todo = retry
    else:
        raise RuntimeError("kernel working memory estimate failed repeatedly; this is a bug")
    return BatchResult(*result)


@dataclass(frozen=True)
class _OutputShape:
    instances: int  # per-instance blocks per configuration (0: none)
    requests: int  # per-request results per configuration (0: none)
    traced: int  # traced routing decisions per configuration (0: none)
    candidates: int  # counterfactual candidates per decision


def _new_outputs(n_cfg: int, shape: _OutputShape):
    """The kernel's outputs, NaN-filled (fields a configuration does not define stay NaN)."""
    return S.Outputs(np.full(n_cfg, np.nan, dtype=L.metrics_dt),
                     np.full((n_cfg, shape.instances), np.nan, dtype=L.metrics_dt),
                     np.zeros((n_cfg, shape.requests), dtype=L.request_out_dt),
                     np.zeros((n_cfg, shape.traced), dtype=L.route_trace_dt),
                     np.full((n_cfg, shape.traced, shape.candidates), np.nan, dtype=L.candidate_dt))


def _run_kernel(cfgs, wls, shape: _OutputShape):
    n_cfg = cfgs.shape[0]
    outputs = _new_outputs(n_cfg, shape)
    threads = min(numba.get_num_threads(), n_cfg)
    if threads <= 1:
        simulate_batch_nb(cfgs, wls, outputs)
        return outputs
    # slices of rows on a thread pool (the kernel releases the GIL); several slices per thread
    # so that a thread with cheap configurations takes more of them
    bounds = np.linspace(0, n_cfg, min(n_cfg, 8 * threads) + 1).astype(np.int64)
    pool = _thread_pool(threads)
    jobs = [pool.submit(simulate_batch_nb, cfgs[a:b], wls, S.Outputs(*(x[a:b] for x in outputs)))
            for a, b in zip(bounds[:-1], bounds[1:])]
    for job in jobs:
        job.result()
    return outputs


_pools: dict = {}


def _thread_pool(threads: int):
    from concurrent.futures import ThreadPoolExecutor

    if threads not in _pools:
        _pools[threads] = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="blis-sweep-kernel")
    return _pools[threads]


# ---------------------------------------------------------------- compile once, say so
def _cache_dir() -> Path:
    return Path(numba.config.CACHE_DIR)


def kernels_cached() -> bool:
    """Whether Numba's on-disk cache already holds the compiled batch kernel for these sources.

    Numba keys its cache by the source file's path and modification stamp, so another checkout
    of the same sources (same cache directory) does not count; its index tells, when readable.
    """
    cache = getattr(simulate_batch_nb, "_cache", None)
    try:
        return bool(cache._cache_file._load_index())  # empty when missing or stale for this file
    except Exception:  # noqa: BLE001 - Numba internals moved: fall back to looking for the file
        path = Path(getattr(cache, "_cache_path", _cache_dir()))
        return any(path.glob("*simulate_batch_nb*.nbi"))


def _expected_compile_s() -> int:
    try:
        return round(float((_cache_dir().parent / _LAST_COMPILE_FILE).read_text()))
    except (OSError, ValueError):
        return DEFAULT_COMPILE_S


def ensure_compiled(announce: bool = True) -> float:
    """Compile (or load from the on-disk cache) every kernel a command can use; seconds taken.

    A cold compile is announced on stderr first, since it takes a minute or more
    and happens only once per installation (and after a kernel change).
    """
    global _kernels_ready
    cold = not numba.config.DISABLE_JIT and not kernels_cached()  # NUMBA_DISABLE_JIT=1: Python, nothing to compile
    if cold and announce:
        print(f"compiling simulation kernels (one time, about {_expected_compile_s()} s)...", file=sys.stderr,
              flush=True)
    t0 = time.perf_counter()
    _kernels_ready = True  # the warm-up run below goes through simulate()
    _warm_up_run(cold)
    seconds = time.perf_counter() - t0
    if cold:
        try:
            (_cache_dir().parent / _LAST_COMPILE_FILE).write_text(f"{seconds:.1f}\n")
        except OSError:
            pass
        if announce:
            print(f"compiled in {seconds:.0f} s; later commands start at once", file=sys.stderr, flush=True)
    return seconds


# the trace reader's warm-up as a command of its own (run beside the engine's compile)
TRACE_READER_WARM_UP = [sys.executable, "-c", "import blis_sweep.engine as e; e._warm_up_trace_reader()"]


def _warm_up_run(cold: bool = False) -> None:
    """Touch every kernel entry point once: the trace reader, prefix hashes, the batch simulation.

    On a cold start with a spare core, the trace reader compiles in a second process while this
    one compiles the engine: they share no kernels, and both land in the same on-disk cache
    (Numba writes its cache files atomically)."""
    from blis_sweep.workloads.arrays import build_workload

    side = None
    if cold and (os.cpu_count() or 1) > 1:
        try:
            side = subprocess.Popen(TRACE_READER_WARM_UP, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
        except OSError:
            side = None
    workload = build_workload([0, 1000], [[1, 2], [1, 5]], [[3, 4], [6, 7]])
    simulate([SimConfig(total_kv_blocks=64, alpha_coeffs=(1.0, 1.0, 1.0), beta_coeffs=(1.0, 1.0, 1.0))],
             [workload], [0], per_request=True, per_instance=True)
    if side is not None:
        try:
            if side.wait(timeout=600) == 0:
                return
        except subprocess.TimeoutExpired:
            side.kill()
    _warm_up_trace_reader()  # here after all (loads from the cache if the other process got that far)


def _warm_up_trace_reader() -> None:
    import tempfile

    from blis_sweep.workloads.traces import read_trace

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "warmup.csv"
        path.write_text('arrived_at,num_prefill_tokens,num_decode_tokens,prefill_tokens,decode_tokens\n'
                        '0,2,2,"[1,2]","[3,4]"\n0.001,2,2,"[1,5]","[6,7]"\n')
        read_trace(path)


# ---------------------------------------------------------------- memory, up front
def config_working_bytes(cfg: SimConfig, workload: Workload) -> int:
    """Upper bound of the kernel's working memory for one configuration (bytes).

    Mirrors the allocations of kernels.engine._allocate_nb at capacity scale 1
    (a retry after an underestimate multiplies the event heap, block lists and step log
    by 4). Every array is counted as if fully touched; in practice the event heap, wait
    queue, running batch and step log stay mostly untouched virtual memory, so resident
    use is lower. The workload's arrays are shared and not counted (workload_bytes).
    """
    n = workload.num_requests
    bs = cfg.block_size
    in_len, out_len = workload.input_len, workload.output_len
    est_blocks = int(np.sum(2 * (-(-in_len // bs)) + (-(-out_len // bs)) + 4))
    est_steps = int(np.sum(out_len + 2))
    max_in = int(in_len.max()) if n else 1
    return working_bytes(n, cfg.num_instances, bs, cfg.total_kv_blocks, est_blocks, est_steps, max_in,
                         cfg.routing_policy == RoutingPolicy.PREFIX_AFFINITY, cpu_tier=cfg.kv_cpu_blocks > 0)


def working_bytes(n: int, n_inst: int, block_size: int, total_kv_blocks: int, est_blocks: int, est_steps: int,
                  max_input: int, prefix_affinity: bool, cpu_tier: bool = True) -> int:
    """The kernel's working memory from a workload's sizes (config_working_bytes; also used,
    from sizes estimated before a workload is generated, by blis_sweep.limits)."""
    block_cap = min(total_kv_blocks, est_blocks)
    ht_cap = 16
    while ht_cap < block_cap + block_cap // 4 + 16:
        ht_cap *= 2
    per_instance = (S.words(S.instance_dt) + S.words(S.event_dt) * (4 * n + 64) + (2 * n + 16) + (n + 1)
                    + (S.words(S.block_dt) + (S.words(S.cpu_block_dt) if cpu_tier else 0)) * block_cap
                    + 2 * (ht_cap + 1) + (max_input // block_size + 1))
    # rq, prio, chash; cluster heap, arrival order; end-of-run
    per_request = S.words(S.request_dt) + 2 + S.words(S.cluster_event_dt) * 2 + 2 + 9
    affinity = 16
    if prefix_affinity:
        while affinity < 2 * n + 16:
            affinity *= 2
    words = (n_inst * per_instance + max(n, 1) * per_request + S.words(S.node_dt) * est_blocks
             + S.words(S.step_dt) * est_steps + S.words(S.span_dt) * (n + 16) + 3 * est_steps + 2 * (affinity + 1)
             + 2 * (max_input // block_size + 1) + 64)
    return 8 * words


def workload_bytes(workload: Workload) -> int:
    """Memory held by a workload's arrays (shared by every configuration that runs it)."""
    return sum(a.nbytes for a in (workload.arrival_ticks, workload.input_len, workload.output_len,
                                  workload.seq_offset, workload.prefix_hash, workload.id_rank))


def estimate_memory_bytes(configs: list[SimConfig], workloads: list[Workload], workload_ids: list[int],
                          per_request: bool = False, per_instance: bool = False, trace_k: int = -1) -> int:
    """Upper bound of what simulate() with these arguments allocates, beyond the workloads themselves:
    its outputs plus the working memory of the configurations running at the same time (one per
    Numba thread; the largest ones are assumed to meet)."""
    n_cfg = len(configs)
    if n_cfg == 0:
        return 0
    n_req = max(w.num_requests for w in workloads) if workloads else 0
    n_inst = max(c.num_instances for c in configs)
    outputs = n_cfg * S.words(L.metrics_dt) * (1 + (n_inst if per_instance else 0))
    outputs += n_cfg * n_req * (S.words(L.request_out_dt) if per_request else 0)
    if trace_k >= 0:
        outputs += n_cfg * n_req * (S.words(L.route_trace_dt) + max(trace_k, 0) * S.words(L.candidate_dt))
    working = sorted((config_working_bytes(c, workloads[w]) for c, w in zip(configs, workload_ids)), reverse=True)
    return 8 * outputs * 2 + sum(working[:numba.get_num_threads()])  # outputs: the kernel's and the merged copy
