"""Workload specs (`--workload-spec`): Go's exponential stream, the reference's samplers, validation.

Exactness of whole generated workloads is checked by the w* parity cases (tests/test_parity.py);
here: the building blocks against values printed by Go, and every rejection path.
"""
import json
import math
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blis_sweep.errors import BlisError
from blis_sweep.go.rand import go_tables
from blis_sweep.kernels.go_rand import go_exp_float64_nb, go_seed_nb
from blis_sweep.workloads.spec import load_workload_spec, parse_workload_spec_text
from blis_sweep.workloads.spec_gen import (
    empirical_cdf, generate_spec_workload, go_exp_tables, weibull_shape, workload_gen_seed,
)
from tests.parity_cases import PARITY_DIR

# rand.New(rand.NewSource(seed)).ExpFloat64() x 5, printed by Go 1.22
GO_EXP = {
    42: [0.49573841490239784, 0.13054718375896252, 0.1532334522090758, 0.3384463626094486, 0.11596423879404183],
    7: [0.8335252901937007, 0.8086169775385368, 0.2967855665893323, 1.5112451113964636, 1.2468643222293456],
    -5: [0.44309799956349655, 1.0671164752043933, 0.060095663083202244, 2.6133106367611667, 1.3346412552725448],
}


@pytest.mark.parametrize("seed", sorted(GO_EXP))
def test_exp_float64_equals_go(seed):
    cooked = go_tables()[0]
    ke, we, fe = go_exp_tables()
    state = go_seed_nb(seed, cooked)
    assert [go_exp_float64_nb(state, ke, we, fe) for _ in range(5)] == GO_EXP[seed]


def test_hundred_thousand_exponentials_sum_like_go():
    """Reaches the ziggurat's tail and wedge branches, bit for bit."""
    cooked = go_tables()[0]
    ke, we, fe = go_exp_tables()
    state = go_seed_nb(42, cooked)
    total = 0.0
    for _ in range(100_000):
        total += go_exp_float64_nb(state, ke, we, fe)
    assert total == 100054.33500197234


def test_workload_gen_seed_is_seed_xor_fnv1a():
    assert workload_gen_seed(11) == workload_gen_seed(0) ^ 11
    assert workload_gen_seed(-1) == ~workload_gen_seed(0)


def test_empirical_cdf_follows_the_reference():
    # total over every weight (zero ones included), zero weights dropped, last entry 1
    values, cdf = empirical_cdf(((300, 0.2), (32, 0.5), (96, 0.0), (5, 0.3)))
    assert values == [5, 32, 300]
    assert cdf[:2] == [0.3, 0.3 + 0.5] and cdf[-1] == 1.0


@pytest.mark.parametrize("cv", [0.05, 0.5, 1.0, 2.0, 10.4])
def test_weibull_shape_reaches_the_target_cv(cv):
    k = weibull_shape(cv)
    g1, g2 = math.gamma(1 + 1 / k), math.gamma(1 + 2 / k)
    assert abs(math.sqrt(g2 / g1 ** 2 - 1) - cv) < 0.001


def test_weibull_shape_stops_at_the_bracket_end_below_reach():
    """cv 0.01 needs k > 100: the reference's bisection ends at the top of [0.1, 100] (w09 covers it exactly)."""
    assert 99.9 < weibull_shape(0.01) <= 100.0


CLIENT = """
- tenant_id: c{i}
  rate_fraction: {frac}
  arrival: {{process: {process}, cv: {cv}}}
  input_distribution: {{type: gaussian, params: {{mean: {mean}, std_dev: 40, min: 1, max: 900}}}}
  output_distribution: {{type: exponential, params: {{mean: 30}}}}
  prefix_group: {group}
"""


@settings(max_examples=25, deadline=None)
@given(st.integers(-2**40, 2**40), st.lists(st.tuples(
    st.floats(0.05, 5), st.sampled_from(["poisson", "gamma", "weibull"]), st.floats(0.2, 4),
    st.integers(10, 600), st.sampled_from(["", "a", "b"])), min_size=1, max_size=4))
