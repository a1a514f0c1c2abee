"""Sweep files: validation errors (with line numbers), grid expansion, deployment resolution."""
from __future__ import annotations

import textwrap

import pytest

from blis_sweep.data.defaults import coefficients
from blis_sweep.errors import BlisError
from blis_sweep.sweep.resolve import Resolver
from blis_sweep.sweep.spec import parse_grid_spec_text, parse_slo_args
from blis_sweep.data.hardware import gpu_calib
from blis_sweep.data.model_config import auto_kv_blocks, load_model_config
from blis_sweep.data.paths import model_config_dir_for

LLAMA = "meta-llama/llama-3.1-8b-instruct"

BASE = """\
name: t
base:
  model: meta-llama/llama-3.1-8b-instruct
  hardware: H100
  latency_model: roofline
  workload: {preset: chatbot}
  num_requests: 20
  rate: 5
"""


def spec(text: str, base: str = BASE):
    return parse_grid_spec_text(base + textwrap.dedent(text), source="s.yaml")


def resolved(text: str, base: str = BASE):
    s = spec(text, base)
    Resolver(s).validate()
    return s


def error(text: str, base: str = BASE, resolve: bool = False) -> str:
    with pytest.raises(BlisError) as exc:
        (resolved if resolve else spec)(text, base)
    message = str(exc.value)
    assert "\n" not in message
    return message


# ---------------------------------------------------------------- validation errors

def test_unknown_top_level_key_names_its_line():
    assert error("axes:\n  tp: [1]\nbogus: 3\n").startswith("s.yaml:11: bogus: unknown key (allowed: name, ")


def test_unknown_base_key_names_its_line_and_lists_keys():
    msg = error("", base=BASE.replace("  rate: 5\n", "  rate: 5\n  max_batch: 4\n"))
    assert msg.startswith("s.yaml:9: base.max_batch: unknown key (allowed: model, hardware, tp,")


def test_unknown_policy_value_lists_allowed_ones():
    msg = error("axes:\n  scheduler: [fcfs, fifo]\n")
    assert msg == ("s.yaml:10: axes.scheduler.1: unknown value 'fifo' "
                   "(allowed: fcfs, priority-fcfs, sjf, reverse-priority)")
    assert "allowed: round-robin, least-loaded, weighted" in error("axes:\n  routing_policy: [rr]\n")


def test_wrong_types_name_key_and_line():
    assert error("axes:\n  tp: [1, two]\n") == "s.yaml:10: axes.tp.1: must be an integer >= 1, got 'two'"
    assert error("axes:\n  rate: [-1]\n").startswith("s.yaml:10: axes.rate.0: must be a number > 0")
    assert "must be a list of values" in error("axes:\n  tp: 4\n")
    msg = error("", base=BASE.replace("rate: 5", "rate: fast"))
    assert msg.startswith("s.yaml:8: base.rate: must be a finite number > 0")


def test_unknown_preset_and_workload_kind():
    msg = error("", base=BASE.replace("{preset: chatbot}", "{preset: chat}"))
    assert msg.startswith("s.yaml:6: base.workload.preset: unknown value 'chat' (allowed: chatbot, contentgen,")
    msg = error("", base=BASE.replace("{preset: chatbot}", "{synthetic: 1}"))
    assert "base.workload.synthetic: unknown workload kind (allowed: preset, distribution, trace, spec)" in msg
    dist = BASE.replace("{preset: chatbot}", "\n    distribution:\n      prompt_tokens: 10\n      prompt_len: 3")
    assert error("", base=dist).startswith("s.yaml:9: base.workload.distribution.prompt_len: unknown key")


def test_empty_grids_are_errors():
    assert "empty list" in error("axes:\n  tp: []\n")
    assert "axes: is empty" in error("axes: {}\n")
    assert "non-empty list" in error("seeds: []\n")
    assert "replicates: must be an integer >= 1" in error("replicates: 0\n")
    assert "either seeds: or replicates:" in error("seeds: [1]\nreplicates: 2\n")


