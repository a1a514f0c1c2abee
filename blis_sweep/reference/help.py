"""`blis-sweep run --help`: every flag of the reference's `run`, what it does, its default and range."""
import dataclasses
import textwrap

from blis_sweep.limits import INT_RANGES, RUN_FLAG_KEYS
from blis_sweep.reference.args import RunFlags

# flag (attribute name) -> what it does. Every RunFlags field must have an entry (tests check it).
FLAG_HELP = {
    "seed": "seed of the generated workload's random numbers",
    "horizon": "stop the simulation at this simulated time (µs); requests arriving later are not simulated",
    "log": "log level: panic, fatal, error, warn, info, debug or trace (warnings show at warn and above)",
    "defaults_filepath": "defaults.yaml with trained coefficients, default GPU/TP per model and workload "
                         "presets (the bundled copy when ./defaults.yaml is absent)",
    "model_config_folder": "folder holding the model's HuggingFace config.json (roofline latency model)",
    "hardware_config": "GPU calibration JSON (roofline latency model)",
    "workload": "where requests come from: distribution (the --prompt-tokens... flags), traces (a CSV file) "
                "or a preset: chatbot, summarization, contentgen, multidoc",
    "workload_traces_filepath": "trace CSV to replay with --workload traces",
    "total_kv_blocks": "KV-cache blocks per instance (replaced by the stored value when coefficients come "
                       "from defaults.yaml; a warning says so)",
    "max_num_running_reqs": "most requests in a running batch",
    "max_num_scheduled_tokens": "most new tokens scheduled in one step",
    "beta_coeffs": "step-time coefficients: constant, per prefill token, per decode token (µs); "
                   "at least 3 comma-separated numbers",
    "alpha_coeffs": "queueing and output-processing coefficients (µs); at least 3 comma-separated numbers",
    "block_size_in_tokens": "tokens per KV-cache block",
    "max_model_len": "accepted for compatibility; unused (as in the reference)",
    "long_prefill_token_threshold": "prefills longer than this are chunked (0: never)",
    "model": "model id, e.g. meta-llama/llama-3.1-8b-instruct (required)",
    "hardware": "GPU name, e.g. H100 (default: the model's entry in defaults.yaml)",
    "tp": "tensor parallelism (0: the model's default from defaults.yaml)",
    "vllm_version": "vLLM version of the trained coefficients (default: the model's entry in defaults.yaml)",
    "rate": "requests per second of a generated workload (constant spacing)",
    "max_prompts": "number of requests of a generated workload",
    "prefix_tokens": "tokens of a prefix shared by every generated request",
    "prompt_tokens": "mean prompt length (tokens) of a distribution workload",
    "prompt_tokens_stdev": "standard deviation of the prompt length",
    "prompt_tokens_min": "shortest prompt",
    "prompt_tokens_max": "longest prompt",
    "output_tokens": "mean output length (tokens) of a distribution workload",
    "output_tokens_stdev": "standard deviation of the output length",
    "output_tokens_min": "shortest output",
    "output_tokens_max": "longest output",
    "num_instances": "instances in the cluster behind the router",
    "admission_policy": "admission: always-admit, token-bucket or reject-all",
    "admission_latency": "delay between arrival and admission (µs)",
    "routing_latency": "delay between admission and routing (µs)",
    "token_bucket_capacity": "token-bucket admission: bucket size (input tokens)",
    "token_bucket_refill_rate": "token-bucket admission: tokens added per second",
    "routing_policy": "routing: round-robin, least-loaded, weighted, prefix-affinity or always-busiest",
    "routing_cache_weight": "weighted routing: weight of free KV blocks",
    "routing_load_weight": "weighted routing: weight of queue depth",
    "priority_policy": "request priority: constant, slo-based or inverted-slo",
    "scheduler": "wait-queue order: fcfs, priority-fcfs, sjf or reverse-priority",
    "policy_config": "YAML bundle of policy settings; flags given on the command line take precedence",
    "fitness_weights": "print a fitness score from metric:weight pairs, comma-separated (metrics: throughput, "
                       "tokens_per_sec, p99_ttft, p50_ttft, mean_ttft, p99_e2e, p50_e2e, mean_e2e)",
    "trace_level": "decision tracing: none or decisions",
    "counterfactual_k": "with --trace-level decisions: routing candidates recorded per decision",
    "summarize_trace": "with --trace-level decisions: print a summary of the decisions",
    "workload_spec": "multi-client workload YAML of the reference",
    "kv_cpu_blocks": "CPU-tier KV blocks per instance (0: no tiered cache)",
    "kv_offload_threshold": "GPU KV usage above which cached blocks move to the CPU tier (0 to 1)",
    "kv_transfer_bandwidth": "CPU-to-GPU transfer rate in tokens per µs (reloading a block takes "
                             "ceil(block size / rate) µs)",
    "results_path": "also write the metrics and per-request results to this JSON file",
}


def _value_hint(field: dataclasses.Field) -> str:
    kind = str(field.type)
    if kind == "bool":
        return ""
    if kind.startswith("tuple"):
        return " NUMS"
    return {"int": " INT", "float": " NUM"}.get(kind, " TEXT")


def run_help_text() -> str:
    lines = ["Usage: blis-sweep run [flags]", "",
             "Runs one configuration exactly as the reference simulator's `run` does and prints the same output.",
             "Flags take `--name value` or `--name=value`; lists are comma-separated.", "", "Flags:"]
    for field in dataclasses.fields(RunFlags):
        if field.name == "explicit":
            continue
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        name = f"--{field.name.replace('_', '-')}{_value_hint(field)}"
        if isinstance(default, tuple):
            default = ",".join(f"{v:g}" for v in default)
        notes = [f"default: {default}" if default != "" else "default: none"]
        key = RUN_FLAG_KEYS.get(field.name)
        if key is not None:
            rng = INT_RANGES[key]
            notes.append(f"range: {rng.lo}..{rng.hi}" + (" or 0" if field.name == "tp" else ""))
        text = f"{FLAG_HELP.get(field.name, '')} ({'; '.join(notes)})"
        lines += textwrap.wrap(text, width=110, initial_indent=f"  {name:<34} ", subsequent_indent=" " * 37)
    lines += ["", "Bad input ends with one `error:` line on stderr and exit status 2 before anything runs."]
    return "\n".join(lines)
