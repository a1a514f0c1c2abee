"""Unit tests of the data structures the kernel builds on, each against a plain Python model
(hypothesis drives random operation sequences; derandomized, so every run is the same):
the open-addressing prefix hash map, the instance and cluster event heaps, the KV free list,
the wait queue. Plus the kernel's shape rules and the single source of enums and names."""
from __future__ import annotations

import ast
from collections import deque
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numba import njit

from blis_sweep import sim_config
from blis_sweep.kernels import layout as L
from blis_sweep.kernels import state as S
from blis_sweep.kernels.event_heap import cluster_pop_nb, cluster_push_nb, heap_pop_nb, heap_push_nb
from blis_sweep.kernels.instance import order_wait_queue_nb, wq_push_back_nb, wq_push_front_nb
from blis_sweep.kernels.kv_cache import (
    HT_EMPTY, _free_list_append_nb, _free_list_remove_nb, count_free_list_nb, free_blocks_nb, ht_delete_nb,
    ht_get_nb, ht_put_nb, ht_version_nb, new_hash_map_nb, pop_free_block_nb,
)
from tests.oracle_sim import GoHeap, _Ev

KERNELS = Path(__file__).resolve().parents[1] / "kernels"
SETTINGS = settings(max_examples=150, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# ---------------------------------------------------------------- prefix hash map
def _colliding_keys(capacity: int) -> list[int]:
    """Keys below 2**61 of which many share a home slot (long probe chains, wrap-around deletes)."""
    rng = np.random.default_rng(5)
    keys = [int(k) for k in rng.integers(0, 1 << 61, 40, dtype=np.int64)]
    # small keys equal modulo the capacity share their home slot
    keys += [7 + j * capacity for j in range(6)] + [capacity - 1 + j * capacity for j in range(6)]
    return sorted(set(keys))


HT_CAPACITY = 32
HT_KEYS = _colliding_keys(HT_CAPACITY)
ht_ops = st.lists(st.tuples(st.sampled_from(["put", "delete"]), st.sampled_from(HT_KEYS),
                            st.integers(0, 10_000)), max_size=120)


@SETTINGS
@given(ht_ops)
def test_hash_map_behaves_like_a_dict(ops):
    ht = new_hash_map_nb(2, HT_CAPACITY)
    model: dict[int, int] = {}
    version = 0
    for op, key, value in ops:
        if op == "put":
            if key not in model and len(model) >= HT_CAPACITY - 1:
                continue  # the kernel sizes the map so that it never fills
            ht_put_nb(ht, 1, np.uint64(key), value)
            model[key] = value
            version += 1
        else:
            ht_delete_nb(ht, 1, np.uint64(key))
            if key in model:
                del model[key]
                version += 1  # a delete of an absent key leaves the map (and its version) as it was
        for k in HT_KEYS:
            assert ht_get_nb(ht, 1, np.uint64(k)) == model.get(k, -1), (op, key, k)
        assert ht_version_nb(ht, 1) == version
    assert int(np.count_nonzero(ht["key"][1, :HT_CAPACITY] != HT_EMPTY)) == len(model)
    assert np.all(ht["key"][0] == HT_EMPTY)  # the other instance's row is untouched


# ---------------------------------------------------------------- event heaps
heap_ops = st.lists(st.one_of(st.tuples(st.just("push"), st.integers(0, 6), st.integers(0, 5)),
                              st.just(("pop", 0, 0))), max_size=150)


@SETTINGS
@given(heap_ops)
def test_instance_heap_pops_exactly_as_go_container_heap(ops):
    capacity = 40
    heap = np.zeros((2, capacity), dtype=S.event_dt)
    ist = np.zeros(2, dtype=S.instance_dt)
    model = GoHeap()  # the oracle's: Go's container/heap ordered by time only
    for n_op, (op, time, kind) in enumerate(ops):
        if op == "push":
            ok = heap_push_nb(heap, ist, 1, time, kind, n_op)
            assert ok == (len(model) < capacity)
            if ok:
                model.push(_Ev(time, kind, n_op))
        elif len(model):
            want = model.pop()
            assert tuple(heap_pop_nb(heap, ist, 1)) == (want.time, want.kind, want.req)
        assert ist[1]["heap_len"] == len(model)
    assert ist[0]["heap_len"] == 0


@SETTINGS
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 2)), max_size=80), st.integers(0, 80))
def test_cluster_heap_pops_in_time_priority_sequence_order(events, pops_between):
    capacity = 64
    cheap = np.zeros(capacity, dtype=S.cluster_event_dt)
    length = 0
    pending = []
    popped = []
    for seq, (time, prio) in enumerate(events):
        new = cluster_push_nb(cheap, length, time, prio, seq, 1000 + seq)
        if length >= capacity:
            assert new == -1
            continue
        length = new
        pending.append((time, prio, seq, 1000 + seq))
        if seq == pops_between and length > 0:  # one pop in the middle of the pushes
            length = cluster_pop_nb(cheap, length)
            popped.append(tuple(int(x) for x in cheap[length].tolist()))
            pending.remove(min(pending))
    while length > 0:
        length = cluster_pop_nb(cheap, length)
        popped.append(tuple(int(x) for x in cheap[length].tolist()))
    assert popped[len(popped) - len(pending):] == sorted(pending)
    assert sorted(popped) == sorted(set(popped))  # nothing popped twice