def test_unknown_axis_and_seed_axis():
    assert error("axes:\n  speed: [1]\n").startswith("s.yaml:10: axes.speed: unknown axis (allowed:")
    assert "use `seeds:` or `replicates:`" in error("axes:\n  seed: [1, 2]\n")


def test_zip_errors():
    msg = error("axes:\n  tp: [1, 2]\n  rate: [1, 2, 3]\nzip:\n  - [tp, rate]\n")
    assert msg == "s.yaml:13: zip.0: zipped axes must have equal lengths, got tp: 2, rate: 3"
    assert "'block_size' is not an axis" in error("axes:\n  tp: [1, 2]\nzip:\n  - [tp, block_size]\n")


def test_duplicate_key_and_yaml_syntax_errors_have_lines():
    assert error("axes:\n  tp: [1]\n  tp: [2]\n") == "s.yaml:11: axes.tp: duplicate key (first given on line 10)"
    assert error("axes:\n  tp: [1, 2\n").startswith("s.yaml:")


def test_missing_required_key():
    assert "missing required key model" in error("", base=BASE.replace("  model: meta-llama/llama-3.1-8b-instruct\n",
                                                                        ""))


def test_unknown_gpu_and_model_list_available_ones():
    msg = error("axes:\n  hardware: [H100, H800]\n", resolve=True)
    assert msg.startswith("s.yaml:10: hardware: GPU 'H800' not found in hardware config (available: A100-80GB,")
    msg = error("axes:\n  model: [acme/llm-1]\n", resolve=True)
    assert msg.startswith("s.yaml:10: model: no model config for 'acme/llm-1'")
    assert "llama-3.1-8b-instruct" in msg


def test_blackbox_missing_coefficients_name_existing_combinations():
    base = BASE.replace("latency_model: roofline", "latency_model: blackbox")
    msg = error("axes:\n  tp: [1, 8]\n", base=base, resolve=True)
    assert msg.startswith("s.yaml:10: tp: no trained coefficients for meta-llama/llama-3.1-8b-instruct with "
                          "hardware=H100, tp=8 (available: A100-80 tp=1, A100-80 tp=2, A100-80 tp=4, H100 tp=1,")
    msg = error("", base=base.replace(LLAMA, "acme/llm-1"), resolve=True)
    assert "no trained coefficients for 'acme/llm-1' in defaults.yaml (models with coefficients:" in msg


def test_distribution_ranges_checked_per_point():
    base = BASE.replace("{preset: chatbot}", "{distribution: {prompt_tokens: 100, prompt_tokens_max: 200}}")
    msg = error("axes:\n  workload.distribution.prompt_tokens_max: [500, 50]\n", base=base, resolve=True)
    assert msg.startswith("s.yaml:10: workload: prompt_tokens (100) and prompt_tokens_stdev (256) must lie in")


def test_dotted_workload_axis_must_match_the_workload_kind():
    msg = error("axes:\n  workload.distribution.prompt_tokens: [10]\n")
    assert msg.startswith("s.yaml:10: axes.workload.distribution.prompt_tokens: applies to distribution workloads")


def test_trace_must_exist(tmp_path):
    base = BASE.replace("{preset: chatbot}", f"{{trace: {tmp_path / 'none.csv'}}}")
    assert "does not exist" in error("", base=base, resolve=True)


def test_slo_validation():
    assert "unknown SLO metric 'ttft_p100'" in error("slo: {ttft_p100: 3}\n")
    assert "must be a finite number >= 0" in error("slo: {ttft_p99_ms: -3}\n")
    assert parse_slo_args(["ttft_p99_ms=200", "tpot_p99_ms = 20"]) == {"ttft_p99_ms": 200.0, "tpot_p99_ms": 20.0}
    with pytest.raises(BlisError, match="METRIC=BOUND"):
        parse_slo_args(["ttft_p99_ms"])
    with pytest.raises(BlisError, match="bound must be a number"):
        parse_slo_args(["ttft_p99_ms=fast"])


# ---------------------------------------------------------------- expansion

