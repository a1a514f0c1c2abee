"""The one way into the kernel: pack configurations and workloads, simulate, unpack.

`run`, `grid` and the tests all call `simulate`; a single configuration is a batch of one.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np

from blis_sweep.sim_config import RoutingPolicy, SimConfig
from blis_sweep.workloads.arrays import Workload
from blis_sweep.kernels import layout as L
from blis_sweep.kernels import state as S
from blis_sweep.kernels.engine import simulate_batch_nb
from blis_sweep.kernels.hashing import power_table_nb

MAX_CAPACITY_RETRIES = 6
# what a cold compile took on the 2-core development machine (benchmarks/bench_compile.py); the
# message uses the last compile measured on this machine instead once there is one
DEFAULT_COMPILE_S = 90
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
    """Kernel output for a batch: metric blocks and optional per-request arrays."""

    cluster: np.ndarray  # [C, N_METRICS]
    instances: np.ndarray  # [C, max_instances, N_METRICS] (empty second axis when not requested)
    req_ttft: np.ndarray  # [C, n] ticks, first-token time relative to arrival
    req_e2e: np.ndarray  # [C, n] ticks
    req_itl_sum: np.ndarray  # [C, n] ticks, sum of the request's inter-token latencies
    req_sched: np.ndarray  # [C, n] ticks, last scheduling delay
    req_flags: np.ndarray  # [C, n] kernels.layout.RF_* bits
    req_instance: np.ndarray  # [C, n]
    trace_route: np.ndarray  # [C, n, N_TR] routing decisions (empty unless traced)
    trace_candidates: np.ndarray  # [C, n, k, N_TC] top-k counterfactual candidates


def pack_configs(configs: list[SimConfig], workload_ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Struct-of-arrays rows for the kernel (see kernels.layout)."""
    n = len(configs)
    ci = np.zeros((n, L.N_CFG_INT), dtype=np.int64)
    cf = np.zeros((n, L.N_CFG_FLOAT), dtype=np.float64)
    for k, (cfg, w) in enumerate(zip(configs, workload_ids)):
        ci[k, L.CI_TOTAL_KV_BLOCKS] = cfg.total_kv_blocks
        ci[k, L.CI_BLOCK_SIZE] = cfg.block_size
        ci[k, L.CI_MAX_RUNNING] = cfg.max_running_reqs
        ci[k, L.CI_MAX_SCHED_TOKENS] = cfg.max_scheduled_tokens
        ci[k, L.CI_LONG_PREFILL] = cfg.long_prefill_token_threshold
        ci[k, L.CI_HORIZON] = cfg.horizon
        ci[k, L.CI_SCHEDULER] = int(cfg.scheduler)
        ci[k, L.CI_PRIORITY] = int(cfg.priority_policy)
        ci[k, L.CI_WORKLOAD] = w
        ci[k, L.CI_NUM_INSTANCES] = cfg.num_instances
        ci[k, L.CI_ADMISSION] = int(cfg.admission_policy)
        ci[k, L.CI_ADMISSION_LATENCY] = cfg.admission_latency
        ci[k, L.CI_ROUTING_LATENCY] = cfg.routing_latency
        ci[k, L.CI_ROUTING] = int(cfg.routing_policy)
        ci[k, L.CI_CAPACITY_SCALE] = 1
        ci[k, L.CI_KV_CPU_BLOCKS] = cfg.kv_cpu_blocks
        ci[k, L.CI_KV_TRANSFER_BASE_LATENCY] = cfg.kv_transfer_base_latency
        cf[k, L.CF_ALPHA0:L.CF_ALPHA2 + 1] = cfg.alpha_coeffs[:3]
        cf[k, L.CF_BETA0:L.CF_BETA2 + 1] = cfg.beta_coeffs[:3]
        cf[k, L.CF_BUCKET_CAPACITY] = cfg.token_bucket_capacity
        cf[k, L.CF_BUCKET_REFILL] = cfg.token_bucket_refill_rate
        cf[k, L.CF_CACHE_WEIGHT] = cfg.routing_cache_weight
        cf[k, L.CF_LOAD_WEIGHT] = cfg.routing_load_weight
        cf[k, L.CF_KV_OFFLOAD_THRESHOLD] = cfg.kv_offload_threshold
        cf[k, L.CF_KV_TRANSFER_BANDWIDTH] = cfg.kv_transfer_bandwidth
        rf = cfg.roofline
        if rf is not None:
            ci[k, L.CI_ROOFLINE] = 1
            ci[k, L.CI_TP] = rf.tp
            cf[k, L.CF_NUM_LAYERS] = rf.num_layers
            cf[k, L.CF_HIDDEN] = rf.hidden_dim
            cf[k, L.CF_HEADS] = rf.num_heads
            cf[k, L.CF_KV_HEADS] = rf.num_kv_heads
            cf[k, L.CF_INTERMEDIATE] = rf.intermediate_dim
            cf[k, L.CF_BYTES_PER_PARAM] = rf.bytes_per_param
            cf[k, L.CF_TFLOPS] = rf.tflops_peak
            cf[k, L.CF_BW_TBS] = rf.bw_peak_tbs
            cf[k, L.CF_BW_EFF] = rf.bw_eff_constant
            cf[k, L.CF_T_OVERHEAD] = rf.t_overhead_micros
            cf[k, L.CF_PER_LAYER_OVERHEAD] = rf.per_layer_overhead
            cf[k, L.CF_MFU_PREFILL] = rf.mfu_prefill
            cf[k, L.CF_MFU_DECODE] = rf.mfu_decode
            cf[k, L.CF_ALLREDUCE] = rf.all_reduce_latency
    return ci, cf


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
    ci, cf = pack_configs(configs, workload_ids)
    ci[:, L.CI_TRACE_K] = trace_k
    n_cfg = len(configs)
    max_bs = int(ci[:, L.CI_BLOCK_SIZE].max()) if n_cfg else 1
    pow_table = power_table_nb(max_bs)
    n_req = packed.max_requests if per_request else 0
    n_inst = int(ci[:, L.CI_NUM_INSTANCES].max()) if (per_instance and n_cfg) else 0
    cluster = np.full((n_cfg, L.N_METRICS), np.nan)
    instances = np.full((n_cfg, n_inst, L.N_METRICS), np.nan)
    req = [np.zeros((n_cfg, n_req), dtype=np.int64) for _ in range(6)]
    n_trace = packed.max_requests if trace_k >= 0 else 0
    trace = [np.zeros((n_cfg, n_trace, L.N_TR)), np.full((n_cfg, n_trace, max(trace_k, 0), L.N_TC), np.nan)]
    todo = np.arange(n_cfg)
    for _attempt in range(MAX_CAPACITY_RETRIES):
        sub_ci = ci[todo]
        sub = _run_kernel(sub_ci, cf[todo], packed, pow_table, n_inst, n_req, n_trace, max(trace_k, 0))
        cluster[todo] = sub[0]
        instances[todo] = sub[1]
        for full, part in zip(req + trace, sub[2:]):
            full[todo] = part
        retry = todo[cluster[todo, L.M_STATUS] == L.STATUS_CAPACITY]
        if retry.size == 0:
            break
        ci[retry, L.CI_CAPACITY_SCALE] *= 4
        todo = retry
    else:
        raise RuntimeError("kernel working memory estimate failed repeatedly; this is a bug")
    return BatchResult(cluster, instances, *req, *trace)