def test_generated_requests_are_ordered_and_share_their_group_prefix(seed, clients):
    text = f"seed: {seed}\naggregate_rate: 30\nhorizon: 3000000\nclients:" + "".join(
        CLIENT.format(i=i, frac=f, process=p, cv=cv, mean=m, group=g or "''")
        for i, (f, p, cv, m, g) in enumerate(clients))
    spec = parse_workload_spec_text(text)
    w = generate_spec_workload(spec, 10_000_000)
    again = generate_spec_workload(spec, 10_000_000)
    assert np.array_equal(w.arrival_ticks, again.arrival_ticks) and np.array_equal(w.prefix_hash, again.prefix_hash)
    assert np.all(np.diff(w.arrival_ticks) >= 0) and np.all(w.arrival_ticks > 0)
    assert np.all(w.arrival_ticks < 3_000_000)
    group_of = {f"c{i}": g for i, (_, _, _, _, g) in enumerate(clients)}
    first50 = {}  # group -> hashes of the first 50 input tokens of its requests
    ungrouped = set()
    for r, tenant in enumerate(w.labels.tenant_list()):
        group = group_of[tenant]
        assert w.input_len[r] >= (51 if group else 1)
        if group:
            first50.setdefault(group, set()).add(int(w.prefix_hash[w.seq_offset[r] + 50]))
        elif w.input_len[r] >= 50:
            ungrouped.add(int(w.prefix_hash[w.seq_offset[r] + 50]))
    assert all(len(hashes) == 1 for hashes in first50.values())
    shared = [h for hashes in first50.values() for h in hashes]
    assert len(set(shared)) == len(shared) and not ungrouped & set(shared)


def test_client_order_breaks_arrival_ties_and_ids_follow_the_merge():
    w = generate_spec_workload(load_workload_spec(PARITY_DIR / "w07_reasoning_multi_turn" / "workload_spec.yaml"),
                               30_000_000)
    # both multi-turn sessions start at t=0: the earlier client in the file comes first
    zero = np.flatnonzero(w.arrival_ticks == 0)
    assert zero.tolist() == [0, 1]
    assert [w.labels.slo_class_list()[r] for r in zero] == ["batch", "realtime"]


# ----------------------------------------------------------------------------- rejections

GOOD_CLIENT = """
- rate_fraction: 1
  arrival: {process: poisson}
  input_distribution: {type: exponential, params: {mean: 50}}
  output_distribution: {type: exponential, params: {mean: 50}}
"""


