"""Property tests: the batch engine against the slow pure-Python oracle, and invariants.

Random small configurations (tiny KV caches, shared prefixes, chunking, every
scheduler and priority policy, horizons) must give the same per-request results
as the oracle, and conserve KV blocks and requests, keep causality and never run
the clock back.
"""
from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from blis_sweep.engine import simulate
from blis_sweep.sim_config import PriorityPolicy, Scheduler, SimConfig
from blis_sweep.workloads.arrays import build_workload
from blis_sweep.kernels import layout as L
from tests.oracle_sim import OracleConfig, run_oracle

SCHEDULERS = ["fcfs", "priority-fcfs", "sjf", "reverse-priority"]
PRIORITIES = ["constant", "slo-based", "inverted-slo"]


@st.composite
def scenarios(draw):
    n = draw(st.integers(1, 14))
    vocab = draw(st.integers(2, 50))  # small vocabularies make shared prefixes and cache hits likely
    prefixes = [draw(st.lists(st.integers(0, vocab), min_size=0, max_size=40)) for _ in range(2)]
    arrivals, inputs, outputs = [], [], []
    t = 0
    for _ in range(n):
        t += draw(st.sampled_from([0, 0, 1, 500, 3000, 20000]))  # same-tick arrivals included
        prefix = prefixes[draw(st.integers(0, 1))]
        body = draw(st.lists(st.integers(0, vocab), min_size=1, max_size=60))
        arrivals.append(t)
        inputs.append(prefix + body)
        outputs.append(draw(st.lists(st.integers(0, vocab), min_size=0, max_size=30)))
    cfg = dict(
        total_kv_blocks=draw(st.integers(3, 80)),
        block_size=draw(st.sampled_from([2, 3, 4, 8, 16])),
        max_running_reqs=draw(st.integers(1, 8)),
        max_scheduled_tokens=draw(st.integers(4, 96)),
        long_prefill_token_threshold=draw(st.sampled_from([0, 0, 3, 8, 32])),
        horizon=draw(st.sampled_from([2**63 - 1, 2**63 - 1, 30_000, 200_000])),
        alpha=(draw(st.floats(0, 400)), draw(st.floats(0, 3)), draw(st.floats(0, 500))),
        beta=(draw(st.floats(100, 6000)), draw(st.floats(0, 20)), draw(st.floats(0, 10))),
        scheduler=draw(st.sampled_from(SCHEDULERS)),
        priority_policy=draw(st.sampled_from(PRIORITIES)),
    )
    return arrivals, inputs, outputs, cfg


def engine_config(cfg: dict) -> SimConfig:
    return SimConfig(
        total_kv_blocks=cfg["total_kv_blocks"], block_size=cfg["block_size"],
        max_running_reqs=cfg["max_running_reqs"], max_scheduled_tokens=cfg["max_scheduled_tokens"],
        long_prefill_token_threshold=cfg["long_prefill_token_threshold"], horizon=cfg["horizon"],
        alpha_coeffs=cfg["alpha"], beta_coeffs=cfg["beta"],
        scheduler=Scheduler(SCHEDULERS.index(cfg["scheduler"])),
        priority_policy=PriorityPolicy(PRIORITIES.index(cfg["priority_policy"])),
    )


