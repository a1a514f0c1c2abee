"""The array form of a workload that the kernel consumes (built once, shared by many configs)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from blis_sweep.kernels.hashing import prefix_hashes_nb


@dataclass(frozen=True)
class RequestLabels:
    """Per-request SLO class and tenant (workload specs): codes into the name tuples."""

    slo_class: np.ndarray  # int32 [n], index into slo_names
    slo_names: tuple
    tenant: np.ndarray  # int32 [n], index into tenant_names
    tenant_names: tuple

    def slo_class_list(self) -> list[str]:
        return [self.slo_names[c] for c in self.slo_class]

    def tenant_list(self) -> list[str]:
        return [self.tenant_names[c] for c in self.tenant]


@dataclass(frozen=True)
class Workload:
    """Requests as arrays. Request r is the reference's `request_<r>`.

    Token content is kept only as prefix hashes: for the sequence input ++ output of
    request r (length input_len[r] + output_len[r]), prefix_hash[seq_offset[r] + i]
    is the hash of its first i tokens (see kernels.hashing).
    """

    arrival_ticks: np.ndarray  # int64 [n], microseconds
    input_len: np.ndarray  # int64 [n]
    output_len: np.ndarray  # int64 [n]
    seq_offset: np.ndarray  # int64 [n+1]
    prefix_hash: np.ndarray  # uint64 [seq_offset[n]]
    id_rank: np.ndarray  # int64 [n]: rank of the string "request_<r>" in byte order
    rate_per_s: float = 0.0  # offered rate the reference reports (0 for traces)
    labels: RequestLabels | None = None  # SLO class and tenant per request (workload specs)

    @property
    def num_requests(self) -> int:
        return int(self.arrival_ticks.shape[0])


def request_id_ranks(n: int) -> np.ndarray:
    """Rank of "request_<r>" among all ids under Go's byte-wise string order."""
    order = sorted(range(n), key=lambda r: f"request_{r}")
    ranks = np.empty(n, dtype=np.int64)
    ranks[np.asarray(order, dtype=np.int64)] = np.arange(n, dtype=np.int64)
    return ranks


def build_workload(arrival_ticks, input_tokens: list, output_tokens: list, rate_per_s: float = 0.0) -> Workload:
    """Pack per-request token lists (sequences of ints) into a Workload."""
    n = len(input_tokens)
    in_len = np.fromiter((len(t) for t in input_tokens), dtype=np.int64, count=n)
    out_len = np.fromiter((len(t) for t in output_tokens), dtype=np.int64, count=n)
    seq_len = in_len + out_len
    token_offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(seq_len, out=token_offsets[1:])
    seq_offset = token_offsets + np.arange(n + 1, dtype=np.int64)
    tokens = np.empty(int(token_offsets[-1]), dtype=np.int64)
    for r in range(n):
        a = token_offsets[r]
        tokens[a : a + in_len[r]] = input_tokens[r]
        tokens[a + in_len[r] : token_offsets[r + 1]] = output_tokens[r]
    return build_workload_from_packed(np.asarray(arrival_ticks, dtype=np.int64), in_len, out_len, tokens, rate_per_s)


def build_workload_from_packed(arrival_ticks, in_len, out_len, tokens, rate_per_s: float = 0.0,
                               labels: RequestLabels | None = None) -> Workload:
    """Like build_workload, with all tokens already packed request by request (input then output)."""
    n = in_len.shape[0]
    token_offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(in_len + out_len, out=token_offsets[1:])
    seq_offset = token_offsets + np.arange(n + 1, dtype=np.int64)
    prefix = prefix_hashes_nb(np.ascontiguousarray(tokens, dtype=np.int64), seq_offset, token_offsets)
    return build_workload_from_hashes(arrival_ticks, in_len, out_len, prefix, rate_per_s, labels)


def build_workload_from_hashes(arrival_ticks, in_len, out_len, prefix_hash, rate_per_s: float = 0.0,
                               labels: RequestLabels | None = None) -> Workload:
    """A Workload from prefix hashes already computed request by request (kernels.hashing layout)."""
    n = in_len.shape[0]
    seq_offset = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(in_len + out_len + 1, out=seq_offset[1:])
    return Workload(
        arrival_ticks=np.ascontiguousarray(arrival_ticks, dtype=np.int64),
        input_len=np.ascontiguousarray(in_len, dtype=np.int64),
        output_len=np.ascontiguousarray(out_len, dtype=np.int64),
        seq_offset=seq_offset,
        prefix_hash=prefix_hash,
        id_rank=request_id_ranks(n),
        rate_per_s=rate_per_s,
        labels=labels,
    )