def test_grid_is_the_product_of_axes_with_zip_groups_as_one_axis():
    s = spec("""\
        axes:
          tp: [1, 2]
          rate: [5, 10, 20]
          max_num_running_reqs: [8, 16, 32]
          scheduler: [fcfs, sjf]
        zip:
          - [rate, max_num_running_reqs]
        replicates: 3
        """)
    assert [g.keys for g in s.groups] == [("tp",), ("rate", "max_num_running_reqs"), ("scheduler",)]
    assert s.num_points == 2 * 3 * 2 and s.num_configs == 36 and s.seeds == [42, 43, 44]
    points = [s.point(p)[0] for p in range(s.num_points)]
    assert [(v["tp"], v["rate"], v["max_num_running_reqs"], v["scheduler"]) for v in points[:4]] == [
        (1, 5.0, 8, "fcfs"), (1, 5.0, 8, "sjf"), (1, 10.0, 16, "fcfs"), (1, 10.0, 16, "sjf")]
    assert {(v["rate"], v["max_num_running_reqs"]) for v in points} == {(5.0, 8), (10.0, 16), (20.0, 32)}
    # distinct() respects zip groups: no (rate, max_num_running_reqs) pair that the grid lacks
    pairs = {(v["rate"], v["max_num_running_reqs"]) for v, _ in s.distinct(("rate", "max_num_running_reqs"))}
    assert pairs == {(5.0, 8), (10.0, 16), (20.0, 32)}
    assert points[0]["num_requests"] == 20 and points[0]["block_size"] == 16  # base and defaults


def test_explicit_seeds_and_no_axes():
    s = spec("seeds: [7, 3]\n")
    assert s.num_points == 1 and s.num_configs == 2 and s.seeds == [7, 3]


def test_workload_axes_whole_and_dotted():
    base = BASE.replace("{preset: chatbot}", "{distribution: {output_tokens: 100, output_tokens_stdev: 50}}")
    s = spec("axes:\n  workload.distribution.prompt_tokens: [300, 400]\n  num_requests: [10, 20]\n", base)
    w = [s.point(p)[0]["workload"]["distribution"] for p in range(s.num_points)]
    assert [d["prompt_tokens"] for d in w] == [300, 300, 400, 400]
    assert all(d["output_tokens"] == 100 and d["prompt_tokens_min"] == 2 for d in w)
    s = spec("axes:\n  workload: [{preset: chatbot}, summarization, {trace: t.csv}]\n")
    assert [s.point(p)[0]["workload"] for p in range(2)] == [{"preset": "chatbot"}, {"preset": "summarization"}]
    assert s.point(2)[0]["workload"]["trace"].endswith("t.csv")


def test_spec_hash_ignores_layout_but_not_values():
    a = spec("axes:\n  tp: [1, 2]\n  rate: [1, 2]\n")
    b = parse_grid_spec_text("base:\n  rate: 5\n  num_requests: 20\n  workload: {preset: chatbot}\n"
                             "  latency_model: roofline\n  hardware: H100\n  model: " + LLAMA +
                             "\nname: t\naxes: {tp: [1, 2], rate: [1.0, 2]}\n", source="b.yaml")
    assert a.spec_hash() == b.spec_hash()
    assert a.spec_hash() != spec("axes:\n  tp: [1, 2]\n  rate: [1, 3]\n").spec_hash()


# ---------------------------------------------------------------- deployments

def test_auto_kv_grows_with_tp_and_matches_memory_sizing():
    s = resolved("axes:\n  tp: [1, 2, 4, 8]\n")
    r = Resolver(s)
    mc = load_model_config(model_config_dir_for(LLAMA))
    blocks = [r.deployment(*s.point(p)).total_kv_blocks for p in range(4)]
    assert blocks == [auto_kv_blocks(mc, 80, tp, 16, 0.9) for tp in (1, 2, 4, 8)]
    assert blocks[0] < blocks[1] < blocks[2] < blocks[3] and blocks[1] > 2 * blocks[0]
    assert r.deployment(*s.point(0)).roofline.tp == 1