# ---------------------------------------------------------------- KV free list
@njit
def _pop_nb(blocks, ht, ist, cs):
    return pop_free_block_nb(blocks, ht, ist, cs[0], 0)


def _one_instance_kv(total: int, room: int):
    """(blocks, ist, cs, ht) of one instance with `total` KV blocks, `room` of them backed."""
    ist = np.zeros(1, dtype=S.instance_dt)
    ist["kv_total"] = total
    ist["free_head"] = ist["free_tail"] = -1
    return np.zeros((1, room), dtype=S.block_dt), ist, np.zeros(1, dtype=S.cluster_dt), new_hash_map_nb(1, 16)


free_list_ops = st.lists(st.tuples(st.sampled_from(["pop", "release", "adopt"]), st.integers(0, 1000)),
                         max_size=120)


@SETTINGS
@given(st.integers(1, 12), free_list_ops)
def test_free_list_is_lru_with_an_implicit_untouched_head(total, ops):
    """Blocks start as the list 0..total-1; a pop takes the head, a release appends at the tail,
    adopting a cached free block takes it out wherever it is."""
    blocks, ist, cs, ht = _one_instance_kv(total, total)
    free = deque(range(total))
    in_use: list[int] = []
    released: set[int] = set()  # free blocks that were used once (the explicit part of the list)
    for op, pick in ops:
        if op == "pop":
            b = _pop_nb(blocks, ht, ist, cs)
            assert b == (free.popleft() if free else -1)
            if b >= 0:
                in_use.append(b)
                released.discard(b)
        elif op == "release" and in_use:
            b = in_use.pop(pick % len(in_use))
            _free_list_append_nb(blocks, ist, 0, b)
            free.append(b)
            released.add(b)
        elif op == "adopt" and released:
            b = sorted(released)[pick % len(released)]
            _free_list_remove_nb(blocks, ist, 0, b)
            free.remove(b)
            released.discard(b)
            in_use.append(b)
        assert count_free_list_nb(blocks, ist, 0) == len(free)
        assert free_blocks_nb(ist, 0) == len(free)  # the kept count the metrics report
    assert cs[0]["status"] == 0


def test_popping_a_cached_block_drops_its_prefix_hash():
    blocks, ist, cs, ht = _one_instance_kv(2, 2)
    assert [_pop_nb(blocks, ht, ist, cs) for _ in range(2)] == [0, 1]
    blocks[0, 1]["hash"] = 12345
    blocks[0, 1]["hashed"] = 1
    ht_put_nb(ht, 0, np.uint64(12345), 1)
    _free_list_append_nb(blocks, ist, 0, 1)
    assert _pop_nb(blocks, ht, ist, cs) == 1
    assert ht_get_nb(ht, 0, np.uint64(12345)) == -1
    assert blocks[0, 1]["hashed"] == 0
    assert _pop_nb(blocks, ht, ist, cs) == -1


