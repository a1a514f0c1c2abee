"""A slow, deliberately literal pure-Python model of the BLIS reference simulator.

This module is a *test oracle*: it is written for readability and exactness, not
speed, and it is independent of the project's fast engine (``kernels/`` and
``blis_sweep``).  It models what the reference's ``run`` command does with a
trace: a cluster of ``num_instances`` identical serving instances (one by
default) behind the control plane (admission policy and latency, routing policy
and latency; :class:`OracleCluster`), each with a GPU KV cache and optionally a
CPU tier (:class:`OracleCPUTier`), and blackbox or roofline step times.

The reference is BLIS at commit d25e1935 plus four fixes (see
the project README and the reference at commit d25e1935):

1. a request whose final-token KV allocation fails still completes;
2. the prefix key of a freshly filled block covers the input tokens up to the
   block's *absolute* end (chunk start + offset inside the chunk);
3. appending into a partially filled last block advances the chunk cursor by the
   number of tokens actually appended, starting at the cursor;
4. preempting with an empty running batch reports "cannot schedule".

Everything else, including behaviour that looks accidental, is reproduced as
the reference has it; the docstrings of the methods below point out each quirk.

Prefix-cache identity: the reference keys cached blocks by a SHA-256 of the
token prefix.  Here the key is the token prefix itself (a tuple of ints), so
two keys are equal exactly when the token sequences are equal -- the same
relation as the reference's, without any possibility of collision.

Where the reference itself is undefined (it panics, or slices a Go array past
its length so the outcome depends on slice capacity) the oracle raises
:class:`UndefinedReferenceBehaviour` instead of guessing:

* ``block_size == 1`` once a decode token opens a new block (the fresh-block
  key would be ``input[: start + 1]`` with ``start >= len(input)``);
* a request with an empty input and fewer than two output tokens;
* percentiles over an empty TTFT list (only reachable with empty inputs).

The reference's priority-inversion counter sorts with an unstable sort over a
Go map, so with equal arrival times its count is not deterministic; the oracle
breaks arrival ties by request index.

Besides the parity cases (tests/test_oracle_parity.py), this oracle was checked
against the reference itself (d25e1935 plus the four fixes, built locally) on
about 20,000 random small configurations (tiny KV caches, shared prefixes,
same-tick arrivals, zero-output and empty-input requests, every scheduler and
priority policy, roofline and blackbox step times, horizons): per-request
TTFT/E2E/ITL/scheduling delay and all aggregate counters agreed exactly.
The cluster, admission, routing and CPU-tier model matches the recorded cluster
cases (tests/test_oracle_cluster.py) and, on configurations that keep clear of the
four fixes, a local build of plain d25e1935
(tests/check_oracle_against_reference_build.py).

Public entry point: :func:`run_oracle`.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

INT64_MAX = 2**63 - 1

SCHEDULERS = ("fcfs", "priority-fcfs", "sjf", "reverse-priority")
PRIORITY_POLICIES = ("constant", "slo-based", "inverted-slo")
ADMISSION_POLICIES = ("always-admit", "token-bucket", "reject-all")
ROUTING_POLICIES = ("round-robin", "least-loaded", "weighted", "prefix-affinity", "always-busiest")


class UndefinedReferenceBehaviour(RuntimeError):
    """Raised where the reference would panic or read memory past a slice end."""


# --------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class RooflineParams:
    """Model shape, GPU calibration and tensor parallelism for the roofline step time."""

    num_layers: int
    hidden_dim: int
    num_heads: int
    num_kv_heads: int
    intermediate_dim: int
    bytes_per_param: float
    tflops_peak: float
    bw_peak_tbs: float
    bw_eff_constant: float
    t_overhead_micros: float
    per_layer_overhead: float
    mfu_prefill: float
    mfu_decode: float
    all_reduce_latency: float
    tp: int


@dataclass(frozen=True)
class OracleConfig:
    total_kv_blocks: int
    block_size: int = 16
    max_running_reqs: int = 256
    max_scheduled_tokens: int = 2048
    long_prefill_token_threshold: int = 0
    horizon: int = INT64_MAX
    alpha: tuple[float, float, float] = (0.0, 0.0, 0.0)
    beta: tuple[float, float, float] = (0.0, 0.0, 0.0)
    scheduler: str = "fcfs"
    priority_policy: str = "constant"
    # When set, the step time comes from the roofline model and ``beta`` is unused.
    roofline: RooflineParams | None = None
    # The cluster: identical instances behind admission and routing (the reference's defaults).
    num_instances: int = 1
    admission_policy: str = "always-admit"
    admission_latency: int = 0
    routing_latency: int = 0
    token_bucket_capacity: float = 10000.0
    token_bucket_refill_rate: float = 1000.0
    routing_policy: str = "round-robin"
    routing_cache_weight: float = 0.6
    routing_load_weight: float = 0.4
    # Tiered KV: a CPU tier of this many blocks when > 0.
    kv_cpu_blocks: int = 0
    kv_offload_threshold: float = 0.9
    kv_transfer_bandwidth: float = 100.0
    kv_transfer_base_latency: int = 0

    def __post_init__(self) -> None:
        if self.total_kv_blocks <= 0:
            raise ValueError("total_kv_blocks must be > 0")
        if self.block_size <= 0:
            raise ValueError("block_size must be > 0")
        if self.scheduler not in SCHEDULERS:
            raise ValueError(f"unknown scheduler {self.scheduler!r}")
        if self.priority_policy not in PRIORITY_POLICIES:
            raise ValueError(f"unknown priority policy {self.priority_policy!r}")
        if self.num_instances < 1:
            raise ValueError("num_instances must be >= 1")
        if self.admission_policy not in ADMISSION_POLICIES:
            raise ValueError(f"unknown admission policy {self.admission_policy!r}")
        if self.routing_policy not in ROUTING_POLICIES:
            raise ValueError(f"unknown routing policy {self.routing_policy!r}")
        if self.routing_policy == "weighted" and not self.routing_cache_weight + self.routing_load_weight > 0:
            raise ValueError("weighted routing needs a positive weight sum")  # the reference panics
        if self.kv_cpu_blocks > 0 and not self.kv_transfer_bandwidth > 0:
            raise ValueError("a CPU tier needs kv_transfer_bandwidth > 0")  # the reference panics


# --------------------------------------------------------------------------
# Requests
# --------------------------------------------------------------------------


class _Req:
    __slots__ = (
        "index", "rid", "arrival", "inp", "out", "progress", "num_new",
        "itl", "first_token_time", "priority",
    )

    def __init__(self, index: int, arrival: int, inp: tuple, out: tuple) -> None:
        self.index = index
        self.rid = f"request_{index}"  # ties on id compare these strings
        self.arrival = arrival
        self.inp = inp
        self.out = out
        self.progress = 0  # ProgressIndex
        self.num_new = 0  # NumNewTokens (stale between schedulings; roofline reads it)
        self.itl: list[int] = []
        self.first_token_time = 0
        self.priority = 0.0


# --------------------------------------------------------------------------
# KV cache
# --------------------------------------------------------------------------


class _Block:
    __slots__ = ("bid", "refs", "in_use", "key", "tokens", "prev", "next")

    def __init__(self, bid: int) -> None:
        self.bid = bid
        self.refs = 0
        self.in_use = False
        self.key: tuple | None = None  # the full token prefix this block is cached under
        self.tokens: list[int] = []
        self.prev: _Block | None = None  # LRU free list links
        self.next: _Block | None = None


class OracleKVCache:
    """Single-tier KV block store with prefix caching and an LRU free list."""

    def __init__(self, total: int, block_size: int) -> None:
        self.total = total
        self.bs = block_size
        self.blocks = [_Block(i) for i in range(total)]
        self.owned: dict[int, list[int]] = {}  # request index -> block ids (RequestMap)
        self.by_key: dict[tuple, int] = {}  # prefix -> block id (HashToBlock)
        self.head: _Block | None = None
        self.tail: _Block | None = None
        self.used = 0
        self.hits = 0
        self.misses = 0
        self.cpu: OracleCPUTier | None = None  # set by OracleCPUTier
        for blk in self.blocks:
            self._free_append(blk)

    # -- free list ---------------------------------------------------------
    def _free_append(self, blk: _Block) -> None:
        blk.next = None
        blk.prev = self.tail
        if self.tail is None:
            self.head = blk
        else:
            self.tail.next = blk
        self.tail = blk

    def _free_remove(self, blk: _Block) -> None:
        if blk.prev is None:
            self.head = blk.next
        else:
            blk.prev.next = blk.next
        if blk.next is None:
            self.tail = blk.prev
        else:
            blk.next.prev = blk.prev
        blk.prev = blk.next = None

    def _pop_free(self) -> _Block | None:
        """Take the LRU head.  Its cached key is dropped from the key map *by key*,
        even when the key now maps to a different block (the reference does that)."""
        blk = self.head
        if blk is None:
            return None
        self._free_remove(blk)
        if blk.key is not None:
            self.by_key.pop(blk.key, None)
            blk.key = None
        blk.tokens = []
        return blk

    def free_count(self) -> int:
        return self.total - self.used

    # -- lookups -----------------------------------------------------------
    def cached_blocks(self, inp: tuple) -> list[int]:
        """Longest run of cached full-block prefixes; counts a hit per matched
        block on every call (also when the caller then fails to allocate)."""
        found = []
        for k in range(1, len(inp) // self.bs + 1):
            bid = self.by_key.get(inp[: k * self.bs])
            if bid is None:
                break
            self.hits += 1
            found.append(bid)
        return found

    # -- allocation ------------------------------------------------------------
    def allocate(self, req: _Req, start: int, end: int, cached: Sequence[int]) -> bool:
        """Allocate on the GPU tier; with a CPU tier, a failure first reloads offloaded blocks
        (:meth:`OracleCPUTier.reload`) and tries once more."""
        if self.allocate_gpu(req, start, end, cached):
            return True
        if self.cpu is None:
            return False
        return self.cpu.retry_after_reload(req, start, end, cached)

    def allocate_gpu(self, req: _Req, start: int, end: int, cached: Sequence[int]) -> bool:
        """AllocateKVBlocks, quirks included:

        * prefill vs decode is decided by ``req.progress < len(input)``, not by
          ``start``; in decode the only new token is ``output[start - len(input)]``
          and ``end`` is ignored;
        * the free-block check (prefill only) happens before cached blocks are
          claimed, so popping can still fail part-way; nothing is rolled back;
        * cached blocks are attached only when the request owns no blocks yet,
          and only inside the loop (an empty token range attaches nothing);
        * a partially filled last block is topped up first (fix 3); when it
          fills, its key is the concatenation of all the request's block tokens;
        * otherwise ``ceil(len(new)/bs)`` blocks are popped even when the top-up
          already consumed some tokens, so trailing blocks may stay empty; an
          empty last block is never topped up later;
        * a freshly popped block that is full is keyed by
          ``input[: start + offset_end]`` (fix 2).
        """
        bs = self.bs
        n_in = len(req.inp)
        if req.progress < n_in:
            new = req.inp[start:end]
            n_blocks = (len(new) + bs - 1) // bs
            if n_blocks > self.free_count():
                return False
        else:
            idx = start - n_in
            if not 0 <= idx < len(req.out):
                raise UndefinedReferenceBehaviour("decode token index out of range")
            new = (req.out[idx],)
            n_blocks = 1

        cursor = 0
        while cursor < len(new):
            ids = self.owned.get(req.index)
            latest: _Block | None = None
            if ids is not None:
                latest = self.blocks[ids[-1]]
            else:
                for bid in cached:
                    blk = self.blocks[bid]
                    blk.refs += 1
                    if not blk.in_use:
                        blk.in_use = True
                        self.used += 1
                        self._free_remove(blk)
                    self.owned.setdefault(req.index, []).append(bid)

            if latest is not None and 0 < len(latest.tokens) < bs:
                room = bs - len(latest.tokens)
                chunk = new[cursor: min(cursor + room, len(new))]
                latest.tokens.extend(chunk)
                cursor += len(chunk)
                if len(latest.tokens) == bs:
                    flat: list[int] = []
                    for bid in ids:  # type: ignore[union-attr]
                        flat.extend(self.blocks[bid].tokens)
                    key = tuple(flat)
                    latest.key = key
                    self.by_key[key] = latest.bid
            else:
                for _ in range(n_blocks):
                    blk = self._pop_free()
                    if blk is None:
                        return False
                    lo = cursor
                    hi = min(cursor + bs, len(new))
                    blk.tokens = list(new[lo:hi])
                    blk.refs = 1
                    blk.in_use = True
                    self.used += 1
                    self.misses += 1
                    if len(blk.tokens) == bs:
                        abs_end = start + hi
                        if abs_end > n_in:
                            # Go would slice the input past its length (cap-dependent).
                            raise UndefinedReferenceBehaviour(
                                "full fresh block in decode (block_size 1 or empty input)")
                        key = req.inp[:abs_end]
                        blk.key = key
                        self.by_key[key] = blk.bid
                    self.owned.setdefault(req.index, []).append(blk.bid)
                    cursor = hi
        return True

    def release(self, req: _Req) -> None:
        """Drop the request's blocks; those reaching zero references go to the free
        list tail in reverse order of the request's block list. With a CPU tier, a
        release above the offload threshold then offloads cached free blocks."""
        ids = self.owned.pop(req.index, [])
        for bid in reversed(ids):
            blk = self.blocks[bid]
            blk.refs -= 1
            if blk.refs == 0:
                blk.in_use = False
                self.used -= 1
                self._free_append(blk)
        if self.cpu is not None:
            self.cpu.offload()

    def hit_rate(self) -> float:
        """Cumulative hits / lookups, counting the CPU tier's reloads and failed reloads."""
        hits, misses = self.hits, self.misses
        if self.cpu is not None:
            hits += self.cpu.hits
            misses += self.cpu.misses
        return 0.0 if hits + misses == 0 else float(hits) / float(hits + misses)

    # -- inspection --------------------------------------------------------------
    def free_list_ids(self) -> list[int]:
        out = []
        seen = set()
        blk = self.head
        prev = None
        while blk is not None:
            if blk.bid in seen:
                raise AssertionError("free list has a cycle")
            if blk.prev is not prev:
                raise AssertionError("free list back-link broken")
            seen.add(blk.bid)
            out.append(blk.bid)
            prev = blk
            blk = blk.next
        if self.tail is not prev:
            raise AssertionError("free list tail mismatch")
        return out

    def snapshot(self) -> dict[str, Any]:
        free_ids = self.free_list_ids()
        return {
            "total_blocks": self.total,
            "used_blocks": self.used,
            "free_list": free_ids,
            "free_list_len": len(free_ids),
            "cache_hits": self.hits,
            "cache_misses": self.misses,
            "owned": {k: list(v) for k, v in self.owned.items()},
            "num_cached_keys": len(self.by_key),
            "in_use_blocks": sum(1 for b in self.blocks if b.in_use),
            "refs": [b.refs for b in self.blocks],
        }