def _run_kernel(ci, cf, packed: PackedWorkloads, pow_table, n_inst, n_req, n_trace, trace_k):
    n_cfg = ci.shape[0]
    cluster = np.full((n_cfg, L.N_METRICS), np.nan)
    instances = np.full((n_cfg, n_inst, L.N_METRICS), np.nan)
    req = [np.zeros((n_cfg, n_req), dtype=np.int64) for _ in range(6)]
    trace = [np.zeros((n_cfg, n_trace, L.N_TR)), np.full((n_cfg, n_trace, trace_k, L.N_TC), np.nan)]
    workloads = (packed.start, packed.count, packed.arrival, packed.in_len, packed.out_len, packed.seq_off,
                 packed.prefix_hash, packed.id_rank, pow_table)
    outputs = (cluster, instances, *req, *trace)
    threads = min(numba.get_num_threads(), n_cfg)
    if threads <= 1:
        simulate_batch_nb(ci, cf, *workloads, *outputs)
        return outputs
    # slices of rows on a thread pool (the kernel releases the GIL); several slices per thread
    # so that a thread with cheap configurations takes more of them
    bounds = np.linspace(0, n_cfg, min(n_cfg, 8 * threads) + 1).astype(np.int64)
    pool = _thread_pool(threads)
    jobs = [pool.submit(simulate_batch_nb, ci[a:b], cf[a:b], *workloads, *(x[a:b] for x in outputs))
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
    _warm_up_run()
    seconds = time.perf_counter() - t0
    if cold:
        try:
            (_cache_dir().parent / _LAST_COMPILE_FILE).write_text(f"{seconds:.1f}\n")
        except OSError:
            pass
        if announce:
            print(f"compiled in {seconds:.0f} s; later commands start at once", file=sys.stderr, flush=True)
    return seconds


def _warm_up_run() -> None:
    """Touch every kernel entry point once: trace parsing, prefix hashes, the batch simulation."""
    import tempfile

    from blis_sweep.workloads.traces import read_trace

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "warmup.csv"
        path.write_text('arrived_at,num_prefill_tokens,num_decode_tokens,prefill_tokens,decode_tokens\n'
                        '0,2,2,"[1,2]","[3,4]"\n0.001,2,2,"[1,5]","[6,7]"\n')
        workload = read_trace(path)
    simulate([SimConfig(total_kv_blocks=64, alpha_coeffs=(1.0, 1.0, 1.0), beta_coeffs=(1.0, 1.0, 1.0))],
             [workload], [0], per_request=True, per_instance=True)


# ---------------------------------------------------------------- memory, up front
def config_working_bytes(cfg: SimConfig, workload: Workload) -> int:
    """Upper bound of the kernel's working memory for one configuration (bytes).

    Mirrors the allocations of kernels.engine.simulate_config_nb at capacity scale 1
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
                         cfg.routing_policy == RoutingPolicy.PREFIX_AFFINITY)


def working_bytes(n: int, n_inst: int, block_size: int, total_kv_blocks: int, est_blocks: int, est_steps: int,
                  max_input: int, prefix_affinity: bool) -> int:
    """The kernel's working memory from a workload's sizes (config_working_bytes; also used,
    from sizes estimated before a workload is generated, by blis_sweep.limits)."""
    block_cap = min(total_kv_blocks, est_blocks)
    ht_cap = 16
    while ht_cap < block_cap + block_cap // 4 + 16:
        ht_cap *= 2
    per_instance = (S.N_IS + S.N_IF + S.N_H * (4 * n + 64) + (2 * n + 16) + (n + 1)
                    + (S.N_B + 2) * block_cap + 2 * ht_cap + 1 + (max_input // block_size + 1))
    per_request = S.N_R + 2 + S.N_K * 2 + 2 + 9  # rq, prio, chash; cluster heap, arrival order; end-of-run
    affinity = 16
    if prefix_affinity:
        while affinity < 2 * n + 16:
            affinity *= 2
    words = (n_inst * per_instance + max(n, 1) * per_request + 2 * est_blocks
             + S.N_SL * (est_steps + n + 16) + 3 * est_steps + 2 * affinity + 2 * (max_input // block_size + 1) + 64)
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
    outputs = n_cfg * L.N_METRICS * (1 + (n_inst if per_instance else 0))
    outputs += n_cfg * n_req * (6 if per_request else 0)
    if trace_k >= 0:
        outputs += n_cfg * n_req * (L.N_TR + max(trace_k, 0) * L.N_TC)
    working = sorted((config_working_bytes(c, workloads[w]) for c, w in zip(configs, workload_ids)), reverse=True)
    return 8 * outputs * 2 + sum(working[:numba.get_num_threads()])  # outputs: the kernel's and the merged copy