def test_touching_more_blocks_than_the_working_memory_holds_reports_capacity():
    blocks, ist, cs, ht = _one_instance_kv(5, 2)  # room for 2 of the 5 blocks
    assert [_pop_nb(blocks, ht, ist, cs) for _ in range(3)] == [0, 1, -1]
    assert cs[0]["status"] == L.STATUS_CAPACITY


# ---------------------------------------------------------------- wait queue
wq_ops = st.lists(st.tuples(st.sampled_from(["back", "front", "pop"]), st.integers(0, 99)), max_size=200)


@SETTINGS
@given(st.integers(3, 12), wq_ops)
def test_wait_queue_behaves_like_a_deque(max_len, ops):
    capacity = 2 * max_len + 2  # small, so that pushes at either end recenter often
    wq = np.full((2, capacity), -7, dtype=np.int64)
    ist = np.zeros(2, dtype=S.instance_dt)
    ist["wq_head"] = capacity // 2
    model: deque[int] = deque()
    for op, r in ops:
        if op == "pop":
            if model:
                assert wq[1, ist[1]["wq_head"]] == model.popleft()
                ist[1]["wq_head"] += 1
                ist[1]["wq_len"] -= 1
        elif len(model) < max_len:
            if op == "back":
                wq_push_back_nb(wq, ist, 1, r)
                model.append(r)
            else:
                wq_push_front_nb(wq, ist, 1, r)
                model.appendleft(r)
        head, n = ist[1]["wq_head"], ist[1]["wq_len"]
        assert 0 <= head and head + n <= capacity
        assert wq[1, head:head + n].tolist() == list(model)
    assert np.all(wq[0] == -7)


@SETTINGS
@given(st.sampled_from([L.SCHED_FCFS, L.SCHED_PRIORITY_FCFS, L.SCHED_SJF, L.SCHED_REVERSE_PRIORITY]),
       st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(1, 4)), min_size=1, max_size=30),
       st.randoms(use_true_random=False))
def test_wait_queue_order_is_a_stable_sort_by_the_schedulers_keys(scheduler, reqs, rnd):
    n = len(reqs)
    prio = np.array([float(p) for p, _, _ in reqs])
    arrival = np.array([a for _, a, _ in reqs], dtype=np.int64)
    in_len = np.array([x for _, _, x in reqs], dtype=np.int64)
    id_rank = np.arange(n, dtype=np.int64)
    rnd.shuffle(id_rank)
    queue = list(range(n))
    rnd.shuffle(queue)
    wq = np.zeros((1, n + 4), dtype=np.int64)
    wq[0, 2:2 + n] = queue
    ist = np.zeros(1, dtype=S.instance_dt)
    ist["wq_head"], ist["wq_len"] = 2, n
    order_wait_queue_nb(wq, ist, 0, scheduler, prio, arrival, in_len, id_rank)

    def key(r):
        tie = (arrival[r], id_rank[r])
        if scheduler == L.SCHED_SJF:
            return (in_len[r], *tie)
        if scheduler == L.SCHED_PRIORITY_FCFS:
            return (-prio[r], *tie)
        return (prio[r], *tie)

    expected = queue if scheduler == L.SCHED_FCFS else sorted(queue, key=key)
    assert wq[0, 2:2 + n].tolist() == expected


# ---------------------------------------------------------------- kernel shape rules
def test_kernel_functions_stay_short_with_short_argument_lists():
    """Issue 10's acceptance: no function in kernels/ above 100 lines or 12 positional arguments."""
    too_big = []
    for path in sorted(KERNELS.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef):
                lines = node.end_lineno - node.lineno + 1
                args = len(node.args.posonlyargs) + len(node.args.args)
                if lines > 100 or args > 12:
                    too_big.append(f"{path.name}:{node.lineno} {node.name} ({lines} lines, {args} arguments)")
    assert not too_big