class OracleCPUTier:
    """The reference's CPU tier beside a GPU cache (TieredKVCache), quirks included:

    * offloading happens after every release while GPU use / total exceeds the
      threshold and the tier has room: the first *cached* free block (walking the
      free list from its head) is copied out, its key deleted from the key map (by
      key), and the emptied block moved to the free-list tail; the tier is keyed by
      GPU block id, so re-offloading a block id overwrites its entry but still counts
      one more block used;
    * a failed GPU allocation reloads every offloaded block whose key is not on the
      GPU, in block-id order: each takes the free-list head (evicting its key), gets
      the content and key back, stays free and goes to the tail; each costs
      ``base + ceil(block_size / bandwidth)`` ticks, added to the instance's next
      step time; a reload within 1000 ticks of the offload counts as thrashing;
    * after a reload the cached prefix is looked up again (hits counted again); if
      it now reaches past ``start`` the allocation is retried from there with the
      new cached blocks, otherwise with the original arguments; a failed allocation
      with nothing to reload counts one CPU miss.
    """

    def __init__(self, gpu: OracleKVCache, capacity: int, threshold: float, bandwidth: float,
                 base_latency: int) -> None:
        self.gpu = gpu
        gpu.cpu = self
        self.capacity = capacity
        self.threshold = threshold
        self.bandwidth = bandwidth
        self.base_latency = base_latency
        self.stored: dict[int, tuple[list[int], tuple, int]] = {}  # GPU block id -> (tokens, key, offload time)
        self.used = 0
        self.clock = 0  # the instance's last step start
        self.pending_latency = 0
        self.offloads = 0
        self.hits = 0
        self.misses = 0
        self.thrashing = 0

    def take_pending_latency(self) -> int:
        lat = self.pending_latency
        self.pending_latency = 0
        return lat

    def offload(self) -> None:
        gpu = self.gpu
        while gpu.total > 0:
            if float(gpu.used) / float(gpu.total) <= self.threshold:
                break
            if self.used >= self.capacity:
                break
            blk = gpu.head
            while blk is not None and blk.key is None:
                blk = blk.next
            if blk is None:
                break
            self.stored[blk.bid] = (list(blk.tokens), blk.key, self.clock)
            self.used += 1
            self.offloads += 1
            gpu._free_remove(blk)
            gpu.by_key.pop(blk.key, None)
            blk.key = None
            blk.tokens = []
            gpu._free_append(blk)

    def reload(self) -> bool:
        gpu = self.gpu
        reloaded = False
        for bid in sorted(self.stored):
            tokens, key, offload_time = self.stored[bid]
            if key in gpu.by_key:
                continue
            blk = gpu._pop_free()
            if blk is None:
                break
            blk.tokens = list(tokens)
            blk.key = key
            blk.refs = 0
            blk.in_use = False
            gpu.by_key[key] = blk.bid
            gpu._free_append(blk)
            self.pending_latency += self.base_latency + int(math.ceil(float(gpu.bs) / self.bandwidth))
            if self.clock - offload_time < 1000:
                self.thrashing += 1
            del self.stored[bid]
            self.used -= 1
            self.hits += 1
            reloaded = True
        return reloaded

    def retry_after_reload(self, req: _Req, start: int, end: int, cached: Sequence[int]) -> bool:
        gpu = self.gpu
        if not self.reload():
            self.misses += 1
            return False
        new_cached = gpu.cached_blocks(req.inp)
        new_start = len(new_cached) * gpu.bs
        if new_start > start:
            if new_start > end and req.progress < len(req.inp):
                # Go slices the input [new_start:end] and panics
                raise UndefinedReferenceBehaviour("reloaded prefix reaches past the chunk end")
            return gpu.allocate_gpu(req, new_start, end, new_cached)
        return gpu.allocate_gpu(req, start, end, cached)

    def thrashing_rate(self) -> float:
        return 0.0 if self.offloads == 0 else float(self.thrashing) / float(self.offloads)