def test_weights_that_do_not_fit_are_infeasible_not_errors():
    base = BASE.replace(LLAMA, "meta-llama/llama-3.1-70b-instruct").replace("H100", "L40S")
    s = resolved("axes:\n  tp: [1, 2, 4]\n", base)
    r = Resolver(s)
    deps = [r.deployment(*s.point(p)) for p in range(3)]
    assert deps[0].infeasible and deps[0].total_kv_blocks == 0 and "GiB" in deps[0].infeasible
    assert deps[2].infeasible is None and deps[2].total_kv_blocks > 0
    assert gpu_calib("L40S").memory_gib == 48


def test_blackbox_uses_defaults_coefficients_and_kv_blocks():
    base = BASE.replace("latency_model: roofline", "latency_model: blackbox")
    s = resolved("axes:\n  tp: [1, 2]\n  hardware: [H100, A100-80]\n", base)
    r = Resolver(s)
    for p in range(s.num_points):
        values, lines = s.point(p)
        dep = r.deployment(values, lines)
        alpha, beta, blocks = coefficients(LLAMA, values["tp"], values["hardware"], "vllm/vllm-openai:v0.8.4")
        assert (dep.alpha, dep.beta, dep.total_kv_blocks) == (alpha[:3], beta[:3], blocks)
        assert dep.roofline is None and dep.kv_blocks_source == "defaults"


def test_explicit_coefficients_and_kv_blocks():
    base = BASE.replace("latency_model: roofline", "latency_model: blackbox")
    s = resolved("axes:\n  total_kv_blocks: [5000, auto]\nseeds: [1]\n",
                 base + "  alpha_coeffs: [1, 2, 3]\n  beta_coeffs: [4, 5, 6, 7]\n")
    r = Resolver(s)
    d0, d1 = (r.deployment(*s.point(p)) for p in range(2))
    assert d0.alpha == (1.0, 2.0, 3.0) and d0.beta == (4.0, 5.0, 6.0) and d0.total_kv_blocks == 5000
    assert d1.total_kv_blocks == 29205 and d1.kv_blocks_source == "defaults"  # trained entry's capacity
    assert "applies to latency_model: blackbox only" in error("", base=BASE + "  alpha_coeffs: [1, 2, 3]\n",
                                                                resolve=True)


def test_zip_groups_list_explicit_deployments_with_repeated_values():
    s = spec("""\
        axes:
          tp: [1, 2, 2, 4]
          hardware: [H100, H100, A100-80, A100-80]
        zip:
          - [tp, hardware]
        """)
    assert s.num_points == 4
    assert [(s.point(p)[0]["tp"], s.point(p)[0]["hardware"]) for p in range(4)] == [
        (1, "H100"), (2, "H100"), (2, "A100-80"), (4, "A100-80")]
    # a repeated tuple is still an error, and so is a repeated value of an axis outside a zip group
    msg = error("axes:\n  tp: [1, 2, 2]\n  hardware: [H100, H100, H100]\nzip:\n  - [tp, hardware]\n")
    assert msg.startswith("s.yaml:") and "duplicate setting [2, 'H100'] of zip group [tp, hardware]" in msg
    assert "duplicate value 2" in error("axes:\n  tp: [1, 2, 2]\n")


def test_steady_state_and_attainment_blocks():
    s = spec("steady_state: {warmup: 0.1, max_backlog_growth: 0.05}\nslo:\n  ttft_p99_ms: 300\n"
             "  attainment: {ttft_ms: 200, tpot_ms: 50, min_fraction: 0.95}\n")
    assert s.steady.warmup == 0.1 and s.steady.cooldown == "auto" and s.steady.max_backlog_growth == 0.05
    assert s.slo == {"ttft_p99_ms": 300.0} and s.attainment.tpot_ms == 50.0 and s.attainment.min_fraction == 0.95
    # attainment changes what a run's rows hold, percentile bounds do not
    plain_ = spec("slo: {ttft_p99_ms: 300}\n")
    assert spec("slo: {ttft_p99_ms: 900}\n").spec_hash() == plain_.spec_hash() != s.spec_hash()
    assert error("steady_state: {warmup: 0.8}\n").startswith("s.yaml:9: steady_state.warmup: must be auto or a fraction")
    assert "slo.attainment.min_fraction: must be in (0, 1]" in error("slo:\n  attainment: {ttft_ms: 1, min_fraction: 2}\n")
