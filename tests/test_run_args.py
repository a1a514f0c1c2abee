"""The reference's `run` flags: parsing, defaults and resolution (cmd/root.go's decision logic)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from blis_sweep.errors import BlisError
from blis_sweep.reference.fitness import parse_fitness_weights
from blis_sweep.go.strconv import parse_float, parse_int
from blis_sweep.reference.policy_bundle import load_policy_bundle
from blis_sweep.reference.args import RunFlags, flag_names, resolve_run
from blis_sweep.reference.argv import parse_run_argv
from blis_sweep.sim_config import INT64_MAX, AdmissionPolicy, PriorityPolicy, RoutingPolicy, Scheduler

ROOT = Path(__file__).resolve().parent.parent
PARITY = Path(__file__).parent / "data" / "parity"
LLAMA = "meta-llama/llama-3.1-8b-instruct"
COEFFS = ["--alpha-coeffs", "232.46,1.75,3357.44", "--beta-coeffs", "5752.7,17.25,5.99"]
TRACES = ["--workload", "traces", "--workload-traces-filepath", "trace.csv"]

# cmd/root.go init() at d25e1935: flag -> default
REFERENCE_DEFAULTS = {
    "seed": 42, "horizon": INT64_MAX, "log": "warn", "defaults-filepath": "defaults.yaml",
    "model-config-folder": "", "hardware-config": "", "workload": "distribution", "workload-traces-filepath": "",
    "total-kv-blocks": 1000000, "max-num-running-reqs": 256, "max-num-scheduled-tokens": 2048,
    "beta-coeffs": (0.0, 0.0, 0.0), "alpha-coeffs": (0.0, 0.0, 0.0), "block-size-in-tokens": 16,
    "max-model-len": 2048, "long-prefill-token-threshold": 0, "model": "", "hardware": "", "tp": 0,
    "vllm-version": "", "rate": 1.0, "max-prompts": 100, "prefix-tokens": 0, "prompt-tokens": 512,
    "prompt-tokens-stdev": 256, "prompt-tokens-min": 2, "prompt-tokens-max": 7000, "output-tokens": 512,
    "output-tokens-stdev": 256, "output-tokens-min": 2, "output-tokens-max": 7000, "num-instances": 1,
    "admission-policy": "always-admit", "admission-latency": 0, "routing-latency": 0,
    "token-bucket-capacity": 10000.0, "token-bucket-refill-rate": 1000.0, "routing-policy": "round-robin",
    "routing-cache-weight": 0.6, "routing-load-weight": 0.4, "priority-policy": "constant", "scheduler": "fcfs",
    "policy-config": "", "fitness-weights": "", "trace-level": "none", "counterfactual-k": 0,
    "summarize-trace": False, "workload-spec": "", "kv-cpu-blocks": 0, "kv-offload-threshold": 0.9,
    "kv-transfer-bandwidth": 100.0, "results-path": "",
}


def resolve(args, cwd=ROOT):
    return resolve_run(parse_run_argv(args), cwd)


def llama(*extra):
    return ["--model", LLAMA, *COEFFS, *TRACES, *extra]


def error_of(args, cwd=ROOT) -> str:
    with pytest.raises(BlisError) as info:
        resolve(args, cwd)
    message = str(info.value)
    assert "\n" not in message
    return message


# ------------------------------------------------------------------ flags

def test_flags_and_defaults_equal_the_reference():
    assert set(flag_names()) == set(REFERENCE_DEFAULTS)
    flags = RunFlags()
    for name, default in REFERENCE_DEFAULTS.items():
        assert getattr(flags, name.replace("-", "_")) == default, name
    assert flags.explicit == set()


@pytest.mark.parametrize("case_path", sorted(PARITY.glob("*/case.json")), ids=lambda p: p.parent.name)
def test_parity_command_lines_parse(case_path):
    case = json.loads(case_path.read_text())
    flags = parse_run_argv(case["reference_cli_args"][1:])
    for name, value in case["flags"].items():
        got = getattr(flags, name.replace("-", "_"))
        assert got == (tuple(value) if isinstance(value, list) else value), name
        assert flags.given(name)


def test_pflag_syntax():
    flags = parse_run_argv(["--tp=0x2", "--horizon", "-5", "--summarize-trace", "--seed", "1_000",
                            "--alpha-coeffs", "1,2", "--alpha-coeffs=3", "--rate", "0x1p-1", "positional"])
    assert (flags.tp, flags.horizon, flags.summarize_trace, flags.seed) == (2, -5, True, 1000)
    assert flags.alpha_coeffs == (1.0, 2.0, 3.0)  # a repeated list flag appends
    assert flags.rate == 0.5
    assert parse_run_argv(["--summarize-trace=false"]).summarize_trace is False
    assert flags.given("routing_policy") is False and flags.given("summarize-trace")
    assert RunFlags(explicit={"routing_policy"}).given("routing-policy")


@pytest.mark.parametrize("args, message", [
    (["--bogus", "1"], "unknown flag: --bogus"),
    (["--total_kv_blocks", "1"], "unknown flag: --total_kv_blocks"),
    (["-model", "x"], "unknown shorthand flag: 'm' in -model"),
    (["--model"], "flag needs an argument: --model"),
    (["--tp", "two"], 'invalid argument "two" for "--tp" flag: strconv.ParseInt: parsing "two": invalid syntax'),
    (["--rate", "1e999"], 'invalid argument "1e999" for "--rate" flag: strconv.ParseFloat: parsing "1e999": '
                          "value out of range"),
    (["--beta-coeffs", "1,,2"], 'invalid argument "1,,2" for "--beta-coeffs" flag: strconv.ParseFloat: '
                                'parsing "": invalid syntax'),
    (["--summarize-trace=maybe"], 'strconv.ParseBool: parsing "maybe": invalid syntax'),
])
def test_bad_command_lines(args, message):
    with pytest.raises(BlisError) as info:
        parse_run_argv(args)
    assert message in str(info.value)


@pytest.mark.parametrize("text, value", [("1", 1.0), ("-2.5e3", -2500.0), (".5", 0.5), ("Inf", math.inf),
                                         ("-infinity", -math.inf), ("0x1.8p1", 3.0), ("1_0.5", 10.5)])
def test_go_parse_float(text, value):
    assert parse_float(text) == value


@pytest.mark.parametrize("text", ["", "abc", "1e", "+nan", "0x10", "1__0", "_1", "1e400"])
def test_go_parse_float_rejects(text):
    with pytest.raises(ValueError):
        parse_float(text)


def test_go_parse_int():
    assert [parse_int(t) for t in ("10", "-0x10", "017", "0b11", "0o7", "1_000")] == [10, -16, 15, 3, 7, 1000]
    for bad in ("08", "9223372036854775808", "1.0", "", "0x"):
        with pytest.raises(ValueError):
            parse_int(bad)


# ------------------------------------------------------------------ coefficients and defaults.yaml

def first_trained_entry(model, tp, gpu, version):
    data = yaml.safe_load((ROOT / "model_configs" / "defaults.yaml").read_text())
    for entry in data["models"]:
        if (entry["id"], entry["tensor_parallelism"], entry["GPU"], entry["vllm_version"]) == (model, tp, gpu, version):
            return entry
    raise AssertionError("no entry")


def test_defaults_lookup_case_resolves_to_trained_coefficients(tmp_path):
    case = json.loads((PARITY / "v06_defaults_lookup" / "case.json").read_text())
    run = resolve(case["reference_cli_args"][1:], tmp_path)  # no ./defaults.yaml: the bundled copy is used
    data = yaml.safe_load((ROOT / "model_configs" / "defaults.yaml").read_text())
    version = data["defaults"]["ibm-granite/granite-3.1-8b-instruct"]["vllm_version"]
    entry = first_trained_entry("ibm-granite/granite-3.1-8b-instruct", 2, "H100", version)
    assert run.config.alpha_coeffs == tuple(float(v) for v in entry["alpha_coeffs"][:3])
    assert run.config.beta_coeffs == tuple(float(v) for v in entry["beta_coeffs"][:3])
    assert run.config.total_kv_blocks == entry["total_kv_blocks"]
    assert (run.model, run.gpu, run.tp, run.vllm_version) == ("ibm-granite/granite-3.1-8b-instruct", "H100", 2, version)
    assert run.config.seed == 7 and run.config.roofline is None
    assert run.workload.kind == "traces" and run.workload.traces_path == tmp_path / "trace.csv"
    assert run.warnings == (f"Finding default values of vLLM version for model={run.model}",
                            f"Using default vLLM version={version}")


def test_lookup_lowercases_model_fills_defaults_and_overrides_total_kv_blocks():
    run = resolve(["--model", "Meta-Llama/Llama-3.1-8B-Instruct", "--total-kv-blocks", "123", *TRACES])
    data = yaml.safe_load((ROOT / "model_configs" / "defaults.yaml").read_text())
    spec = data["defaults"][LLAMA]
    entry = first_trained_entry(LLAMA, spec["tensor_parallelism"], spec["GPU"], spec["vllm_version"])
    assert run.model == LLAMA and run.tp == spec["tensor_parallelism"] and run.gpu == spec["GPU"]
    assert run.config.total_kv_blocks == entry["total_kv_blocks"] != 123  # the reference ignores the flag here
    assert len(run.warnings) == 7  # six lookups, then the override of --total-kv-blocks
    assert run.warnings[-1].startswith(f"--total-kv-blocks 123 is replaced by {entry['total_kv_blocks']},")
    assert run.config.labels["model"] == LLAMA


def test_given_coefficients_skip_the_lookup():
    run = resolve(llama("--total-kv-blocks", "500", "--model", "Some/Model"))
    assert run.model == "Some/Model" and run.config.total_kv_blocks == 500
    assert run.config.alpha_coeffs == (232.46, 1.75, 3357.44) and run.warnings == ()


def test_log_level_controls_warnings_and_is_checked():
    args = ["--model", LLAMA, *TRACES]
    assert resolve([*args, "--log", "error"]).warnings == ()
    assert resolve([*args, "--log", "INFO"]).log_level == "info"
    assert resolve([*args, "--log", "warn"]).log_level == "warning"
    assert "Invalid log level: loud" in error_of([*args, "--log", "loud"])


def test_missing_model():
    assert "LLM name not provided" in error_of([*COEFFS, *TRACES])


def test_explicit_defaults_file_must_exist(tmp_path):
    assert "nope.yaml" in error_of(["--model", LLAMA, *TRACES, "--defaults-filepath", "nope.yaml"], tmp_path)


def test_local_defaults_file_is_preferred(tmp_path):
    (tmp_path / "defaults.yaml").write_text(
        "defaults:\n  my/model:\n    GPU: X1\n    tensor_parallelism: 3\n    vllm_version: v9\n"
        "models:\n- id: my/model\n  GPU: X1\n  tensor_parallelism: 3\n  vllm_version: v9\n"
        "  alpha_coeffs: [1, 2, 3]\n  beta_coeffs: [4, 5, 6]\n  total_kv_blocks: 77\n")
    run = resolve(["--model", "My/Model", *TRACES], tmp_path)
    assert (run.gpu, run.tp, run.config.total_kv_blocks, run.config.beta_coeffs) == ("X1", 3, 77, (4.0, 5.0, 6.0))


# ------------------------------------------------------------------ roofline

def test_unknown_model_without_configs_needs_model_config_folder():
    message = error_of(["--model", "nobody/unknown-model", *TRACES])
    assert message.startswith("no trained coefficients in ") and "model=nobody/unknown-model" in message
    assert "--model-config-folder" in message


def test_roofline_without_hardware_config():
    message = error_of(["--model", LLAMA, *TRACES, "--model-config-folder", "model_configs/llama-3.1-8b-instruct"])
    assert message.startswith("Please provide hardware config path (e.g. hardware_config.json)")


def test_roofline_resolves_model_and_gpu():
    run = resolve(["--model", LLAMA, *TRACES, "--model-config-folder", "model_configs/llama-3.1-8b-instruct",
                   "--hardware-config", "hardware/hardware_config.json", "--hardware", "H100", "--tp", "1",
                   "--total-kv-blocks", "20000"])
    assert run.config.roofline is not None and run.config.roofline.tp == 1
    assert run.config.total_kv_blocks == 20000 and run.config.alpha_coeffs == (0.0, 0.0, 0.0)
    assert run.warnings[0].startswith("Trying roofline approach for model=meta-llama/llama-3.1-8b-instruct, TP=1")


def test_roofline_load_failures_name_the_file():
    base = ["--model", LLAMA, *TRACES, "--hardware", "H100", "--tp", "1"]
    assert error_of([*base, "--model-config-folder", "nowhere", "--hardware-config",
                     "hardware/hardware_config.json"]).startswith("Failed to load model config:")
    assert error_of([*base, "--model-config-folder", "model_configs/llama-3.1-8b-instruct", "--hardware-config",
                     "missing.json"]).startswith("Failed to load hardware config:")


def test_roofline_without_gpu_runs_with_zero_coefficients_like_the_reference():
    run = resolve(["--model", LLAMA, *TRACES, "--model-config-folder", "model_configs/llama-3.1-8b-instruct",
                   "--hardware-config", "hardware/hardware_config.json"])
    assert run.config.roofline is None and run.config.beta_coeffs == (0.0, 0.0, 0.0)
    assert any("all-zero coefficients" in w for w in run.warnings)


def test_coefficient_lists_need_three_values_and_kv_blocks_positive():
    assert error_of(["--model", LLAMA, *TRACES, "--alpha-coeffs", "1,2"]).startswith("--alpha-coeffs needs at least 3")
    assert error_of(llama("--total-kv-blocks", "0")).startswith("--total-kv-blocks must be an integer in [1, ")
    assert error_of(llama("--block-size-in-tokens", "0")).startswith(
        "--block-size-in-tokens must be an integer in [1, ")


# ------------------------------------------------------------------ workloads

def test_workload_choices(tmp_path):
    dist = resolve(["--model", LLAMA, *COEFFS, "--rate", "5", "--max-prompts", "7", "--prefix-tokens", "3"])
    assert dist.workload.kind == "distribution"
    assert (dist.workload.rate_per_s, dist.workload.max_prompts, dist.workload.prefix_tokens) == (5.0, 7, 3)
    assert (dist.workload.prompt_tokens, dist.workload.output_tokens_max) == (512, 7000)
    preset = resolve(["--model", LLAMA, *COEFFS, "--workload", "chatbot"], tmp_path)
    assert preset.workload.kind == "preset" and preset.workload.prompt_tokens == 256
    assert preset.workload.output_tokens_max == 1024 and preset.workload.max_prompts == 100
    (tmp_path / "w.yaml").write_text("aggregate_rate: 5\nclients:\n- rate_fraction: 1\n  arrival: {process: poisson}\n"
                                     "  input_distribution: {type: exponential, params: {mean: 9}}\n"
                                     "  output_distribution: {type: exponential, params: {mean: 9}}\n")
    spec = resolve(["--model", LLAMA, *COEFFS, "--workload-spec", "w.yaml"], tmp_path)
    assert spec.workload.kind == "spec" and spec.workload.spec_path == tmp_path / "w.yaml"


@pytest.mark.parametrize("extra, message", [
    (["--prompt-tokens", "9000"], "prompt-tokens and prompt-tokens-stdev should be in range "
                                  "[prompt-tokens-min, prompt-tokens-max]"),
    (["--prompt-tokens-stdev", "1"], "prompt-tokens and prompt-tokens-stdev should be in range"),
    (["--output-tokens-min", "600"], "output-tokens and output-tokens-stdev should be in range"),
    (["--workload", "poetry"], 'Undefined workload "poetry". Use one among (chatbot, summarization, contentgen, '
                               'multidoc)'),
    (["--rate", "0"], "--rate must be a finite value > 0, got 0.000000"),
    (["--num-instances", "0"], "--num-instances must be an integer in [1, 10000]"),
])
def test_workload_errors(extra, message):
    assert message in error_of(["--model", LLAMA, *COEFFS, *extra])


def test_traces_need_a_path():
    assert error_of(["--model", LLAMA, *COEFFS, "--workload", "traces"]) == (
        "--workload-traces-filepath is required when using --workload traces")


# ------------------------------------------------------------------ policies

@pytest.mark.parametrize("flag, value, message", [
    ("--admission-policy", "maybe", 'Unknown admission policy "maybe". Valid: always-admit, token-bucket, reject-all'),
    ("--routing-policy", "random", 'Unknown routing policy "random". Valid: round-robin, least-loaded, weighted, '
                                   "prefix-affinity, always-busiest"),
    ("--priority-policy", "vip", 'Unknown priority policy "vip". Valid: constant, slo-based, inverted-slo'),
    ("--scheduler", "lifo", 'Unknown scheduler "lifo". Valid: fcfs, priority-fcfs, sjf, reverse-priority'),
    ("--trace-level", "all", 'Unknown trace level "all". Valid: none, decisions'),
])
def test_unknown_policy_lists_valid_values(flag, value, message):
    assert error_of(llama(flag, value)).startswith(message)


def test_policies_resolve_to_enums():
    run = resolve(llama("--admission-policy", "token-bucket", "--routing-policy", "prefix-affinity",
                        "--priority-policy", "slo-based", "--scheduler", "sjf", "--num-instances", "3",
                        "--token-bucket-capacity", "5000", "--admission-latency", "4"))
    c = run.config
    assert (c.admission_policy, c.routing_policy, c.priority_policy, c.scheduler) == (
        AdmissionPolicy.TOKEN_BUCKET, RoutingPolicy.PREFIX_AFFINITY, PriorityPolicy.SLO_BASED, Scheduler.SJF)
    assert (c.num_instances, c.token_bucket_capacity, c.admission_latency) == (3, 5000.0, 4)
    assert run.prints_instance_metrics
    empty = resolve(llama("--admission-policy", "", "--routing-policy", "", "--scheduler", "", "--trace-level", ""))
    assert empty.config.admission_policy == AdmissionPolicy.ALWAYS_ADMIT and empty.config.scheduler == Scheduler.FCFS
    assert not empty.tracing


def test_trace_flags():
    run = resolve(llama("--trace-level", "decisions", "--counterfactual-k", "2", "--summarize-trace"))
    assert run.tracing and run.prints_trace_summary and run.counterfactual_k == 2
    quiet = resolve(llama("--counterfactual-k", "2", "--summarize-trace"))
    assert not quiet.prints_trace_summary
    assert quiet.warnings == ("--counterfactual-k=2 has no effect without --trace-level decisions",
                              "--summarize-trace has no effect without --trace-level decisions")
    assert error_of(llama("--counterfactual-k", "-1")).startswith("--counterfactual-k must be an integer in [0, ")


@pytest.mark.parametrize("extra, message", [
    (["--kv-cpu-blocks", "-3"], "--kv-cpu-blocks must be an integer in [0, 281474976710656] (CPU-tier KV blocks), "
                                "got -3"),
    (["--kv-offload-threshold", "1.5"], "--kv-offload-threshold must be a finite value in [0, 1], got 1.500000"),
    (["--kv-offload-threshold", "NaN"], "--kv-offload-threshold must be a finite value in [0, 1], got NaN"),
    (["--kv-cpu-blocks", "10", "--kv-transfer-bandwidth", "0"],
     "--kv-transfer-bandwidth must be a finite value > 0 when --kv-cpu-blocks > 0, got 0.000000"),
])
def test_kv_flag_errors(extra, message):
    assert error_of(llama(*extra)) == message


def test_tiered_kv_flags_pass_through():
    c = resolve(llama("--kv-cpu-blocks", "300", "--kv-offload-threshold", "0.5", "--kv-transfer-bandwidth", "4")).config
    assert (c.kv_cpu_blocks, c.kv_offload_threshold, c.kv_transfer_bandwidth) == (300, 0.5, 4.0)
    assert resolve(llama("--kv-transfer-bandwidth", "0")).config.kv_transfer_bandwidth == 0.0  # unused: no CPU tier


@pytest.mark.parametrize("cache, load, message", [
    ("NaN", "0.4", "Routing weights must be finite numbers, got cache=NaN, load=0.4"),
    ("0.6", "+Inf", "Routing weights must be finite numbers, got cache=0.6, load=+Inf"),
    ("-0.1", "0.4", "Routing weights must be non-negative, got cache=-0.10, load=0.40"),
    ("0", "0", "Routing weights must have a positive sum, got cache=0.00 + load=0.00 = 0.00"),
])
def test_weighted_routing_weight_errors(cache, load, message):
    assert error_of(llama("--routing-policy", "weighted", "--routing-cache-weight", cache,
                          "--routing-load-weight", load)) == message


def test_weighted_routing_weights_are_recorded_normalised():
    run = resolve(llama("--routing-policy", "weighted", "--routing-cache-weight", "0.6",
                        "--routing-load-weight", "0.2"))
    assert (run.config.routing_cache_weight, run.config.routing_load_weight) == (0.6 / 0.8, 0.2 / 0.8)
    assert run.warnings == ("Routing weights sum to 0.80 (expected 1.0); weights will be auto-normalized "
                            "to cache=0.75, load=0.25",)
    default = resolve(llama("--routing-policy", "weighted")).config
    assert (default.routing_cache_weight, default.routing_load_weight) == (0.6 / 1.0, 0.4 / 1.0)
    other = resolve(llama("--routing-cache-weight", "NaN")).config  # not checked unless weighted
    assert math.isnan(other.routing_cache_weight)


# ------------------------------------------------------------------ policy bundle

def write(tmp_path, text, name="policy.yaml"):
    (tmp_path / name).write_text(text)
    return name


def test_bundle_fills_only_flags_not_given(tmp_path):
    name = write(tmp_path, "admission:\n  policy: token-bucket\n  token_bucket_capacity: 5e3\n"
                           "routing:\n  policy: weighted\n  cache_weight: 0.7\n  load_weight: 0.3\n"
                           "priority:\n  policy: slo-based\nscheduler: sjf\n")
    run = resolve(llama("--policy-config", name, "--scheduler", "fcfs", "--routing-load-weight", "0.4"), tmp_path)
    c = run.config
    assert c.admission_policy == AdmissionPolicy.TOKEN_BUCKET and c.token_bucket_capacity == 5000.0
    assert c.token_bucket_refill_rate == 1000.0  # not in the file: flag default stays
    assert c.routing_policy == RoutingPolicy.WEIGHTED and c.priority_policy == PriorityPolicy.SLO_BASED
    assert c.scheduler == Scheduler.FCFS  # the explicit flag wins
    assert (c.routing_cache_weight, c.routing_load_weight) == (0.7 / 1.1, 0.4 / 1.1)


def test_bundle_given_flag_equal_to_default_still_wins(tmp_path):
    name = write(tmp_path, "routing:\n  policy: least-loaded\n")
    assert resolve(llama("--policy-config", name), tmp_path).config.routing_policy == RoutingPolicy.LEAST_LOADED
    kept = resolve(llama("--policy-config", name, "--routing-policy", "round-robin"), tmp_path)
    assert kept.config.routing_policy == RoutingPolicy.ROUND_ROBIN


@pytest.mark.parametrize("text, message", [
    ("", "Failed to load policy config: parsing policy config: EOF"),
    ("# only a comment\n", "Failed to load policy config: parsing policy config: EOF"),
    ("admission:\n  polcy: always-admit\n",
     "Failed to load policy config: parsing policy config: yaml: unmarshal errors: line 2: field polcy not found "
     "in type sim.AdmissionConfig"),
    ("routing:\n  cache_weight: \"0.5\"\n", "cannot unmarshal !!str `0.5` into float64"),
    ("scheduler: fcfs\nscheduler: sjf\n", 'mapping key "scheduler" already defined at line 1'),
    ("- a\n", "cannot unmarshal !!seq into sim.PolicyBundle"),
    ("admission:\n  policy: maybe\n", 'Invalid policy config: unknown admission policy "maybe"; valid options: '
                                      "always-admit, reject-all, token-bucket"),
    ("scheduler: lifo\n", 'Invalid policy config: unknown scheduler "lifo"; valid options: fcfs, priority-fcfs, '
                          "reverse-priority, sjf"),
    ("admission:\n  token_bucket_capacity: -1\n",
     "Invalid policy config: token_bucket_capacity must be non-negative, got -1.000000"),
    ("routing:\n  load_weight: .nan\n", "Invalid policy config: load_weight must be a finite number, got NaN"),
    ("routing:\n  policy: weighted\n  cache_weight: 0.6\n  load_weight: 0.6\n",
     "Invalid policy config: routing weights must sum to 1.0 (got cache_weight=0.60 + load_weight=0.60 = 1.20)"),
])
def test_bundle_errors(tmp_path, text, message):
    assert message in error_of(llama("--policy-config", write(tmp_path, text)), tmp_path)


def test_bundle_missing_file(tmp_path):
    assert error_of(llama("--policy-config", "absent.yaml"), tmp_path) == (
        "Failed to load policy config: reading policy config: open absent.yaml: no such file or directory")


def test_bundle_yaml_scalars_follow_yaml_1_2(tmp_path):
    bundle = load_policy_bundle(tmp_path / write(tmp_path, "admission:\n  policy: ~\n  token_bucket_capacity: 1e3\n"
                                                           "  token_bucket_refill_rate: 0x10\nscheduler: yes\n"))
    assert bundle.admission_policy == "" and bundle.token_bucket_capacity == 1000.0
    assert bundle.token_bucket_refill_rate == 16.0 and bundle.scheduler == "yes"


# ------------------------------------------------------------------ fitness weights, results path

def test_fitness_weights():
    run = resolve(llama("--fitness-weights", " throughput : 0.5, p99_ttft:0.3,throughput:0.25,speed:1"))
    assert run.fitness_weights == {"throughput": 0.25, "p99_ttft": 0.3, "speed": 1.0}
    assert run.warnings == ('ComputeFitness: unknown metric key "speed", ignoring',)
    assert resolve(llama()).fitness_weights is None
    assert math.isnan(parse_fitness_weights("mean_e2e:NaN")["mean_e2e"])  # the reference accepts NaN weights


@pytest.mark.parametrize("text, message", [
    ("throughput", 'Invalid fitness weights: invalid fitness weight "throughput": expected key:value'),
    ("throughput:0.5,", 'Invalid fitness weights: invalid fitness weight "": expected key:value'),
    ("throughput:fast", 'Invalid fitness weights: invalid fitness weight value for "throughput": '
                        'strconv.ParseFloat: parsing "fast": invalid syntax'),
])
def test_bad_fitness_weights(text, message):
    assert error_of(llama("--fitness-weights", text)) == message


def test_results_path_resolves_against_cwd(tmp_path):
    (tmp_path / "out").mkdir()
    run = resolve(llama("--results-path", "out/results.json"), tmp_path)
    assert run.results_path == "out/results.json" and run.results_file == tmp_path / "out" / "results.json"
    assert resolve(llama(), tmp_path).results_file is None


def test_plain_flags_reach_the_config():
    c = resolve(llama("--seed", "9", "--horizon", "6000000", "--max-num-running-reqs", "8",
                      "--max-num-scheduled-tokens", "512", "--long-prefill-token-threshold", "256",
                      "--block-size-in-tokens", "32", "--routing-latency", "3")).config
    assert (c.seed, c.horizon, c.max_running_reqs, c.max_scheduled_tokens) == (9, 6000000, 8, 512)
    assert (c.long_prefill_token_threshold, c.block_size, c.routing_latency) == (256, 32, 3)