# --------------------------------------------------------------------------
# The instance event queue: Go container/heap on timestamp only
# --------------------------------------------------------------------------


class _Ev:
    __slots__ = ("time", "kind", "req")

    def __init__(self, time: int, kind: str, req: _Req | None = None) -> None:
        self.time = time
        self.kind = kind  # arrival | queued | step | scheduled | preempted | left
        self.req = req


class GoHeap:
    """Binary min-heap with Go's container/heap push/pop and a strict ``<`` on
    ``time`` only, so equal timestamps resolve by heap position."""

    def __init__(self) -> None:
        self.a: list[_Ev] = []

    def __len__(self) -> int:
        return len(self.a)

    def peek_time(self) -> int:
        return self.a[0].time

    def push(self, ev: _Ev) -> None:
        a = self.a
        a.append(ev)
        j = len(a) - 1
        while j > 0:
            i = (j - 1) // 2
            if not a[j].time < a[i].time:
                break
            a[i], a[j] = a[j], a[i]
            j = i

    def pop(self) -> _Ev:
        a = self.a
        n = len(a) - 1
        a[0], a[n] = a[n], a[0]
        i = 0
        while True:
            j = 2 * i + 1
            if j >= n:
                break
            if j + 1 < n and a[j + 1].time < a[j].time:
                j += 1
            if not a[j].time < a[i].time:
                break
            a[i], a[j] = a[j], a[i]
            i = j
        return a.pop()


