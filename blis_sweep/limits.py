"""Allowed ranges of integer parameters, and the up-front memory check.

Every integer a user can give to `run` (a flag) or to `grid` (a sweep-file key) has a
documented range (README, "Parameter ranges"), checked before anything is generated,
simulated or written. The bounds are far beyond any real deployment; they exist so that
absurd values (1e20 blocks, a million instances) end in one clear line instead of an
overflow or an out-of-memory crash deep inside the engine.

Memory: `kernel_bytes` estimates what one simulated configuration needs (workload arrays,
the kernel's working arrays as it sizes them, per-request outputs). A run or grid whose
estimate exceeds the machine's physical memory (or BLIS_SWEEP_MEMORY_LIMIT, in bytes) is
refused before it starts.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from blis_sweep.errors import BlisError

INT64_MAX = 2**63 - 1
INT32_MAX = 2**31 - 1
MAX_TOKENS = 10_000_000  # longest prompt / output / shared prefix of one request
MAX_LATENCY_US = 10**12  # about 11.6 days of simulated time
MAX_KV_BLOCKS = 2**48
MAX_INSTANCES = 10_000
MAX_REQUESTS = 100_000_000
MEMORY_LIMIT_ENV = "BLIS_SWEEP_MEMORY_LIMIT"
DEFAULT_MAX_CONFIGS = 1_000_000  # `grid` refuses larger grids unless --max-configs allows them


@dataclass(frozen=True)
class IntRange:
    lo: int
    hi: int
    meaning: str

    def allowed(self) -> str:
        return f"an integer in [{self.lo}, {self.hi}]"

    def contains(self, value: int) -> bool:
        return self.lo <= value <= self.hi


def _r(lo: int, hi: int, meaning: str) -> IntRange:
    return IntRange(lo, hi, meaning)


# Sweep-file key -> range. `run` flags use the same table through RUN_FLAG_KEYS.
INT_RANGES: dict[str, IntRange] = {
    "tp": _r(1, 1024, "tensor parallelism"),
    "total_kv_blocks": _r(1, MAX_KV_BLOCKS, "KV blocks per instance"),
    "block_size": _r(1, 65536, "tokens per KV block"),
    "max_num_running_reqs": _r(1, INT32_MAX, "requests in a batch"),
    "max_num_scheduled_tokens": _r(1, INT32_MAX, "new tokens per step"),
    "long_prefill_token_threshold": _r(0, INT32_MAX, "chunk prefills longer than this (0: off)"),
    "horizon": _r(1, INT64_MAX, "simulated time limit, µs"),
    "seed": _r(0, INT64_MAX, "workload seed (sweeps)"),
    "num_requests": _r(1, MAX_REQUESTS, "requests of a generated workload"),
    "num_instances": _r(1, MAX_INSTANCES, "instances in the cluster"),
    "admission_latency": _r(0, MAX_LATENCY_US, "µs"),
    "routing_latency": _r(0, MAX_LATENCY_US, "µs"),
    "kv_cpu_blocks": _r(0, MAX_KV_BLOCKS, "CPU-tier KV blocks"),
    "kv_transfer_base_latency": _r(0, MAX_LATENCY_US, "µs"),
    "counterfactual_k": _r(0, MAX_INSTANCES, "candidates recorded per routing decision"),
    "chunk_size": _r(1, 1_000_000, "configurations per result chunk"),
    "replicates": _r(1, 1_000_000, "seeds per point"),
    **{name: _r(0, MAX_TOKENS, "tokens") for name in (
        "prefix_tokens", "prompt_tokens", "prompt_tokens_stdev", "prompt_tokens_min", "prompt_tokens_max",
        "output_tokens", "output_tokens_stdev", "output_tokens_min", "output_tokens_max")},
}

# `run` flag (reference name) -> INT_RANGES key. --seed keeps Go's full int64 range and
# --max-model-len is accepted but unused, as in the reference.
RUN_FLAG_KEYS = {
    "tp": "tp", "total_kv_blocks": "total_kv_blocks", "block_size_in_tokens": "block_size",
    "max_num_running_reqs": "max_num_running_reqs", "max_num_scheduled_tokens": "max_num_scheduled_tokens",
    "long_prefill_token_threshold": "long_prefill_token_threshold", "horizon": "horizon",
    "max_prompts": "num_requests", "num_instances": "num_instances", "admission_latency": "admission_latency",
    "routing_latency": "routing_latency", "kv_cpu_blocks": "kv_cpu_blocks", "counterfactual_k": "counterfactual_k",
    **{name: name for name in (
        "prefix_tokens", "prompt_tokens", "prompt_tokens_stdev", "prompt_tokens_min", "prompt_tokens_max",
        "output_tokens", "output_tokens_stdev", "output_tokens_min", "output_tokens_max")},
}


def range_problem(key: str, value) -> str | None:
    """Why `value` is not allowed for `key` (None if it is). Keys without a range pass."""
    rng = INT_RANGES.get(key)
    if rng is None or isinstance(value, bool) or not isinstance(value, int):
        return None
    if rng.contains(value):
        return None
    return f"must be {rng.allowed()} ({rng.meaning}), got {value}"


def check_run_flag_ranges(flags) -> None:
    """Every integer `run` flag within its range. --tp 0 (the default) means "the model's
    default TP from defaults.yaml", as in the reference."""
    for attr, key in RUN_FLAG_KEYS.items():
        value = getattr(flags, attr)
        if attr == "tp" and value == 0:
            continue
        problem = range_problem(key, value)
        if problem:
            raise BlisError(f"--{attr.replace('_', '-')} {problem}")


