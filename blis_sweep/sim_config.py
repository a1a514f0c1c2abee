"""One simulated deployment: every parameter the engine needs, already resolved.

`run` builds one of these from the reference's flags; `grid` builds thousands from a
sweep file. The engine packs a list of them into kernel records (kernels.layout.cfg_dt).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from blis_sweep.kernels.layout import AdmissionPolicy, PriorityPolicy, RoutingPolicy, Scheduler

INT64_MAX = (1 << 63) - 1

__all__ = ["AdmissionPolicy", "PriorityPolicy", "RoutingPolicy", "Scheduler", "SimConfig", "RooflineParams",
           "SCHEDULER_NAMES", "PRIORITY_NAMES", "ADMISSION_NAMES", "ROUTING_NAMES", "INT64_MAX", "policy_names"]


def policy_names(enum) -> dict:
    """The flag and sweep-file spelling of each member: FCFS -> "fcfs", ALWAYS_ADMIT -> "always-admit"."""
    return {member.name.lower().replace("_", "-"): member for member in enum}


SCHEDULER_NAMES = policy_names(Scheduler)
PRIORITY_NAMES = policy_names(PriorityPolicy)
ADMISSION_NAMES = policy_names(AdmissionPolicy)
ROUTING_NAMES = policy_names(RoutingPolicy)


@dataclass(frozen=True)
class RooflineParams:
    """Model shape (from a HuggingFace config.json) and GPU calibration, for the analytical step time."""

    num_layers: int
    hidden_dim: int
    num_heads: int
    num_kv_heads: int
    intermediate_dim: int  # 0 means 4 * hidden_dim
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
class SimConfig:
    """A single configuration; field names follow the reference's `run` flags."""

    total_kv_blocks: int = 1_000_000
    block_size: int = 16
    max_running_reqs: int = 256
    max_scheduled_tokens: int = 2048
    long_prefill_token_threshold: int = 0
    horizon: int = INT64_MAX
    alpha_coeffs: tuple[float, float, float] = (0.0, 0.0, 0.0)
    beta_coeffs: tuple[float, float, float] = (0.0, 0.0, 0.0)
    roofline: RooflineParams | None = None  # set => analytical step time instead of beta
    scheduler: Scheduler = Scheduler.FCFS
    priority_policy: PriorityPolicy = PriorityPolicy.CONSTANT
    # cluster (issue 4); a single instance is num_instances == 1
    num_instances: int = 1
    admission_policy: AdmissionPolicy = AdmissionPolicy.ALWAYS_ADMIT
    admission_latency: int = 0
    routing_latency: int = 0
    token_bucket_capacity: float = 10000.0
    token_bucket_refill_rate: float = 1000.0
    routing_policy: RoutingPolicy = RoutingPolicy.ROUND_ROBIN
    routing_cache_weight: float = 0.6
    routing_load_weight: float = 0.4
    kv_cpu_blocks: int = 0
    kv_offload_threshold: float = 0.9
    kv_transfer_bandwidth: float = 100.0
    kv_transfer_base_latency: int = 0
    seed: int = 42
    labels: dict = field(default_factory=dict, compare=False, hash=False)  # model/gpu/tp names for reports