# --------------------------------------------------------------------------
# Step time models
# --------------------------------------------------------------------------


def _go_round(x: float) -> int:
    """math.Round: half away from zero."""
    if x < 0:
        return -_go_round(-x)
    f = math.floor(x)
    return int(f + 1 if x - f >= 0.5 else f)


def _rf_flops(p: RooflineParams, seq_len: int, new_tokens: int) -> tuple[float, float]:
    """(gemm flops, vector flops) of one request's step, reference operation order."""
    d = float(p.hidden_dim)
    n_layers = float(p.num_layers)
    heads = float(p.num_heads)
    kv_heads = float(p.num_kv_heads)
    if kv_heads == 0:
        kv_heads = heads
    d_head = d / heads
    d_ff = 4.0 * d
    if p.intermediate_dim > 0:
        d_ff = float(p.intermediate_dim)
    seq = float(seq_len)
    nt = float(new_tokens)
    d_kv = kv_heads * d_head
    qkv = 2 * nt * (d * d + 2 * d * d_kv)
    proj = 2 * nt * d * d
    gemm = (qkv + proj) * n_layers
    ctx = seq
    if nt > 1:
        ctx = seq + (nt - 1) / 2.0
    attn = 4 * heads * nt * ctx * d_head
    rope = 2 * nt * d
    vector = (5 * heads * nt * ctx) + rope
    gemm += attn * n_layers
    sram = vector * n_layers
    gemm += 2 * nt * (3 * d * d_ff) * n_layers
    return gemm, sram


def _rf_bytes(p: RooflineParams, seq_len: int, new_tokens: int, with_kv: bool) -> tuple[float, float]:
    """(weight bytes, total bytes).  The reference sums a Go map in random order;
    we use insertion order (weights, kv growth, kv access, activations)."""
    d = float(p.hidden_dim)
    n_layers = float(p.num_layers)
    heads = float(p.num_heads)
    kv_heads = float(p.num_kv_heads)
    if kv_heads == 0:
        kv_heads = heads
    d_head = d / heads
    seq = float(seq_len)
    nt = float(new_tokens)
    d_ff = 4.0 * d
    if p.intermediate_dim > 0:
        d_ff = float(p.intermediate_dim)
    bpp = p.bytes_per_param
    d_kv = kv_heads * d_head
    per_layer = d * (d + 2 * d_kv) + (d * d) + (3 * d * d_ff)
    weights = per_layer * n_layers * bpp
    parts = [weights]
    if with_kv:
        kv_write = 2 * n_layers * kv_heads * d_head * bpp
        parts.append(kv_write * nt)
        kv_read = 2 * n_layers * kv_heads * d_head * bpp
        parts.append(kv_read * seq)
    parts.append(n_layers * d * bpp * nt)
    total = 0.0
    for v in parts:
        total += v
    return weights, total


def roofline_step_time(p: RooflineParams, prefill: list[tuple[int, int]], decode: list[int]) -> int:
    """prefill: (progress, new tokens) pairs; decode: progress values."""
    tpf = float(p.tp)
    peak = p.tflops_peak * 1e12
    bw = p.bw_peak_tbs * 1e12
    eff_bw = bw * p.bw_eff_constant
    vec_peak = peak * 0.10
    pc = pm = dc = dm = 0.0
    if prefill:
        g = v = dyn = 0.0
        for prog, nt in prefill:
            fg, fs = _rf_flops(p, prog, nt)
            g += fg / tpf
            v += fs / tpf
            w, tot = _rf_bytes(p, prog, nt, True)
            dyn += (tot - w) / tpf
        w0, _ = _rf_bytes(p, 0, 0, False)
        pw = w0 / tpf
        pc = (g / (peak * p.mfu_prefill)) + (v / vec_peak)
        pm = (pw + dyn) / eff_bw
    if decode:
        g = v = dyn = 0.0
        for prog in decode:
            fg, fs = _rf_flops(p, prog, 1)
            g += fg / tpf
            v += fs / tpf
            w, tot = _rf_bytes(p, prog, 1, True)
            dyn += (tot - w) / tpf
        w0, _ = _rf_bytes(p, 0, 0, False)
        dw = w0 / tpf
        dc = (g / (peak * p.mfu_decode)) + (v / vec_peak)
        dm = (dw + dyn) / eff_bw
    hw = max(pc, pm) + max(dc, dm)
    layer_floor = (float(p.num_layers) * p.per_layer_overhead) / 1e6
    comm = 0.0
    if p.tp > 1:
        comm = (float(p.num_layers) * 2 * p.all_reduce_latency) / 1e6
    total = (hw * 1e6) + (layer_floor * 1e6) + (comm * 1e6) + p.t_overhead_micros
    return _go_round(total)


