"""A batch is only a set of independent configurations: every row equals its run alone.

Mixes cluster sizes (1, 2, 4, 8 instances), routing and admission policies, the
tiered KV cache and both latency models in one kernel call; also checks the
cluster-level conservation invariants.
"""
import itertools

import numpy as np
import pytest

from blis_sweep.engine import metric_values, simulate
from blis_sweep.sim_config import AdmissionPolicy, RooflineParams, RoutingPolicy, SimConfig
from blis_sweep.workloads.requests import distribution_workload
from blis_sweep.kernels import layout as L

ALPHA = (232.46191091038054, 1.752360364195244, 3357.4400353290152)
BETA = (5752.705191348184, 17.25086436834028, 5.999143920128404)
ROOFLINE = RooflineParams(num_layers=32, hidden_dim=4096, num_heads=32, num_kv_heads=8, intermediate_dim=14336,
                          bytes_per_param=2.0, tflops_peak=989.5, bw_peak_tbs=3.35, bw_eff_constant=0.72,
                          t_overhead_micros=500.0, per_layer_overhead=20.0, mfu_prefill=0.65, mfu_decode=0.12,
                          all_reduce_latency=20.0, tp=2)


@pytest.fixture(scope="module")
def mixed_batch():
    workloads = [
        distribution_workload(40.0, 120, prefix_tokens=64, prompt_mean=200, prompt_std=80, prompt_min=2,
                              prompt_max=600, output_mean=60, output_std=30, output_min=1, output_max=200, seed=3),
        distribution_workload(80.0, 150, prefix_tokens=0, prompt_mean=300, prompt_std=100, prompt_min=2,
                              prompt_max=900, output_mean=40, output_std=20, output_min=1, output_max=100, seed=4,
                              arrival="poisson"),
    ]
    configs, wids = [], []
    for k, (n_inst, routing) in enumerate(itertools.product((1, 2, 4, 8), RoutingPolicy)):
        configs.append(SimConfig(
            total_kv_blocks=[400, 900, 3000][k % 3], alpha_coeffs=ALPHA, beta_coeffs=BETA, num_instances=n_inst,
            routing_policy=routing, max_running_reqs=[8, 32, 256][k % 3],
            admission_policy=AdmissionPolicy.TOKEN_BUCKET if k % 4 == 1 else AdmissionPolicy.ALWAYS_ADMIT,
            token_bucket_capacity=4000.0, token_bucket_refill_rate=20000.0,
            kv_cpu_blocks=200 if k % 5 == 2 else 0, kv_offload_threshold=0.5, kv_transfer_bandwidth=4.0,
            roofline=ROOFLINE if k % 7 == 3 else None,
            admission_latency=100 if k % 6 == 5 else 0, routing_latency=50 if k % 6 == 5 else 0))
        wids.append(k % 2)
    batch = simulate(configs, workloads, wids, per_request=True, per_instance=True, trace_k=2)
    return configs, workloads, wids, batch


def test_each_row_equals_the_configuration_run_alone(mixed_batch):
    configs, workloads, wids, batch = mixed_batch
    assert len({c.num_instances for c in configs}) == 4
    for k, cfg in enumerate(configs):
        alone = simulate([cfg], [workloads[wids[k]]], [0], per_request=True, per_instance=True, trace_k=2)
        np.testing.assert_array_equal(metric_values(batch.cluster[k]), metric_values(alone.cluster[0]))
        n = workloads[wids[k]].num_requests
        for name in ("req_ttft", "req_e2e", "req_itl_sum", "req_sched", "req_flags", "req_instance"):
            np.testing.assert_array_equal(getattr(batch, name)[k, :n], getattr(alone, name)[0, :n], err_msg=name)
        np.testing.assert_array_equal(metric_values(batch.instances[k, :cfg.num_instances]),
                                      metric_values(alone.instances[0, :cfg.num_instances]))


def test_cluster_conservation_invariants(mixed_batch):
    configs, workloads, wids, batch = mixed_batch
    for k, cfg in enumerate(configs):
        row = batch.cluster[k]
        assert row["status"] == L.STATUS_OK
        assert row["arrived_requests"] == workloads[wids[k]].num_requests
        assert row["arrived_requests"] == (row["completed_requests"] + row["waiting_at_end"] + row["running_at_end"]
                                    + row["rejected_requests"] + row["in_flight_at_end"])
        assert row["routed_requests"] == row["arrived_requests"] - row["rejected_requests"]
        assert row["clock_regressions"] == 0
        inst = batch.instances[k, :cfg.num_instances]
        np.testing.assert_array_equal(inst["kv_used_at_end"] + inst["kv_free_at_end"], inst["kv_total_blocks"])
        assert inst["completed_requests"].sum() == row["completed_requests"]
        # every routed request landed on a valid instance
        flags = batch.req_flags[k, :workloads[wids[k]].num_requests]
        routed = (flags & L.RF_ROUTED) != 0
        targets = batch.req_instance[k, :workloads[wids[k]].num_requests][routed]
        assert np.all((targets >= 0) & (targets < cfg.num_instances))


def test_token_bucket_rejects_and_counts(mixed_batch):
    configs, _, _, batch = mixed_batch
    bucket = [k for k, c in enumerate(configs) if c.admission_policy == AdmissionPolicy.TOKEN_BUCKET]
    assert bucket and all(batch.cluster[k]["rejected_requests"] > 0 for k in bucket)
    others = [k for k, c in enumerate(configs) if c.admission_policy == AdmissionPolicy.ALWAYS_ADMIT]
    assert all(batch.cluster[k]["rejected_requests"] == 0 for k in others)
