"""`blis-sweep run`: the reference's `run` flags and how they resolve into one SimConfig.

`RunFlags` mirrors every flag of the reference's `run` command (same names with
underscores, same defaults). `resolve_run` applies the reference's decision logic in
its order, so that the first error a bad command line meets is the reference's:
coefficient lookup in defaults.yaml, the roofline fallback, workload choice, the
policy bundle (which only fills flags the user did not give), policy names, tiered-KV
and weighted-routing checks. Every bad value raises BlisError with one line of text.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from blis_sweep.errors import BlisError
from blis_sweep.reference.fitness import parse_fitness_weights, unknown_fitness_keys, unknown_key_warning
from blis_sweep.go.format import go_fmt_f, go_fmt_v, go_quote
from blis_sweep.limits import check_run_flag_ranges
from blis_sweep.data.paths import check_writable_file
from blis_sweep.reference.policy_bundle import PolicyBundle, load_policy_bundle, validate_policy_bundle
from blis_sweep.sim_config import (
    ADMISSION_NAMES,
    INT64_MAX,
    PRIORITY_NAMES,
    ROUTING_NAMES,
    SCHEDULER_NAMES,
    AdmissionPolicy,
    PriorityPolicy,
    RoutingPolicy,
    Scheduler,
    SimConfig,
)

DEFAULTS_FILE_NAME = "defaults.yaml"
PRESET_WORKLOADS = "chatbot, summarization, contentgen, multidoc"
# logrus level names (ParseLevel is case-insensitive); "warn" is an alias of "warning"
LOG_LEVELS = ("panic", "fatal", "error", "warning", "info", "debug", "trace")
_WARNINGS_SHOWN_FROM = LOG_LEVELS.index("warning")


@dataclass
class RunFlags:
    """Every flag of the reference's `run` command, with its default.

    `explicit` holds the names of the flags the user gave (either spelling,
    `routing-policy` or `routing_policy`), like cobra's Changed(): the policy
    bundle only fills values whose flag was not given.
    """

    seed: int = 42
    horizon: int = INT64_MAX
    log: str = "warn"
    defaults_filepath: str = DEFAULTS_FILE_NAME
    model_config_folder: str = ""
    hardware_config: str = ""
    workload: str = "distribution"
    workload_traces_filepath: str = ""
    # vLLM server
    total_kv_blocks: int = 1000000
    max_num_running_reqs: int = 256
    max_num_scheduled_tokens: int = 2048
    beta_coeffs: tuple[float, ...] = (0.0, 0.0, 0.0)
    alpha_coeffs: tuple[float, ...] = (0.0, 0.0, 0.0)
    block_size_in_tokens: int = 16
    max_model_len: int = 2048  # accepted but unused, as in the reference
    long_prefill_token_threshold: int = 0
    # model / GPU
    model: str = ""
    hardware: str = ""
    tp: int = 0
    vllm_version: str = ""
    # distribution workload
    rate: float = 1.0
    max_prompts: int = 100
    prefix_tokens: int = 0
    prompt_tokens: int = 512
    prompt_tokens_stdev: int = 256
    prompt_tokens_min: int = 2
    prompt_tokens_max: int = 7000
    output_tokens: int = 512
    output_tokens_stdev: int = 256
    output_tokens_min: int = 2
    output_tokens_max: int = 7000
    # cluster and policies
    num_instances: int = 1
    admission_policy: str = "always-admit"
    admission_latency: int = 0
    routing_latency: int = 0
    token_bucket_capacity: float = 10000.0
    token_bucket_refill_rate: float = 1000.0
    routing_policy: str = "round-robin"
    routing_cache_weight: float = 0.6
    routing_load_weight: float = 0.4
    priority_policy: str = "constant"
    scheduler: str = "fcfs"
    policy_config: str = ""
    fitness_weights: str = ""
    trace_level: str = "none"
    counterfactual_k: int = 0
    summarize_trace: bool = False
    workload_spec: str = ""
    # tiered KV cache
    kv_cpu_blocks: int = 0
    kv_offload_threshold: float = 0.9
    kv_transfer_bandwidth: float = 100.0
    results_path: str = ""
    explicit: set = field(default_factory=set)

    def __post_init__(self):
        self.explicit = {name.replace("_", "-") for name in self.explicit}

    def given(self, flag: str) -> bool:
        """Whether the user set this flag (cobra's Changed)."""
        return flag.replace("_", "-") in self.explicit


def flag_names() -> list[str]:
    """The reference's flag names (kebab-case), in declaration order."""
    from dataclasses import fields

    return [f.name.replace("_", "-") for f in fields(RunFlags) if f.name != "explicit"]


@dataclass(frozen=True)
class RunWorkload:
    """Where the requests come from.

    kind: "traces" (CSV at traces_path), "distribution" (the --prompt-tokens... flags),
    "preset" (a named workload from defaults.yaml, with --rate and --max-prompts) or
    "spec" (a --workload-spec YAML, loaded by the workload module). For distribution and
    preset, requests arrive every int64(1 / (rate / 1e6)) ticks.
    """

    kind: str
    traces_path: Path | None = None
    spec_path: Path | None = None
    spec: object = None  # the loaded, validated WorkloadSpec (kind "spec")
    preset: str = ""
    rate_per_s: float = 0.0
    max_prompts: int = 0
    prefix_tokens: int = 0
    prompt_tokens: int = 0
    prompt_tokens_stdev: int = 0
    prompt_tokens_min: int = 0
    prompt_tokens_max: int = 0
    output_tokens: int = 0
    output_tokens_stdev: int = 0
    output_tokens_min: int = 0
    output_tokens_max: int = 0


@dataclass(frozen=True)
class ResolvedRun:
    """Everything `run` needs after the flags are checked and defaults applied."""

    config: SimConfig
    workload: RunWorkload
    model: str
    gpu: str
    tp: int
    vllm_version: str
    fitness_weights: dict | None  # None: no --fitness-weights, no fitness block
    trace_level: str
    counterfactual_k: int
    summarize_trace: bool
    results_path: str  # as given; printed in "Metrics written to: <path>"; "" for none
    results_file: Path | None  # results_path resolved against cwd
    log_level: str  # logrus name: panic fatal error warning info debug trace
    warnings: tuple[str, ...]  # to print on stderr (already filtered by log level)

    @property
    def tracing(self) -> bool:
        """Decisions are recorded (trace level neither "none" nor empty)."""
        return self.trace_level not in ("", "none")

    @property
    def prints_trace_summary(self) -> bool:
        return self.tracing and self.summarize_trace

    @property
    def prints_instance_metrics(self) -> bool:
        """The reference prints per-instance blocks only with more than one instance."""
        return self.config.num_instances > 1


# ---------------------------------------------------------------- helpers


def _under(cwd: Path, path: str) -> Path:
    p = Path(path)
    return p if p.is_absolute() else Path(cwd) / p


def _defaults_yaml(flags: RunFlags, cwd: Path) -> Path:
    """The defaults file; the default name falls back to the copy shipped with blis-sweep."""
    local = _under(cwd, flags.defaults_filepath)
    if flags.defaults_filepath == DEFAULTS_FILE_NAME and not local.exists():
        from blis_sweep.data.paths import bundled_defaults_yaml

        return Path(bundled_defaults_yaml())
    return local


def _all_zeros(values) -> bool:
    return all(v == 0 for v in values)


def _log_level(name: str) -> str:
    level = name.lower()
    if level == "warn":
        level = "warning"
    if level not in LOG_LEVELS:
        raise BlisError(f"Invalid log level: {name} (--log: one of panic, fatal, error, warn, info, debug, trace)")
    return level


@dataclass
class _Coefficients:
    model: str
    gpu: str
    tp: int
    vllm_version: str
    alpha: tuple
    beta: tuple
    total_kv_blocks: int
    from_defaults: bool = False
    roofline: object = None


def _latency_model(flags: RunFlags, cwd: Path, warn: list[str]) -> _Coefficients:
    """Trained coefficients (given, or looked up in defaults.yaml) or the roofline model."""
    c = _Coefficients(flags.model, flags.hardware, flags.tp, flags.vllm_version,
                      tuple(flags.alpha_coeffs), tuple(flags.beta_coeffs), flags.total_kv_blocks)
    missing = ""  # why no trained coefficients were found (for the error when nothing else works)
    if _all_zeros(c.alpha) and _all_zeros(c.beta) and not flags.model_config_folder and not flags.hardware_config:
        from blis_sweep.data.defaults import coefficients, default_specs

        defaults_path = _defaults_yaml(flags, cwd)
        c.model = c.model.lower()
        gpu, tp, version = default_specs(c.model, defaults_path) or ("", 0, "")
        if c.tp == 0 and tp > 0:
            warn += [f"Finding default values of TP for model={c.model}", f"Using default tp={tp}"]
            c.tp = tp
        if c.gpu == "" and gpu:
            warn += [f"Finding default values of hardware for model={c.model}", f"Using default GPU={gpu}"]
            c.gpu = gpu
        if c.vllm_version == "" and version:
            warn += [f"Finding default values of vLLM version for model={c.model}",
                     f"Using default vLLM version={version}"]
            c.vllm_version = version
        found = coefficients(c.model, c.tp, c.gpu, c.vllm_version, defaults_path)
        # The reference replaces --total-kv-blocks with the trained entry's value (0 if none).
        c.alpha, c.beta, c.total_kv_blocks = (tuple(found[0]), tuple(found[1]), int(found[2])) if found else ((), (), 0)
        c.from_defaults = found is not None
        if not found:
            from blis_sweep.data.defaults import trained_deployments

            available = ", ".join(trained_deployments(c.model, defaults_path)) or "none for this model"
            missing = (f"no trained coefficients in {defaults_path} for model={c.model}, GPU={c.gpu or '(none)'}, "
                       f"TP={c.tp}, vLLM version={c.vllm_version or '(none)'} (available: {available})")
        elif flags.given("total-kv-blocks") and flags.total_kv_blocks != c.total_kv_blocks:
            warn.append(f"--total-kv-blocks {flags.total_kv_blocks} is replaced by {c.total_kv_blocks}, the value "
                        f"stored with the trained coefficients in {defaults_path} (as the reference does); give "
                        f"--alpha-coeffs/--beta-coeffs to use your own block count")
    if _all_zeros(c.alpha) and _all_zeros(c.beta):
        warn.append(f"Trying roofline approach for model={c.model}, TP={c.tp}, GPU={c.gpu}, "
                    f"vllmVersion={c.vllm_version}")
        if flags.model_config_folder and flags.hardware_config and c.gpu and c.tp > 0:
            c.roofline = _roofline_params(flags, cwd, c.gpu, c.tp)
        elif not flags.model_config_folder:
            if missing:  # say what is missing first: trained coefficients for this deployment
                raise BlisError(f"{missing}; give --alpha-coeffs/--beta-coeffs, or --model-config-folder, "
                                f"--hardware-config, --hardware and --tp for the roofline model")
            raise BlisError(f"Please provide model config folder containing config.json for "
                            f"model={c.model} (--model-config-folder)")
        elif not flags.hardware_config:
            raise BlisError("Please provide hardware config path (e.g. hardware_config.json) (--hardware-config)")
        else:
            # The reference silently runs with all-zero coefficients here (no roofline).
            warn.append("roofline needs --hardware and --tp > 0; running with all-zero coefficients")
    return c


def _roofline_params(flags: RunFlags, cwd: Path, gpu: str, tp: int):
    from blis_sweep.data.hardware import gpu_calib
    from blis_sweep.data.model_config import load_model_config, roofline_params

    try:
        model_cfg = load_model_config(_under(cwd, flags.model_config_folder) / "config.json")
    except BlisError as exc:
        raise BlisError(f"Failed to load model config: {exc}") from None
    try:
        calib = gpu_calib(gpu, _under(cwd, flags.hardware_config))
    except BlisError as exc:
        raise BlisError(f"Failed to load hardware config: {exc}") from None
    return roofline_params(model_cfg, calib, tp)


_PRESET_KEYS = ("prefix_tokens", "prompt_tokens", "prompt_tokens_stdev", "prompt_tokens_min", "prompt_tokens_max",
                "output_tokens", "output_tokens_stdev", "output_tokens_min", "output_tokens_max")


def _workload(flags: RunFlags, cwd: Path) -> RunWorkload:
    traces = _under(cwd, flags.workload_traces_filepath) if flags.workload_traces_filepath else None
    if flags.workload_spec:
        from blis_sweep.workloads.spec import load_workload_spec

        spec_path = _under(cwd, flags.workload_spec)
        return RunWorkload("spec", traces_path=traces, spec_path=spec_path,
                           spec=load_workload_spec(spec_path, source=flags.workload_spec, base_dir=cwd))
    if flags.workload == "distribution":
        f = flags
        if not (f.prompt_tokens_min <= f.prompt_tokens <= f.prompt_tokens_max
                and f.prompt_tokens_min <= f.prompt_tokens_stdev <= f.prompt_tokens_max):
            raise BlisError("prompt-tokens and prompt-tokens-stdev should be in range "
                            "[prompt-tokens-min, prompt-tokens-max]")
        if not (f.output_tokens_min <= f.output_tokens <= f.output_tokens_max
                and f.output_tokens_min <= f.output_tokens_stdev <= f.output_tokens_max):
            raise BlisError("output-tokens and output-tokens-stdev should be in range "
                            "[output-tokens-min, output-tokens-max]")
        return RunWorkload("distribution", traces_path=traces, rate_per_s=f.rate, max_prompts=f.max_prompts,
                           **{k: getattr(f, k) for k in _PRESET_KEYS})
    if flags.workload != "traces":
        from blis_sweep.data.defaults import workload_preset, workload_preset_names

        defaults_path = _defaults_yaml(flags, cwd)
        if flags.workload not in workload_preset_names(defaults_path):
            raise BlisError(f"Undefined workload {go_quote(flags.workload)}. Use one among ({PRESET_WORKLOADS}) "
                            f"or distribution, traces (--workload)")
        preset = workload_preset(flags.workload, defaults_path)
        return RunWorkload("preset", traces_path=traces, preset=flags.workload, rate_per_s=flags.rate,
                           max_prompts=flags.max_prompts, **{k: int(preset.get(k, 0) or 0) for k in _PRESET_KEYS})
    return RunWorkload("traces", traces_path=traces)


def _apply_bundle(flags: RunFlags, cwd: Path) -> dict:
    """Policy values after the --policy-config bundle fills the flags the user did not give."""
    chosen = {name: getattr(flags, name) for name in (
        "admission_policy", "token_bucket_capacity", "token_bucket_refill_rate", "routing_policy",
        "routing_cache_weight", "routing_load_weight", "priority_policy", "scheduler")}
    if not flags.policy_config:
        return chosen
    try:
        bundle: PolicyBundle = load_policy_bundle(_under(cwd, flags.policy_config), flags.policy_config)
    except BlisError as exc:
        raise BlisError(f"Failed to load policy config: {exc}") from None
    try:
        validate_policy_bundle(bundle)
    except BlisError as exc:
        raise BlisError(f"Invalid policy config: {exc}") from None
    from_bundle = {"admission_policy": bundle.admission_policy or None,
                   "token_bucket_capacity": bundle.token_bucket_capacity,
                   "token_bucket_refill_rate": bundle.token_bucket_refill_rate,
                   "routing_policy": bundle.routing_policy or None,
                   "routing_cache_weight": bundle.cache_weight,
                   "routing_load_weight": bundle.load_weight,
                   "priority_policy": bundle.priority_policy or None,
                   "scheduler": bundle.scheduler or None}
    for name, value in from_bundle.items():
        if value is not None and not flags.given(name):
            chosen[name] = value
    return chosen


def _policy(kind: str, flag: str, value: str, names: dict, default):
    """Enum for a policy name; "" is accepted and means the default, as in the reference."""
    if value == "":
        return default
    if value not in names:
        raise BlisError(f"Unknown {kind} {go_quote(value)}. Valid: {', '.join(names)} (--{flag})")
    return names[value]


def _routing_weights(policy: str, cache: float, load: float, warn: list[str]) -> tuple[float, float]:
    """Check weighted-routing weights; return them as the policy uses them (scaled to sum 1).

    The CLI only warns about a sum far from 1; the routing policy's constructor divides
    both by their sum, so that is what the simulation sees."""
    if policy != "weighted":
        return cache, load
    if not (math.isfinite(cache) and math.isfinite(load)):
        raise BlisError(f"Routing weights must be finite numbers, got cache={go_fmt_v(cache)}, "
                        f"load={go_fmt_v(load)}")
    if cache < 0 or load < 0:
        raise BlisError(f"Routing weights must be non-negative, got cache={go_fmt_f(cache, 2)}, "
                        f"load={go_fmt_f(load, 2)}")
    total = cache + load
    if total <= 0:
        raise BlisError(f"Routing weights must have a positive sum, got cache={go_fmt_f(cache, 2)} + "
                        f"load={go_fmt_f(load, 2)} = {go_fmt_f(total, 2)}")
    if abs(total - 1.0) > 0.01:
        warn.append(f"Routing weights sum to {go_fmt_f(total, 2)} (expected 1.0); weights will be auto-normalized "
                    f"to cache={go_fmt_f(cache / total, 2)}, load={go_fmt_f(load / total, 2)}")
    return cache / total, load / total


def _three(values: tuple, flag: str, from_defaults: bool) -> tuple[float, float, float]:
    if len(values) < 3:
        source = " (from defaults.yaml)" if from_defaults else ""
        raise BlisError(f"--{flag} needs at least 3 values, got {len(values)}{source}")
    out = tuple(float(v) for v in values[:3])
    bad = [v for v in out if not math.isfinite(v)]
    if bad:
        # the reference would silently produce NaN/Inf step times
        raise BlisError(f"--{flag} must be finite numbers, got {','.join(map(str, values))}")
    return out


# ---------------------------------------------------------------- resolution


def resolve_run(flags: RunFlags, cwd) -> ResolvedRun:
    """Check the flags and apply the reference's defaults; relative paths resolve against cwd."""
    cwd = Path(cwd)
    warn: list[str] = []
    log_level = _log_level(flags.log)
    if flags.model == "":
        raise BlisError("LLM name not provided. Exiting simulation. (--model is required)")
    check_run_flag_ranges(flags)
    results_file = _under(cwd, flags.results_path) if flags.results_path else None
    if results_file is not None:
        check_writable_file(results_file, "--results-path")

    lat = _latency_model(flags, cwd, warn)
    workload = _workload(flags, cwd)
    if flags.num_instances < 1:
        raise BlisError("num-instances must be >= 1")
    if flags.workload == "traces" and flags.workload_traces_filepath == "":
        raise BlisError("--workload-traces-filepath is required when using --workload traces")

    chosen = _apply_bundle(flags, cwd)
    admission = _policy("admission policy", "admission-policy", chosen["admission_policy"], ADMISSION_NAMES,
                        AdmissionPolicy.ALWAYS_ADMIT)
    routing = _policy("routing policy", "routing-policy", chosen["routing_policy"], ROUTING_NAMES,
                      RoutingPolicy.ROUND_ROBIN)
    priority = _policy("priority policy", "priority-policy", chosen["priority_policy"], PRIORITY_NAMES,
                       PriorityPolicy.CONSTANT)
    scheduler = _policy("scheduler", "scheduler", chosen["scheduler"], SCHEDULER_NAMES, Scheduler.FCFS)
    if flags.trace_level not in ("", "none", "decisions"):
        raise BlisError(f"Unknown trace level {go_quote(flags.trace_level)}. Valid: none, decisions (--trace-level)")
    if flags.counterfactual_k < 0:
        raise BlisError(f"--counterfactual-k must be >= 0, got {flags.counterfactual_k}")
    if flags.trace_level == "none" and flags.counterfactual_k > 0:
        warn.append(f"--counterfactual-k={flags.counterfactual_k} has no effect without --trace-level decisions")
    if flags.trace_level == "none" and flags.summarize_trace:
        warn.append("--summarize-trace has no effect without --trace-level decisions")
    if flags.kv_cpu_blocks < 0:
        raise BlisError(f"--kv-cpu-blocks must be >= 0, got {flags.kv_cpu_blocks}")
    threshold = flags.kv_offload_threshold
    if not (math.isfinite(threshold) and 0 <= threshold <= 1):
        raise BlisError(f"--kv-offload-threshold must be a finite value in [0, 1], got {go_fmt_f(threshold)}")
    bandwidth = flags.kv_transfer_bandwidth
    if flags.kv_cpu_blocks > 0 and not (math.isfinite(bandwidth) and bandwidth > 0):
        raise BlisError(f"--kv-transfer-bandwidth must be a finite value > 0 when --kv-cpu-blocks > 0, "
                        f"got {go_fmt_f(bandwidth)}")
    cache_w, load_w = _routing_weights(chosen["routing_policy"], chosen["routing_cache_weight"],
                                       chosen["routing_load_weight"], warn)
    if admission == AdmissionPolicy.TOKEN_BUCKET:
        # the reference checks these only in policy bundles; a bad flag value would make the bucket nonsense
        for flag in ("token_bucket_capacity", "token_bucket_refill_rate"):
            value = float(chosen[flag])
            if not math.isfinite(value) or value < 0:
                raise BlisError(f"--{flag.replace('_', '-')} must be a finite, non-negative number, "
                                f"got {go_fmt_f(value)}")

    # Checks the reference leaves to a panic (or to undefined behaviour) deeper in.
    if lat.roofline is None:
        alpha = _three(lat.alpha, "alpha-coeffs", lat.from_defaults)
        beta = _three(lat.beta, "beta-coeffs", lat.from_defaults)
    else:
        alpha, beta = (0.0, 0.0, 0.0), (0.0, 0.0, 0.0)
    if lat.total_kv_blocks <= 0:
        source = " (from defaults.yaml)" if lat.from_defaults else ""
        raise BlisError(f"--total-kv-blocks must be > 0, got {lat.total_kv_blocks}{source}")
    if flags.block_size_in_tokens <= 0:
        raise BlisError(f"--block-size-in-tokens must be > 0, got {flags.block_size_in_tokens}")
    if workload.kind in ("distribution", "preset") and not (math.isfinite(workload.rate_per_s)
                                                             and workload.rate_per_s > 0):
        raise BlisError(f"--rate must be a finite value > 0, got {go_fmt_f(workload.rate_per_s)}")
    fitness = None
    if flags.fitness_weights != "":
        fitness = parse_fitness_weights(flags.fitness_weights)  # the reference parses it after the run
        warn += [unknown_key_warning(k) for k in unknown_fitness_keys(fitness)]

    config = SimConfig(
        total_kv_blocks=lat.total_kv_blocks,
        block_size=flags.block_size_in_tokens,
        max_running_reqs=flags.max_num_running_reqs,
        max_scheduled_tokens=flags.max_num_scheduled_tokens,
        long_prefill_token_threshold=flags.long_prefill_token_threshold,
        horizon=flags.horizon,
        alpha_coeffs=alpha,
        beta_coeffs=beta,
        roofline=lat.roofline,
        scheduler=scheduler,
        priority_policy=priority,
        num_instances=flags.num_instances,
        admission_policy=admission,
        admission_latency=flags.admission_latency,
        routing_latency=flags.routing_latency,
        token_bucket_capacity=float(chosen["token_bucket_capacity"]),
        token_bucket_refill_rate=float(chosen["token_bucket_refill_rate"]),
        routing_policy=routing,
        routing_cache_weight=float(cache_w),
        routing_load_weight=float(load_w),
        kv_cpu_blocks=flags.kv_cpu_blocks,
        kv_offload_threshold=threshold,
        kv_transfer_bandwidth=bandwidth,
        seed=flags.seed,
        labels={"model": lat.model, "gpu": lat.gpu, "tp": lat.tp, "vllm_version": lat.vllm_version},
    )
    shown = warn if LOG_LEVELS.index(log_level) >= _WARNINGS_SHOWN_FROM else []
    return ResolvedRun(
        config=config,
        workload=workload,
        model=lat.model,
        gpu=lat.gpu,
        tp=lat.tp,
        vllm_version=lat.vllm_version,
        fitness_weights=fitness,
        trace_level=flags.trace_level,
        counterfactual_k=flags.counterfactual_k,
        summarize_trace=flags.summarize_trace,
        results_path=flags.results_path,
        results_file=results_file,
        log_level=log_level,
        warnings=tuple(shown),
    )