# --------------------------------------------------------------------------
# The instance
# --------------------------------------------------------------------------


class OracleInstance:
    def __init__(self, cfg: OracleConfig) -> None:
        self.cfg = cfg
        self.kv = OracleKVCache(cfg.total_kv_blocks, cfg.block_size)
        if cfg.kv_cpu_blocks > 0:
            OracleCPUTier(self.kv, cfg.kv_cpu_blocks, cfg.kv_offload_threshold, cfg.kv_transfer_bandwidth,
                          cfg.kv_transfer_base_latency)
        self.events = GoHeap()
        self.clock = 0
        self.waitq: list[_Req] = []
        self.running: list[_Req] = []
        self.step_pending = False  # the reference's stepEvent != nil
        self.computed: dict[int, int] = {}  # reqNumComputedTokens
        self.preempted_this_step = False
        self.step_count = 0
        # features of the current step
        self.miss_tokens = 0
        self.decode_tokens = 0
        # metrics
        self.completed = 0
        self.total_input_tokens = 0
        self.total_output_tokens = 0
        self.preemptions = 0
        self.peak_kv = 0
        self.kv_integral = 0.0
        self.ttft: dict[int, int] = {}
        self.e2e: dict[int, int] = {}
        self.req_itl: dict[int, float] = {}
        self.sched_delay: dict[int, int] = {}
        self.completion_time: dict[int, int] = {}
        self.all_itls: list[int] = []
        self.injected: list[_Req] = []

    # -- helpers -----------------------------------------------------------------
    def push(self, time: int, kind: str, req: _Req | None = None) -> None:
        self.events.push(_Ev(time, kind, req))

    def queueing_delay(self, req: _Req) -> int:
        a = self.cfg.alpha
        total = 0.0
        total += a[0]
        total += a[1] * float(len(req.inp))
        return int(total)

    def output_time(self) -> int:
        return int(self.cfg.alpha[2])

    def blackbox_step_time(self) -> int:
        b = self.cfg.beta
        total = 0.0
        total += b[0]
        total += b[1] * float(self.miss_tokens)
        total += b[2] * float(self.decode_tokens)
        return int(total)

    def step_time(self) -> int:
        if self.cfg.roofline is None:
            return self.blackbox_step_time()
        prefill = []
        decode = []
        for r in self.running:
            if r.progress < len(r.inp):
                prefill.append((r.progress, r.num_new))  # num_new may be stale
            else:
                decode.append(r.progress)
        return roofline_step_time(self.cfg.roofline, prefill, decode)

    # -- events --------------------------------------------------------------------
    def inject(self, req: _Req, time: int) -> None:
        self.injected.append(req)
        self.push(time, "arrival", req)

    def process_next(self) -> None:
        ev = self.events.pop()
        self.clock = ev.time
        if ev.kind == "arrival":
            self.push(ev.time + self.queueing_delay(ev.req), "queued", ev.req)
        elif ev.kind == "queued":
            self.waitq.append(ev.req)
            self.total_input_tokens += len(ev.req.inp)
            if not self.step_pending:
                # NB: does not mark a step as pending, so several queued events
                # before the step runs each schedule their own step.
                self.push(ev.time, "step")
        elif ev.kind == "step":
            self.step(ev.time)
        # scheduled / preempted / left: no-ops (they only occupy heap slots and
        # advance the clock)

    # -- batch formation -------------------------------------------------------
    def preempt_until_fits(self, req: _Req, now: int, n_new: int) -> bool:
        while True:
            if self.kv.allocate(req, req.progress, req.progress + n_new, ()):
                return True
            if not self.running:  # fix 4
                return False
            self.preempted_this_step = True
            self.preemptions += 1
            victim = self.running.pop()
            self.push(now, "preempted", victim)
            victim.progress = 0
            self.kv.release(victim)
            self.waitq.insert(0, victim)
            if victim is req:
                return False

    def form_batch(self, now: int) -> None:
        cfg = self.cfg
        bs = cfg.block_size
        thr = cfg.long_prefill_token_threshold
        self.preempted_this_step = False
        budget = cfg.max_scheduled_tokens

        # Go ranges over the slice as it was when the loop started: requests
        # evicted from the tail during the loop are still visited afterwards.
        for req in list(self.running):
            if budget <= 0:
                break
            n_new = len(req.inp) - req.progress
            if n_new > 0:
                if 0 < thr < n_new:
                    n_new = thr
                n_new = min(n_new, budget)
                if not self.preempt_until_fits(req, now, n_new):
                    break
                budget -= n_new
                self.miss_tokens += n_new
                req.num_new = n_new
                self.computed[req.index] = self.computed.get(req.index, 0) + n_new
            if req.progress >= len(req.inp) and len(req.out) > 0:
                if not self.preempt_until_fits(req, now, n_new):
                    break
                budget -= 1
                req.num_new = 1
                self.decode_tokens += 1
                self.computed[req.index] = self.computed.get(req.index, 0) + 1

        while (len(self.running) < cfg.max_running_reqs and self.waitq and budget > 0
               and not self.preempted_this_step):
            nxt = self.waitq[0]
            cached = self.kv.cached_blocks(nxt.inp)
            n_new = len(nxt.inp) - len(cached) * bs
            if 0 < thr < n_new:
                n_new = thr
            n_new = min(n_new, budget)
            start = len(cached) * bs
            if not self.kv.allocate(nxt, start, start + n_new, cached):
                break
            self.waitq.pop(0)
            self.running.append(nxt)
            self.push(now, "scheduled", nxt)
            self.sched_delay[nxt.index] = now - nxt.arrival
            budget -= n_new
            nxt.num_new = n_new
            self.miss_tokens += n_new
            self.computed[nxt.index] = n_new + len(cached) * bs

    def order_queue(self, now: int) -> None:
        pol = self.cfg.priority_policy
        for r in self.waitq:
            if pol == "constant":
                r.priority = 0.0
            elif pol == "slo-based":
                r.priority = 0.0 + 1e-6 * float(now - r.arrival)
            else:
                r.priority = 0.0 - 1e-6 * float(now - r.arrival)
        sch = self.cfg.scheduler
        if sch == "priority-fcfs":
            self.waitq.sort(key=lambda r: (-r.priority, r.arrival, r.rid))
        elif sch == "reverse-priority":
            self.waitq.sort(key=lambda r: (r.priority, r.arrival, r.rid))
        elif sch == "sjf":
            self.waitq.sort(key=lambda r: (len(r.inp), r.arrival, r.rid))

    # -- the step ------------------------------------------------------------------
    def step(self, now: int) -> None:
        self.step_count += 1
        self.miss_tokens = 0
        self.decode_tokens = 0
        if self.kv.cpu is not None:
            self.kv.cpu.clock = now
        self.order_queue(now)
        self.form_batch(now)

        dt = self.step_time()
        if self.kv.cpu is not None:
            # reloads since the last step (this one's batch formation, the last one's completions)
            dt += self.kv.cpu.take_pending_latency()
        out_t = self.output_time()

        # execution
        for r in self.running:
            if r.progress < len(r.inp):
                r.progress = self.computed.get(r.index, 0)
            else:
                # every decode-phase request in the batch advances, even one the
                # token budget cut off during batch formation
                r.progress += 1
                self.total_output_tokens += 1
                r.itl.append(dt + out_t)
            if r.progress == len(r.inp):
                r.first_token_time = now + dt + out_t - r.arrival
                self.ttft[r.index] = r.first_token_time  # overwritten on re-prefill

        used = self.kv.used
        if used > self.peak_kv:
            self.peak_kv = used
        self.kv_integral += float(used) * float(dt)

        # completion
        remaining = []
        for r in self.running:
            if r.progress == len(r.inp) + max(len(r.out), 1) - 1:
                r.itl.append(dt + out_t)
                if len(r.out) > 0:
                    # fix 1: the request completes even if this allocation fails
                    self.kv.allocate(r, r.progress, r.progress + 1, ())
                self.kv.release(r)
                self.completed += 1
                self.push(now + dt, "left", r)
                lat = r.first_token_time + sum(r.itl)
                self.e2e[r.index] = lat
                if len(r.out) > 0:
                    self.req_itl[r.index] = float(lat - r.first_token_time) / float(max(len(r.out) - 1, 1))
                else:
                    self.req_itl[r.index] = 0.0
                self.completion_time[r.index] = lat + r.arrival
                self.all_itls.extend(r.itl)
            else:
                remaining.append(r)

        if remaining:
            self.running = remaining
            self.push(now + dt, "step")
            self.step_pending = True
        else:
            self.running = []
            self.step_pending = False