@pytest.mark.parametrize("text, expected", [
    ("aggregate_rate: 5\nclients:" + GOOD_CLIENT.replace("poisson", "burst"),
     "4: clients[0].arrival.process: unknown arrival process 'burst'"),
    ("aggregate_rate: 5\nclients:" + GOOD_CLIENT.replace("rate_fraction: 1", "rate_fraction: -1"),
     "3: clients[0].rate_fraction: must be a finite number > 0"),
    ("aggregate_rate: 5\nclients:" + GOOD_CLIENT.replace("poisson}", "weibull, cv: 12}"),
     "clients[0].arrival.cv: weibull cv must be in [0.01, 10.4]"),
    ("aggregate_rate: 5\nclients:" + GOOD_CLIENT.replace("poisson}", "gamma, cv: 0}"),
     "clients[0].arrival.cv: must be a finite number > 0"),
    ("aggregate_rate: 5\nclients:" + GOOD_CLIENT.replace("poisson}", "gamma, cv: .inf}"),
     "clients[0].arrival.cv: must be a finite number > 0"),
    ("aggregate_rate: 5\nclients:" + GOOD_CLIENT.replace("type: exponential, params: {mean: 50}}\n  output",
                                                         "type: empirical, file: pdf.csv}\n  output"),
     "clients[0].input_distribution.params: an empirical distribution needs inline params"),
    ("aggregate_rate: 5\nclients:" + GOOD_CLIENT.replace("type: exponential, params: {mean: 50}}\n  output",
                                                         "type: zipf, params: {s: 1}}\n  output"),
     "clients[0].input_distribution.type: unknown distribution type 'zipf'"),
    ("aggregate_rate: 5\nclients:" + GOOD_CLIENT.replace("{mean: 50}}\n  output", "{mean: .nan}}\n  output"),
     "clients[0].input_distribution.params.mean: must be a finite number"),
    ("aggregate_rate: 5\nclients:" + GOOD_CLIENT.replace("{mean: 50}}\n  output", "{mean: 50, sd: 3}}\n  output"),
     "params.sd: unknown parameter of exponential"),
    ("aggregate_rate: 5\nclients:" + GOOD_CLIENT.replace("type: exponential, params: {mean: 50}}\n  output",
                                                         "type: gaussian, params: {mean: 5, min: 1, max: 9}}\n  output"),
     "clients[0].input_distribution.params: missing std_dev"),
    ("aggregate_rate: 5\nclients:" + GOOD_CLIENT.replace("type: exponential, params: {mean: 50}}\n  output",
                                                         "type: empirical, params: {10: 1, x: 2}}\n  output"),
     "params.x: keys must be integer token counts"),
    ("aggregate_rate: 5\nclients:" + GOOD_CLIENT.replace("type: exponential, params: {mean: 50}}\n  output",
                                                         "type: empirical, params: {10: 0}}\n  output"),
     "needs at least one positive weight"),
    ("aggregate_rate: 5\nclients:" + GOOD_CLIENT + "  slo_class: gold\n", "clients[0].slo_class: unknown slo_class"),
    ("aggregate_rate: 5\nclients:" + GOOD_CLIENT + "  priority: 3\n", "clients[0].priority: unknown field"),
    ("aggregate_rate: 5\nclients:" + GOOD_CLIENT + "  multimodal:\n    image_distribution: {type: exponential, "
     "params: {mean: 5}}\n", "has no effect without image_count_distribution"),
    ("aggregate_rate: 0\nclients:" + GOOD_CLIENT, "1: aggregate_rate: must be a finite number > 0"),
    ("aggregate_rate: .nan\nclients:" + GOOD_CLIENT, "aggregate_rate: must be a finite number > 0"),
    ("aggregate_rate: 5\nclients: []\n", "at least one client or servegen_data is required"),
    ("aggregate_rate: 5\ncategory: chat\nclients:" + GOOD_CLIENT, "unknown category 'chat'"),
    ("aggregate_rate: 5\nhorizon: abc\nclients:" + GOOD_CLIENT, "2: horizon: must be an integer"),
    ("aggregate_rate: 5\nclients:" + GOOD_CLIENT + "servegen_data: {path: sg}\n", "servegen_data: is ignored"),
])
def test_bad_spec_is_one_line_naming_file_line_and_field(text, expected):
    with pytest.raises(BlisError) as exc:
        parse_workload_spec_text(text, source="s.yaml")
    message = str(exc.value)
    assert "\n" not in message and message.startswith("s.yaml")
    assert expected in message, message


def test_unbounded_generation_is_refused(tmp_path):
    spec = parse_workload_spec_text("aggregate_rate: 5\nclients:" + GOOD_CLIENT, source="s.yaml")
    with pytest.raises(BlisError, match="no `horizon` and --horizon is unbounded"):
        generate_spec_workload(spec, (1 << 63) - 1)


def _servegen(tmp_path, trace: str, dataset) -> str:
    folder = tmp_path / "sg"
    folder.mkdir()
    (folder / "chunk-0-trace.csv").write_text(trace)
    if dataset is not None:
        (folder / "chunk-0-dataset.json").write_text(json.dumps(dataset))
    return "aggregate_rate: 5\nhorizon: 1000000\nservegen_data: {path: sg}\n"