# ---------------------------------------------------------------- memory

def machine_memory_bytes() -> int:
    """Physical memory, or the BLIS_SWEEP_MEMORY_LIMIT override (bytes)."""
    override = os.environ.get(MEMORY_LIMIT_ENV)
    if override:
        try:
            value = int(float(override))
        except ValueError:
            raise BlisError(f"{MEMORY_LIMIT_ENV} must be a number of bytes, got {override!r}") from None
        if value <= 0:
            raise BlisError(f"{MEMORY_LIMIT_ENV} must be > 0 bytes, got {override!r}")
        return value
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 62  # unknown: do not refuse


@dataclass(frozen=True)
class WorkloadSize:
    """What memory depends on: requests, their total and longest lengths (tokens)."""

    num_requests: int
    input_tokens: int  # sum over requests
    output_tokens: int
    max_input: int

    @staticmethod
    def of(workload) -> "WorkloadSize":
        """The size of a built Workload (blis_sweep.workloads.arrays)."""
        n = workload.num_requests
        return WorkloadSize(n, int(workload.input_len.sum()), int(workload.output_len.sum()),
                            int(workload.input_len.max()) if n else 0)


def expected_size(num_requests: int, lengths: dict) -> WorkloadSize:
    """Size of a generated workload before generating it: lengths at mean + stdev (within the
    clamp), the longest prompt at its maximum. `lengths` holds the distribution fields."""
    def typical(kind: str) -> int:
        return min(lengths[f"{kind}_tokens_max"], lengths[f"{kind}_tokens"] + lengths[f"{kind}_tokens_stdev"])

    prompt = lengths["prefix_tokens"] + typical("prompt")
    return WorkloadSize(num_requests, num_requests * prompt, num_requests * typical("output"),
                        lengths["prefix_tokens"] + lengths["prompt_tokens_max"])


def kernel_bytes(w: WorkloadSize, num_instances: int, block_size: int, total_kv_blocks: int,
                 trace_k: int = -1, generated: bool = True) -> int:
    """Bytes one configuration needs at once: the workload (and its generation), the kernel's
    working arrays as it sizes them at first try (blis_sweep.engine.working_bytes, from
    sizes rather than a built workload), and the per-request outputs.

    An estimate, not an exact count; it is meant to refuse the absurd, not the tight.
    """
    from blis_sweep.engine import working_bytes

    n, t_in, t_out = w.num_requests, w.input_tokens, w.output_tokens
    tokens = t_in + t_out
    bs = max(block_size, 1)
    workload = 8 * (tokens + n + 1) + 8 * 6 * n + (8 * 3 * tokens + 160 * n if generated else 0)
    est_blocks = 2 * (t_in // bs + n) + t_out // bs + n + 4 * n
    working = working_bytes(n, num_instances, bs, total_kv_blocks, est_blocks, t_out + 2 * n, w.max_input,
                            prefix_affinity=True)
    outputs = 6 * n
    if trace_k >= 0:
        outputs += n * (2 + 6 * trace_k)
    return workload + working + 8 * outputs


def check_memory(need_bytes: int, what: str) -> None:
    """Refuse work whose estimated memory exceeds the machine's (or the user's limit)."""
    have = machine_memory_bytes()
    if need_bytes <= have:
        return
    if os.environ.get(MEMORY_LIMIT_ENV):
        limit = f"the limit {MEMORY_LIMIT_ENV}={os.environ[MEMORY_LIMIT_ENV]} ({_size(have)})"
    else:
        limit = f"this machine's memory ({_size(have)}; {MEMORY_LIMIT_ENV}=BYTES sets another limit)"
    raise BlisError(f"{what} needs about {_size(need_bytes)} of memory, more than {limit}: use fewer requests, "
                    f"shorter requests or fewer instances")


def _size(n: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):,.1f} {unit}"
    return f"{n} bytes"