def check_invariants(res, n: int) -> None:
    row = res.cluster[0]
    assert row["status"] == L.STATUS_OK
    assert row["kv_used_at_end"] + row["kv_free_at_end"] == row["kv_total_blocks"]
    assert row["arrived_requests"] == (row["completed_requests"] + row["waiting_at_end"] + row["running_at_end"]
                                + row["rejected_requests"] + row["in_flight_at_end"])
    assert row["in_flight_at_end"] >= 0
    assert row["clock_regressions"] == 0
    flags = res.req_flags[0, :n]
    done = (flags & L.RF_COMPLETED) != 0
    # causality: arrival <= scheduled <= first token <= completion (times relative to arrival)
    sched, ttft, e2e = res.req_sched[0, :n][done], res.req_ttft[0, :n][done], res.req_e2e[0, :n][done]
    assert np.all(sched >= 0)
    assert np.all(ttft >= sched)
    assert np.all(e2e >= ttft)
    assert int(done.sum()) == row["completed_requests"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(scenarios())
def test_engine_equals_oracle_and_keeps_invariants(scenario):
    assert_engine_equals_oracle(scenario)


def test_a_request_keeping_blocks_after_a_failed_admission_finds_its_own_prefix_again():
    """Request 2 shares two blocks with request 1, adopts them, closes a block of its own and then
    fails to get the last one (3 KV blocks); it keeps what it got and is looked up again every
    step, which must find its own block too (its hash is kept out of the prefix map until then)."""
    assert_engine_equals_oracle(([0, 0, 500, 500], [[0], [0] * 5, [0] * 7, [0]], [[], [], [], []],
                                 {"total_kv_blocks": 3, "block_size": 2, "max_running_reqs": 1,
                                  "max_scheduled_tokens": 4, "long_prefill_token_threshold": 0,
                                  "horizon": 2**63 - 1, "alpha": (0.0, 0.0, 0.0), "beta": (100.0, 0.0, 0.0),
                                  "scheduler": "fcfs", "priority_policy": "constant"}))


def test_a_block_list_that_does_not_start_at_the_sequence_start_publishes_every_hash():
    """Request 4's whole input is cached, which the reference does not adopt, so its block list
    starts after its input and its decode block closes with the hash of those two tokens alone,
    "00": a hash other requests have, which must reach the prefix map with every hash kept out."""
    assert_engine_equals_oracle(([0, 0, 1, 1, 1, 1, 1], [[0, 0]] * 6 + [[0, 1]], [[], [], [], [0], [0, 0], [], []],
                                 {"total_kv_blocks": 3, "block_size": 2, "max_running_reqs": 2,
                                  "max_scheduled_tokens": 4, "long_prefill_token_threshold": 0,
                                  "horizon": 2**63 - 1, "alpha": (0.0, 0.0, 0.0), "beta": (100.0, 1.0, 0.0),
                                  "scheduler": "fcfs", "priority_policy": "constant"}))


# `-k small`: the same property on a few examples, for the slow debugging modes
# (NUMBA_DISABLE_JIT=1 runs the kernel as Python; BLIS_SWEEP_NO_BORROW=1, see
# tests/test_debug_switches.py). Seeded apart from the test above, so these examples add to it.
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@seed(20261129)
@given(scenarios())
def test_small_engine_equals_oracle_and_keeps_invariants(scenario):
    assert_engine_equals_oracle(scenario)


def assert_engine_equals_oracle(scenario) -> None:
    """Per-request outcomes and the cluster block of one scenario, kernel against oracle."""
    arrivals, inputs, outputs, cfg = scenario
    oracle = run_oracle(arrivals, inputs, outputs, OracleConfig(**cfg))
    workload = build_workload(arrivals, inputs, outputs)
    res = simulate([engine_config(cfg)], [workload], [0], per_request=True)
    n = len(arrivals)
    check_invariants(res, n)
    for r, want in enumerate(oracle.requests):
        flags = int(res.req_flags[0, r])
        assert bool(flags & L.RF_HAS_TTFT) == want["first_token"], r
        assert bool(flags & L.RF_COMPLETED) == want["completed"], r
        if want["first_token"]:
            assert res.req_ttft[0, r] == want["ttft"], r
        if want["completed"]:
            assert res.req_e2e[0, r] == want["e2e"], r
        if want["scheduling_delay"] is not None:
            assert res.req_sched[0, r] == want["scheduling_delay"], r
    m = oracle.metrics
    row = res.cluster[0]
    assert row["completed_requests"] == m["completed_requests"]
    assert row["total_input_tokens"] == m["total_input_tokens"]
    assert row["total_output_tokens"] == m["total_output_tokens"]
    assert row["sim_ended_ticks"] == m["sim_ended_tick"]
    assert row["preemptions"] == m["preemption_count"]
    assert row["kv_peak_blocks"] == m["peak_kv_blocks"]
    assert row["cache_hit_rate"] == m["cache_hit_rate"]
    assert row["priority_inversions"] == m["priority_inversions"]
    if m["completed_requests"] > 0:
        for key in ("e2e_mean_ms", "ttft_p99_ms", "itl_mean_ms", "itl_p90_ms", "scheduling_delay_p99_ms"):
            assert row[key] == m[key], key


def test_million_block_cache_runs_without_allocating_per_block():
    """Working memory follows the workload, not total_kv_blocks (2**40 blocks would not fit otherwise)."""
    rng = np.random.default_rng(7)
    inputs = [list(rng.integers(0, 1000, 300)) for _ in range(50)]
    outputs = [list(rng.integers(0, 1000, 100)) for _ in range(50)]
    arrivals = list(range(0, 50 * 20000, 20000))
    wl = build_workload(arrivals, inputs, outputs)
    small = simulate([SimConfig(total_kv_blocks=1_000_000, beta_coeffs=(5000.0, 10.0, 5.0))], [wl], [0])
    huge = simulate([SimConfig(total_kv_blocks=1 << 40, beta_coeffs=(5000.0, 10.0, 5.0))], [wl], [0])
    assert small.cluster[0]["completed_requests"] == 50
    same = [f for f in L.metrics_dt.names if f not in ("kv_free_at_end", "kv_total_blocks")]
    np.testing.assert_array_equal([small.cluster[0][f] for f in same], [huge.cluster[0][f] for f in same])
    assert huge.cluster[0]["kv_used_at_end"] + huge.cluster[0]["kv_free_at_end"] == 1 << 40


# ---------------------------------------------------------------- generated workload specs

SPEC_CLIENT = """
- tenant_id: t{i}
  slo_class: {slo}
  rate_fraction: {frac}
  arrival: {{process: {process}, cv: {cv}}}
  input_distribution: {input}
  output_distribution: {{type: exponential, params: {{mean: {out_mean}}}}}
  prefix_group: {group}
"""
SPEC_INPUTS = ("{type: gaussian, params: {mean: 40, std_dev: 30, min: 1, max: 120}}",
               "{type: exponential, params: {mean: 30}}",
               "{type: empirical, params: {5: 1, 20: 2, 90: 1}}",
               "{type: pareto_lognormal, params: {alpha: 2, xm: 10, mu: 3, sigma: 0.5, mix_weight: 0.3}}")


@st.composite
def spec_scenarios(draw):
    """A small workload spec (2-3 clients, bursty arrivals, shared prefix groups) and a small deployment."""
    clients = "".join(SPEC_CLIENT.format(
        i=i, slo=draw(st.sampled_from(["realtime", "batch", "''"])), frac=draw(st.floats(0.2, 3)),
        process=draw(st.sampled_from(["poisson", "gamma", "weibull"])), cv=draw(st.sampled_from([0.5, 1.0, 3.0])),
        input=draw(st.sampled_from(SPEC_INPUTS)), out_mean=draw(st.integers(2, 25)),
        group=draw(st.sampled_from(["g", "h", "''"]))) for i in range(draw(st.integers(1, 3))))
    text = (f"seed: {draw(st.integers(-1000, 1000))}\naggregate_rate: {draw(st.sampled_from([5, 20, 60]))}\n"
            f"horizon: {draw(st.sampled_from([400_000, 1_000_000]))}\nclients:{clients}")
    cfg = dict(
        total_kv_blocks=draw(st.integers(8, 120)),
        block_size=draw(st.sampled_from([4, 8, 16])),
        max_running_reqs=draw(st.integers(1, 8)),
        max_scheduled_tokens=draw(st.integers(16, 256)),
        long_prefill_token_threshold=draw(st.sampled_from([0, 0, 8, 32])),
        horizon=draw(st.sampled_from([2**63 - 1, 2**63 - 1, 500_000])),
        alpha=(draw(st.floats(0, 400)), draw(st.floats(0, 3)), draw(st.floats(0, 500))),
        beta=(draw(st.floats(100, 6000)), draw(st.floats(0, 20)), draw(st.floats(0, 10))),
        scheduler=draw(st.sampled_from(SCHEDULERS)),
        priority_policy=draw(st.sampled_from(PRIORITIES)),
    )
    return text, cfg


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(spec_scenarios())
def test_engine_equals_oracle_on_generated_spec_workloads(scenario):
    """The spec generator's requests (token ids included) simulated by the kernel and by the oracle."""
    assert_engine_equals_oracle_on_spec(scenario)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@seed(20261129)
@given(spec_scenarios())
def test_small_engine_equals_oracle_on_generated_spec_workloads(scenario):
    """`-k small`: a few more spec workloads (also the spec generator's kernels in the debugging modes)."""
    assert_engine_equals_oracle_on_spec(scenario)


def assert_engine_equals_oracle_on_spec(scenario) -> None:
    from blis_sweep.workloads.spec import parse_workload_spec_text
    from blis_sweep.workloads.spec_gen import generate_spec_requests, generate_spec_workload

    text, cfg = scenario
    spec = parse_workload_spec_text(text)
    arrivals, in_len, out_len, tokens, _ = generate_spec_requests(spec, cfg["horizon"])
    starts = np.concatenate([[0], np.cumsum(in_len + out_len)])
    inputs = [tokens[starts[r]:starts[r] + in_len[r]].tolist() for r in range(len(in_len))]
    outputs = [tokens[starts[r] + in_len[r]:starts[r + 1]].tolist() for r in range(len(in_len))]
    oracle = run_oracle(arrivals.tolist(), inputs, outputs, OracleConfig(**cfg))
    workload = generate_spec_workload(spec, cfg["horizon"])
    assert np.array_equal(workload.prefix_hash, build_workload(arrivals, inputs, outputs).prefix_hash)
    res = simulate([engine_config(cfg)], [workload], [0], per_request=True)
    check_invariants(res, len(inputs))
    for r, want in enumerate(oracle.requests):
        flags = int(res.req_flags[0, r])
        assert bool(flags & L.RF_COMPLETED) == want["completed"], r
        if want["first_token"]:
            assert res.req_ttft[0, r] == want["ttft"], r
        if want["completed"]:
            assert res.req_e2e[0, r] == want["e2e"], r
    m, row = oracle.metrics, res.cluster[0]
    assert row["completed_requests"] == m["completed_requests"]
    assert row["preemptions"] == m["preemption_count"]
    assert row["cache_hit_rate"] == m["cache_hit_rate"]