@pytest.mark.parametrize("trace, dataset, expected", [
    ("0,1.0,1.0,Gamma\n", None, "dataset"),
    ("0,1.0,1.0,Gamma\n", {"0": {"input_tokens": "{10: 1}"}}, "no window inside the span has both"),
    ("0,1.0,1.0,Gamma\n", {"0": {"input_tokens": "10: 1", "output_tokens": "{5: 1}"}}, "expected a dict string"),
    ("0,1.0,0.0,Gamma\n", {"0": {"input_tokens": "{10: 1}", "output_tokens": "{5: 1}"}}, "must be a finite number > 0"),
    ("0,1.0,20,Weibull\n", {"0": {"input_tokens": "{10: 1}", "output_tokens": "{5: 1}"}}, "weibull cv"),
    ("0,0.0,1.0,Gamma\n", None, "no active chunk"),
    ("0,1.0,1.0,Gamma\n0,1\n", None, "record 2 has 2 fields"),
])
def test_bad_servegen_data_is_refused(tmp_path, trace, dataset, expected):
    text = _servegen(tmp_path, trace, dataset)
    spec = parse_workload_spec_text(text, source="s.yaml", base_dir=tmp_path)
    with pytest.raises(BlisError) as exc:
        generate_spec_workload(spec, 1_000_000)
    assert expected in str(exc.value) and "\n" not in str(exc.value)


# ----------------------------------------------------------------------------- through the CLI

RUN = ["run", "--workload-spec", "spec.yaml", "--model", "meta-llama/llama-3.1-8b-instruct",
       "--alpha-coeffs", "232.46,1.75,3357.44", "--beta-coeffs", "5752.7,17.25,5.99", "--total-kv-blocks", "7463",
       "--horizon", "5000000", "--results-path", "out.json"]


@pytest.mark.parametrize("text, expected", [
    ("aggregate_rate: 5\nclients:" + GOOD_CLIENT.replace("poisson", "hawkes"), "unknown arrival process 'hawkes'"),
    ("aggregate_rate: 5\nclients:" + GOOD_CLIENT.replace("rate_fraction: 1", "rate_fraction: 0"),
     "rate_fraction: must be a finite number > 0"),
    ("aggregate_rate: 5\nclients:" + GOOD_CLIENT.replace("poisson}", "weibull, cv: 0.001}"), "weibull cv must be in"),
    ("aggregate_rate: 5\nclients:" + GOOD_CLIENT.replace("type: exponential, params: {mean: 50}}\n  output",
                                                         "type: empirical}\n  output"), "needs inline params"),
    ("aggregate_rate: 5\nclients:" + GOOD_CLIENT.replace("type: exponential, params: {mean: 50}}\n  output",
                                                         "type: uniform, params: {a: 1}}\n  output"),
     "unknown distribution type 'uniform'"),
    ("aggregate_rate: 5\nservegen_data: {path: no_such_dir}\n", "no chunk-*-trace.csv files found in no_such_dir"),
])
def test_cli_rejects_bad_specs_before_writing_anything(tmp_path, text, expected):
    (tmp_path / "spec.yaml").write_text(text)
    proc = subprocess.run(["blis-sweep", *RUN], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: spec.yaml") and proc.stderr.count("\n") == 1, proc.stderr
    assert expected in proc.stderr
    assert proc.stdout == "" and not (tmp_path / "out.json").exists()


def test_cli_writes_slo_class_and_tenant_per_request(tmp_path):
    (tmp_path / "spec.yaml").write_text("seed: 3\naggregate_rate: 20\nclients:" + GOOD_CLIENT
                                        + "  slo_class: realtime\n  tenant_id: acme\n" + GOOD_CLIENT)
    proc = subprocess.run(["blis-sweep", *RUN], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    requests = json.loads((tmp_path / "out.json").read_text())["requests"]
    labelled = [r for r in requests if "slo_class" in r]
    assert labelled and all(r["slo_class"] == "realtime" and r["tenant_id"] == "acme" for r in labelled)
    assert any("slo_class" not in r and "tenant_id" not in r for r in requests)  # empty labels are omitted