# --------------------------------------------------------------------------
# Metrics (SaveResults and the cluster anomaly counter)
# --------------------------------------------------------------------------


def percentile_ms(sorted_vals: Sequence, p: float) -> float:
    """CalculatePercentile: linear interpolation on rank p/100*(n-1), in ms."""
    n = len(sorted_vals)
    if n == 0:
        # the reference indexes data[-1] here and panics (only reachable when a
        # request completes without ever setting its first-token time)
        raise UndefinedReferenceBehaviour("percentile of an empty list")
    rank = p / 100.0 * float(n - 1)
    lo = int(math.floor(rank))
    hi = int(math.ceil(rank))
    if lo == hi:
        return float(sorted_vals[lo]) / 1000
    if hi >= n:
        return float(sorted_vals[n - 1]) / 1000
    lv = sorted_vals[lo]
    hv = sorted_vals[hi]
    return float(lv) / 1000 + float(hv - lv) * (rank - float(lo)) / 1000


def mean_ms(sorted_vals: Sequence) -> float:
    if not sorted_vals:
        return 0.0
    s = 0.0
    for v in sorted_vals:
        s += float(v)
    return (s / float(len(sorted_vals))) / 1000


def _div(a: float, b: float) -> float:
    """Go float64 division (no exception on zero)."""
    if b == 0:
        if a == 0 or math.isnan(a):
            return math.nan
        return math.copysign(math.inf, a)
    return a / b


def priority_inversions(arrivals_s: Sequence[float], e2es: Sequence[float]) -> int:
    """Pairs (earlier, later) by arrival where earlier.e2e > 2 * later.e2e.
    Inputs must already be ordered by (arrival, request index)."""
    count = 0
    n = len(e2es)
    for i in range(n - 1):
        ei = e2es[i]
        for j in range(i + 1, n):
            if ei > e2es[j] * 2.0:
                count += 1
    return count


@dataclass
class OracleResult:
    requests: list[dict[str, Any]]
    metrics: dict[str, Any]
    kv_state: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)