# ---------------------------------------------------------------- one source for enums and names
def test_policy_enums_are_the_kernels_and_agree_with_its_constants():
    assert sim_config.Scheduler is L.Scheduler and sim_config.RoutingPolicy is L.RoutingPolicy
    assert sim_config.PriorityPolicy is L.PriorityPolicy and sim_config.AdmissionPolicy is L.AdmissionPolicy
    prefixes = {"SCHED_": L.Scheduler, "PRIO_": L.PriorityPolicy, "ADMIT_": L.AdmissionPolicy,
                "ROUTE_": L.RoutingPolicy}
    constants = {name: getattr(L, name) for name in dir(L) if name.split("_")[0] + "_" in prefixes}
    for enum in prefixes.values():
        assert sorted(m.value for m in enum) == list(range(len(enum)))  # dense: valid kernel indices
    for name, value in constants.items():
        enum = prefixes[name.split("_")[0] + "_"]
        assert isinstance(value, int) and not isinstance(value, enum)  # plain ints: Numba folds them
        assert value in {m.value for m in enum}, name
    assert len(constants) == sum(len(e) for e in prefixes.values())  # one kernel constant per member


def test_flag_names_round_trip_to_enum_members():
    for names, enum in ((sim_config.SCHEDULER_NAMES, L.Scheduler), (sim_config.PRIORITY_NAMES, L.PriorityPolicy),
                        (sim_config.ADMISSION_NAMES, L.AdmissionPolicy), (sim_config.ROUTING_NAMES, L.RoutingPolicy)):
        assert sorted(names.values()) == sorted(enum)
        for name, member in names.items():
            assert name == member.name.lower().replace("_", "-")
    assert sim_config.SCHEDULER_NAMES["priority-fcfs"] is L.Scheduler.PRIORITY_FCFS
    assert sim_config.ADMISSION_NAMES["always-admit"] is L.AdmissionPolicy.ALWAYS_ADMIT


def test_results_columns_are_the_metric_record_fields():
    assert L.METRIC_COLUMNS == tuple(n for n in L.metrics_dt.names if n != "status")
    assert L.INTEGER_COLUMNS <= set(L.METRIC_COLUMNS)
    assert {"completed_requests", "e2e_p99_ms", "kv_thrashing_rate"} <= set(L.METRIC_COLUMNS)


def test_pack_configs_fills_every_config_field_by_name():
    from blis_sweep.engine import pack_configs
    from blis_sweep.sim_config import RooflineParams, SimConfig

    roofline = RooflineParams(num_layers=32, hidden_dim=4096, num_heads=32, num_kv_heads=8, intermediate_dim=14336,
                              bytes_per_param=2.0, tflops_peak=989.5, bw_peak_tbs=3.35, bw_eff_constant=0.7,
                              t_overhead_micros=50.0, per_layer_overhead=1.5, mfu_prefill=0.6, mfu_decode=0.3,
                              all_reduce_latency=8.0, tp=2)
    cfg = SimConfig(total_kv_blocks=777, block_size=32, scheduler=L.Scheduler.SJF, alpha_coeffs=(1.0, 2.0, 3.0),
                    beta_coeffs=(4.0, 5.0, 6.0), roofline=roofline, routing_policy=L.RoutingPolicy.WEIGHTED,
                    kv_transfer_bandwidth=12.5)
    row = pack_configs([cfg], [3], trace_k=2)[0]
    assert (row["total_kv_blocks"], row["block_size"], row["scheduler"], row["routing_policy"]) == (777, 32, 2, 2)
    assert (row["alpha2"], row["beta0"], row["kv_transfer_bandwidth"]) == (3.0, 4.0, 12.5)
    assert (row["roofline"], row["tp"], row["hidden_dim"], row["all_reduce_latency"]) == (1, 2, 4096.0, 8.0)
    assert (row["workload"], row["trace_k"], row["capacity_scale"]) == (3, 2, 1)
    assert pack_configs([SimConfig()], [0])[0]["roofline"] == 0