def _summarize(instances: Sequence[OracleInstance], horizon: int) -> dict[str, Any]:
    """The metrics block of one instance, or the cluster's merge of several: counts and
    latency lists pooled, the end time and KV peak the maximum, the cache hit and
    thrashing rates the mean of the instances' rates, inversions counted per instance."""
    sim_end = max(min(inst.clock, horizon) for inst in instances)
    runtime = float(sim_end) / float(1e6)
    completed = sum(inst.completed for inst in instances)
    total_output = sum(inst.total_output_tokens for inst in instances)
    m: dict[str, Any] = {
        "completed_requests": completed,
        "total_input_tokens": sum(inst.total_input_tokens for inst in instances),
        "total_output_tokens": total_output,
        "vllm_estimated_duration_s": runtime,
    }
    if completed > 0:
        ttfts = sorted(float(v) for inst in instances for v in inst.ttft.values())
        e2es = sorted(float(v) for inst in instances for v in inst.e2e.values())
        itls = sorted(v for inst in instances for v in inst.all_itls)
        delays = sorted(float(v) for inst in instances for v in inst.sched_delay.values())
        m["responses_per_sec"] = _div(float(completed), runtime)
        m["tokens_per_sec"] = _div(float(total_output), runtime)
        m["e2e_mean_ms"] = mean_ms(e2es)
        m["e2e_p90_ms"] = percentile_ms(e2es, 90)
        m["e2e_p95_ms"] = percentile_ms(e2es, 95)
        m["e2e_p99_ms"] = percentile_ms(e2es, 99)
        m["ttft_mean_ms"] = mean_ms(ttfts)
        m["ttft_p90_ms"] = percentile_ms(ttfts, 90)
        m["ttft_p95_ms"] = percentile_ms(ttfts, 95)
        m["ttft_p99_ms"] = percentile_ms(ttfts, 99)
        m["itl_mean_ms"] = mean_ms(itls)
        m["itl_p90_ms"] = percentile_ms(itls, 90)
        m["itl_p95_ms"] = percentile_ms(itls, 95)
        m["itl_p99_ms"] = percentile_ms(itls, 99)
        m["scheduling_delay_p99_ms"] = percentile_ms(delays, 99)
    # extras beyond the printed block
    preemptions = sum(inst.preemptions for inst in instances)
    m["preemption_count"] = preemptions
    m["cache_hits"] = sum(inst.kv.hits for inst in instances)
    m["cache_misses"] = sum(inst.kv.misses for inst in instances)
    m["cache_hit_rate"] = sum(inst.kv.hit_rate() for inst in instances) / float(len(instances))
    m["kv_thrashing_rate"] = sum(inst.kv.cpu.thrashing_rate() if inst.kv.cpu else 0.0
                                 for inst in instances) / float(len(instances))
    m["waiting_at_end"] = sum(len(inst.waitq) for inst in instances)
    m["running_at_end"] = sum(len(inst.running) for inst in instances)
    m["kv_used_at_end"] = sum(inst.kv.used for inst in instances)
    m["kv_offloads"] = sum(inst.kv.cpu.offloads if inst.kv.cpu else 0 for inst in instances)
    m["kv_reloads"] = sum(inst.kv.cpu.hits if inst.kv.cpu else 0 for inst in instances)
    m["peak_kv_blocks"] = max(inst.peak_kv for inst in instances)
    m["kv_blocks_integral"] = sum(inst.kv_integral for inst in instances)
    m["sim_ended_tick"] = sim_end
    m["preemption_rate"] = (float(preemptions) / float(completed)) if completed else 0.0
    inversions = 0
    for inst in instances:
        done = [r for r in sorted(inst.injected, key=lambda r: (float(r.arrival) / 1e6, r.index))
                if r.index in inst.e2e]
        inversions += priority_inversions(
            [float(r.arrival) / 1e6 for r in done], [float(inst.e2e[r.index]) for r in done])
    m["priority_inversions"] = inversions
    return m


# --------------------------------------------------------------------------
# The cluster: control-plane events, admission, routing
# --------------------------------------------------------------------------


class OracleCluster:
    """The reference's cluster shell (ClusterSimulator) around N identical instances.

    Control-plane events are ordered by (time, kind, sequence) with kind 0 = arrival,
    1 = admission decision (``admission_latency`` after arrival), 2 = routing decision
    (``routing_latency`` after admission); sequence numbers are handed out as events are
    created, the arrivals first. A control-plane event at time T runs before any
    instance event at T; among instances the earliest event wins, ties to the lowest
    index; the first event past the horizon ends the run. A routed request arrives at
    its instance at the routing time (its latencies still count from the original
    arrival). Policies see the instances as they are when the decision runs.
    """

    def __init__(self, cfg: OracleConfig, reqs: Sequence[_Req]) -> None:
        self.cfg = cfg
        self.instances = [OracleInstance(cfg) for _ in range(cfg.num_instances)]
        self.queue: list[tuple[int, int, int, _Req]] = []
        self.seq = 0
        for r in reqs:
            self._push(r.arrival, 0, r)
        self.rejected: set[int] = set()
        self.routed_to: dict[int, int] = {}
        self.rr_counter = 0
        self.affinity: dict[tuple, int] = {}  # whole input -> instance (never evicted)
        self.bucket_tokens = cfg.token_bucket_capacity
        self.bucket_last_refill = 0

    def _push(self, time: int, kind: int, req: _Req) -> None:
        heapq.heappush(self.queue, (time, kind, self.seq, req))
        self.seq += 1

    def run(self) -> None:
        horizon = self.cfg.horizon
        while True:
            cluster_time = self.queue[0][0] if self.queue else INT64_MAX
            inst = None
            inst_time = INT64_MAX
            for candidate in self.instances:
                if len(candidate.events) and candidate.events.peek_time() < inst_time:
                    inst_time = candidate.events.peek_time()
                    inst = candidate
            if not self.queue and inst is None:
                break
            if self.queue and cluster_time <= inst_time:
                t, kind, _, r = heapq.heappop(self.queue)
                if t > horizon:
                    break
                if kind == 0:
                    self._push(t + self.cfg.admission_latency, 1, r)
                elif kind == 1:
                    if self.admit(r, t):
                        self._push(t + self.cfg.routing_latency, 2, r)
                    else:
                        self.rejected.add(r.index)
                else:
                    target = self.route(r)
                    self.routed_to[r.index] = target
                    self.instances[target].inject(r, t)
            else:
                if inst_time > horizon:
                    break
                inst.process_next()

    # -- admission -------------------------------------------------------------
    def admit(self, req: _Req, clock: int) -> bool:
        pol = self.cfg.admission_policy
        if pol == "reject-all":
            return False
        if pol == "token-bucket":
            elapsed = clock - self.bucket_last_refill
            if elapsed > 0:
                refill = float(elapsed) * self.cfg.token_bucket_refill_rate / 1e6
                self.bucket_tokens = min(self.cfg.token_bucket_capacity, self.bucket_tokens + refill)
                self.bucket_last_refill = clock
            cost = float(len(req.inp))
            if self.bucket_tokens >= cost:
                self.bucket_tokens -= cost
                return True
            return False
        return True

    # -- routing -----------------------------------------------------------------
    def _load(self, i: int) -> int:
        inst = self.instances[i]
        return len(inst.waitq) + len(inst.running)

    def _least_loaded(self) -> int:
        best = 0
        for i in range(1, len(self.instances)):
            if self._load(i) < self._load(best):
                best = i
        return best

    def route(self, req: _Req) -> int:
        pol = self.cfg.routing_policy
        n = len(self.instances)
        if pol == "round-robin":
            target = self.rr_counter % n
            self.rr_counter += 1
            return target
        if pol == "least-loaded":
            return self._least_loaded()
        if pol == "always-busiest":
            best = 0
            for i in range(1, n):
                if self._load(i) > self._load(best):
                    best = i
            return best
        if pol == "prefix-affinity":
            if req.inp in self.affinity:
                return self.affinity[req.inp]
            target = self._least_loaded()
            self.affinity[req.inp] = target
            return target
        # weighted: free GPU blocks relative to the most free, and 1 / (1 + queue depth)
        total_w = self.cfg.routing_cache_weight + self.cfg.routing_load_weight
        cache_w = self.cfg.routing_cache_weight / total_w
        load_w = self.cfg.routing_load_weight / total_w
        free = [inst.kv.total - inst.kv.used for inst in self.instances]
        max_free = max(0, max(free))
        best, best_score = 0, -1.0
        for i, inst in enumerate(self.instances):
            cache_score = float(free[i]) / float(max_free) if max_free > 0 else 0.0
            load_score = 1.0 / (1.0 + float(len(inst.waitq)))
            score = cache_score * cache_w + load_score * load_w
            if score > best_score:
                best, best_score = i, score
        return best


# --------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------


def run_oracle(
    arrival_ticks: Sequence[int],
    input_tokens: Sequence[Sequence[int]],
    output_tokens: Sequence[Sequence[int]],
    config: OracleConfig,
) -> OracleResult:
    """Simulate the requests on the configured cluster (one instance by default).

    Request ``i`` gets id ``request_i``.  As the reference's trace reader does,
    requests are taken in order up to (excluding) the first whose arrival tick
    exceeds the horizon; later rows are ignored even if they arrive earlier.

    Returns per-request dicts (index-aligned with the inputs; ``instance`` is the
    routing target or None, ``rejected`` whether admission refused it), the merged
    metrics dict (SaveResults' printed fields when at least one request completed,
    plus extras, with the control plane's ``rejected_requests``), per-instance
    metrics in ``extra["instances"]``, and the final KV state (of instance 0 when
    there is one; every instance's in ``extra["kv_states"]``).
    """
    if not (len(arrival_ticks) == len(input_tokens) == len(output_tokens)):
        raise ValueError("arrival/input/output lengths differ")
    cfg = config
    horizon = cfg.horizon

    reqs: list[_Req] = []
    for i, t in enumerate(arrival_ticks):
        if int(t) > horizon:
            break
        reqs.append(_Req(i, int(t), tuple(int(x) for x in input_tokens[i]),
                         tuple(int(x) for x in output_tokens[i])))

    cluster = OracleCluster(cfg, reqs)
    cluster.run()
    instances = cluster.instances

    metrics = _summarize(instances, horizon)
    metrics["rejected_requests"] = len(cluster.rejected)
    metrics["routed_requests"] = len(cluster.routed_to)

    out_reqs: list[dict[str, Any]] = []
    n_taken = len(reqs)
    for i in range(len(arrival_ticks)):
        if i >= n_taken:
            out_reqs.append({"index": i, "id": f"request_{i}", "injected": False,
                             "first_token": False, "completed": False, "ttft": None,
                             "e2e": None, "itl": None, "scheduling_delay": None,
                             "completion_time": None, "instance": None, "rejected": False})
            continue
        target = cluster.routed_to.get(i)
        inst = instances[target] if target is not None else None

        def of(table: str) -> Any:
            return getattr(inst, table).get(i) if inst is not None else None

        out_reqs.append({
            "index": i,
            "id": f"request_{i}",
            "injected": inst is not None,
            "first_token": of("ttft") is not None,
            "completed": of("e2e") is not None,
            "ttft": of("ttft"),
            "e2e": of("e2e"),
            "itl": of("req_itl"),
            "scheduling_delay": of("sched_delay"),
            "completion_time": of("completion_time"),
            "instance": target,
            "rejected": i in cluster.rejected,
        })

    kv_states = []
    for inst in instances:
        kv_state = inst.kv.snapshot()
        kv_state["peak_kv_blocks"] = inst.peak_kv
        kv_states.append(kv_state)
    first = instances[0]
    extra = {
        "steps": sum(inst.step_count for inst in instances),
        "final_clock": max(inst.clock for inst in instances),
        "waiting": [r.index for inst in instances for r in inst.waitq],
        "running": [r.index for inst in instances for r in inst.running],
        "pending_events": sum(len(inst.events) for inst in instances) + len(cluster.queue),
        "all_itls": list(first.all_itls),  # AllITLs in completion order (instance 0)
        "instances": [_summarize([inst], horizon) for inst in instances],
        "kv_states": kv_states,
    }
    return OracleResult(out_reqs, metrics, kv_states[0], extra)


def check_kv_invariants(res: OracleResult) -> None:
    """Conservation checks on the final KV state (raise AssertionError on failure)."""
    kv = res.kv_state
    assert kv["used_blocks"] + kv["free_list_len"] == kv["total_blocks"], kv["used_blocks"]
    assert kv["in_use_blocks"] == kv["used_blocks"]
    assert len(set(kv["free_list"])) == kv["free_list_len"]
    assert all(r >= 0 for r in kv["refs"])
    assert sum(1 for r in kv["refs"] if r > 0) == kv["used_blocks"]
    assert all(kv["refs"][b] == 0 for b in kv["free_list"])
