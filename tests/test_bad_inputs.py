"""Bad input, as a user meets it: through the installed console script `blis-sweep`.

Every case must end with exit status 2 and exactly one line on stderr, `error: ...`, that
names the field (and, where there is a choice, what is allowed); no traceback; no file
created or changed in the working directory. Each case runs in its own directory; the
cases run a few at a time (each is a separate process, and all of them stop before any
kernel is compiled or any simulation starts).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

HERE = Path(__file__).resolve().parent
TRACE = HERE / "data" / "no_completion" / "trace.csv"
BLIS = str(Path(sys.executable).parent / "blis-sweep")
SMALL_MEMORY = {"BLIS_SWEEP_MEMORY_LIMIT": str(100 << 20)}  # 100 MiB: memory refusals without a big machine

RUN = ["run", "--workload", "traces", "--workload-traces-filepath", "trace.csv",
       "--model", "meta-llama/llama-3.1-8b-instruct", "--alpha-coeffs", "232.46,1.75,3357.44",
       "--beta-coeffs", "5752.7,17.25,5.99", "--total-kv-blocks", "7463", "--results-path", "out.json"]
GENERATED = ["run", "--model", "meta-llama/llama-3.1-8b-instruct", "--alpha-coeffs", "100,1,100",
             "--beta-coeffs", "1000,10,1", "--results-path", "out.json"]
ROOFLINE = ["run", "--workload", "traces", "--workload-traces-filepath", "trace.csv", "--model", "x/model",
            "--model-config-folder", "mc", "--hardware-config", "hw.json", "--hardware", "H100", "--tp", "1"]

GOOD_MODEL = {"num_hidden_layers": 32, "hidden_size": 4096, "num_attention_heads": 32, "num_key_value_heads": 8,
              "vocab_size": 128256, "intermediate_size": 14336, "torch_dtype": "bfloat16"}
GOOD_SWEEP = {
    "name": "bad",
    "base": {"model": "meta-llama/llama-3.1-8b-instruct", "hardware": "H100", "latency_model": "blackbox",
             "alpha_coeffs": [100, 1, 100], "beta_coeffs": [1000, 10, 1], "total_kv_blocks": 5000,
             "workload": {"distribution": {"prompt_tokens": 64, "prompt_tokens_stdev": 16, "prompt_tokens_min": 2,
                                           "prompt_tokens_max": 128, "output_tokens": 16, "output_tokens_stdev": 4,
                                           "output_tokens_min": 1, "output_tokens_max": 32}},
             "num_requests": 20, "rate": 10},
    "axes": {"rate": [5, 10]},
}


@dataclass
class Case:
    name: str
    args: list[str]
    expect: tuple[str, ...]  # substrings of the error line: the field, and what is allowed
    files: dict[str, str] = field(default_factory=dict)  # file name -> content, created before the run
    env: dict[str, str] = field(default_factory=dict)


def flag(args: list[str], name: str, value: str | None = None) -> list[str]:
    """args with --name set to value (replaced if present); value None removes the flag."""
    out = list(args)
    if name in out:
        i = out.index(name)
        del out[i:i + 2]
    return out + ([name, value] if value is not None else [])


def sweep(**changes) -> str:
    """GOOD_SWEEP with changes: key=value at top level, base__key=value inside base; None removes."""
    spec = json.loads(json.dumps(GOOD_SWEEP))
    for key, value in changes.items():
        where, name = (spec["base"], key[6:]) if key.startswith("base__") else (spec, key)
        if value is None:
            where.pop(name, None)
        else:
            where[name] = value
    return yaml.safe_dump(spec, sort_keys=False)


def dist(**changes) -> dict:
    d = dict(GOOD_SWEEP["base"]["workload"]["distribution"])
    d.update(changes)
    return {"distribution": d}


def model(**changes) -> str:
    return json.dumps({**GOOD_MODEL, **changes})


HW = (HERE.parent / "hardware" / "hardware_config.json").read_text()
BAD_ROW_TRACE = TRACE.read_text().replace("[", "[oops,", 1)
LAUGHS = "".join(f"l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * 10 if i else ["1"] * 10) + "]\n" for i in range(9))

R = RUN
CASES = [
    # ---- run: flag syntax and names
    Case("run-unknown-flag", R + ["--foo", "1"], ("--foo",)),
    Case("run-unknown-shorthand", R + ["-x"], ("-x",)),
    Case("run-bad-int-syntax", flag(R, "--max-num-running-reqs", "1e3"), ("--max-num-running-reqs",)),
    Case("run-int-overflow", flag(R, "--horizon", "99999999999999999999"), ("--horizon",)),
    Case("run-bad-float", flag(R, "--alpha-coeffs", "abc"), ("--alpha-coeffs",)),
    Case("run-bad-bool", R + ["--summarize-trace=maybe"], ("--summarize-trace",)),
    Case("run-flag-without-value", R + ["--seed"], ("--seed",)),
    Case("run-seed-not-a-number", flag(R, "--seed", "abc"), ("--seed",)),
    Case("run-no-model", flag(R, "--model"), ("--model",)),
    # ---- run: names with a fixed set of values
    Case("run-scheduler", flag(R, "--scheduler", "lifo"), ("--scheduler", "fcfs, priority-fcfs, sjf")),
    Case("run-routing", flag(R, "--routing-policy", "random"), ("--routing-policy", "round-robin")),
    Case("run-admission", flag(R, "--admission-policy", "maybe"), ("--admission-policy", "always-admit")),
    Case("run-priority", flag(R, "--priority-policy", "vip"), ("--priority-policy", "slo-based")),
    Case("run-trace-level", flag(R, "--trace-level", "all"), ("--trace-level", "decisions")),
    Case("run-log-level", flag(R, "--log", "loud"), ("--log", "debug")),
    Case("run-workload", flag(R, "--workload", "poetry"), ("--workload", "chatbot")),
    Case("run-traces-without-path", flag(R, "--workload-traces-filepath"), ("--workload-traces-filepath",)),
    Case("run-fitness-weights", R + ["--fitness-weights", "throughput:abc"], ("throughput",)),
    # ---- run: integer ranges
    Case("run-kv-negative", flag(R, "--total-kv-blocks", "-5"), ("--total-kv-blocks",)),
    Case("run-kv-zero", flag(R, "--total-kv-blocks", "0"), ("--total-kv-blocks",)),
    Case("run-kv-huge", flag(R, "--total-kv-blocks", str(10**18)), ("--total-kv-blocks", "281474976710656")),
    Case("run-block-size-zero", R + ["--block-size-in-tokens", "0"], ("--block-size-in-tokens", "[1, 65536]")),
    Case("run-block-size-huge", R + ["--block-size-in-tokens", str(10**17)], ("--block-size-in-tokens",)),
    Case("run-running-zero", R + ["--max-num-running-reqs", "0"], ("--max-num-running-reqs", "[1,")),
    Case("run-running-negative", R + ["--max-num-running-reqs", "-3"], ("--max-num-running-reqs",)),
    Case("run-running-huge", R + ["--max-num-running-reqs", str(10**18)], ("--max-num-running-reqs",)),
    Case("run-scheduled-zero", R + ["--max-num-scheduled-tokens", "0"], ("--max-num-scheduled-tokens",)),
    Case("run-long-prefill-negative", R + ["--long-prefill-token-threshold", "-1"],
         ("--long-prefill-token-threshold", "[0,")),
    Case("run-horizon-zero", R + ["--horizon", "0"], ("--horizon", "[1,")),
    Case("run-horizon-negative", R + ["--horizon", "-5"], ("--horizon",)),
    Case("run-admission-latency", R + ["--admission-latency", "-1"], ("--admission-latency", "[0,")),
    Case("run-routing-latency", R + ["--routing-latency", "-1"], ("--routing-latency", "[0,")),
    Case("run-instances-zero", R + ["--num-instances", "0"], ("--num-instances", "[1, 10000]")),
    Case("run-instances-huge", R + ["--num-instances", "100000000"], ("--num-instances", "[1, 10000]")),
    Case("run-tp-negative", R + ["--tp", "-1"], ("--tp", "[1, 1024]")),
    Case("run-tp-huge", R + ["--tp", str(10**18)], ("--tp", "[1, 1024]")),
    Case("run-max-prompts-zero", GENERATED + ["--max-prompts", "0"], ("--max-prompts",)),
    Case("run-max-prompts-float", GENERATED + ["--max-prompts", "1e9"], ("--max-prompts",)),
    Case("run-max-prompts-huge", GENERATED + ["--max-prompts", "1000000000"], ("--max-prompts", "100000000")),
    Case("run-prompt-tokens-huge", GENERATED + ["--prompt-tokens", "100000000"], ("--prompt-tokens", "10000000")),
    Case("run-prompt-max-negative", GENERATED + ["--prompt-tokens-max", "-1"], ("--prompt-tokens-max",)),
    Case("run-prompt-mean-above-max", GENERATED + ["--prompt-tokens", "9000"], ("prompt-tokens-max",)),
    Case("run-output-stdev-above-max", GENERATED + ["--output-tokens-stdev", "9000"], ("output-tokens-max",)),
    Case("run-counterfactual-negative", R + ["--counterfactual-k", "-1"], ("--counterfactual-k",)),
    Case("run-counterfactual-huge", R + ["--counterfactual-k", "100000"], ("--counterfactual-k", "[0, 10000]")),
    Case("run-kv-cpu-negative", R + ["--kv-cpu-blocks", "-1"], ("--kv-cpu-blocks",)),
    # ---- run: other numbers
    Case("run-rate-zero", GENERATED + ["--rate", "0"], ("--rate",)),
    Case("run-rate-negative", GENERATED + ["--rate", "-1"], ("--rate",)),
    Case("run-rate-nan", GENERATED + ["--rate", "NaN"], ("--rate",)),
    Case("run-two-coefficients", flag(R, "--beta-coeffs", "1,2"), ("--beta-coeffs", "3")),
    Case("run-nan-coefficient", flag(R, "--alpha-coeffs", "1,NaN,3"), ("--alpha-coeffs", "finite")),
    Case("run-inf-coefficient", flag(R, "--beta-coeffs", "1,Inf,3"), ("--beta-coeffs", "finite")),
    Case("run-offload-threshold", R + ["--kv-cpu-blocks", "10", "--kv-offload-threshold", "1.5"],
         ("--kv-offload-threshold", "[0, 1]")),
    Case("run-transfer-bandwidth", R + ["--kv-cpu-blocks", "10", "--kv-transfer-bandwidth", "0"],
         ("--kv-transfer-bandwidth", "> 0")),
    Case("run-bucket-capacity", R + ["--num-instances", "2", "--admission-policy", "token-bucket",
                                    "--token-bucket-capacity", "-5"], ("--token-bucket-capacity", "non-negative")),
    Case("run-bucket-refill", R + ["--num-instances", "2", "--admission-policy", "token-bucket",
                                  "--token-bucket-refill-rate", "NaN"], ("--token-bucket-refill-rate",)),
    Case("run-weight-negative", R + ["--num-instances", "2", "--routing-policy", "weighted",
                                    "--routing-cache-weight", "-0.5"], ("weights", "non-negative")),
    Case("run-weights-zero-sum", R + ["--num-instances", "2", "--routing-policy", "weighted",
                                     "--routing-cache-weight", "0", "--routing-load-weight", "0"], ("positive sum",)),
    # ---- run: files and paths
    Case("run-trace-missing", flag(R, "--workload-traces-filepath", "missing.csv"), ("missing.csv",)),
    Case("run-trace-bad-row", flag(R, "--workload-traces-filepath", "bad.csv"), ("bad.csv", "row"),
         files={"bad.csv": BAD_ROW_TRACE}),
    Case("run-results-missing-dir", flag(R, "--results-path", "nodir/out.json"), ("--results-path", "nodir")),
    Case("run-results-is-dir", flag(R, "--results-path", "adir"), ("--results-path", "directory"),
         files={"adir/keep.txt": "x"}),
    Case("run-defaults-missing", R[:1] + ["--model", "meta-llama/llama-3.1-8b-instruct", "--defaults-filepath",
                                         "nope.yaml", "--workload", "traces", "--workload-traces-filepath",
                                         "trace.csv"], ("nope.yaml",)),
    Case("run-policy-config-missing", R + ["--policy-config", "nope.yaml"], ("nope.yaml",)),
    Case("run-policy-config-bad-yaml", R + ["--policy-config", "p.yaml"], ("policy config", "line 2"),
         files={"p.yaml": "a: [1\n"}),
    # ---- run: model, GPU and latency model
    Case("run-no-coefficients-for-gpu", ["run", "--model", "meta-llama/llama-3.1-8b-instruct", "--hardware", "NOPE",
                                         "--tp", "1", "--results-path", "out.json"], ("GPU=NOPE", "available", "H100")),
    Case("run-no-coefficients-for-tp", ["run", "--model", "meta-llama/llama-3.1-8b-instruct", "--hardware", "H100",
                                        "--tp", "8", "--results-path", "out.json"], ("TP=8", "available")),
    Case("run-unknown-model", ["run", "--model", "acme/unknown-7b", "--results-path", "out.json"],
         ("acme/unknown-7b", "--model-config-folder")),
    Case("run-roofline-unknown-gpu", flag(ROOFLINE, "--hardware", "NOPE"), ("NOPE", "available", "H100"),
         files={"mc/config.json": model(), "hw.json": HW}),
    Case("run-roofline-config-missing", ROOFLINE, ("mc",), files={"hw.json": HW}),
    Case("run-roofline-hardware-missing", ROOFLINE, ("hw.json",), files={"mc/config.json": model()}),
    Case("run-model-hidden-huge", ROOFLINE, ("hidden_size", "at most"),
         files={"mc/config.json": model(hidden_size=1e30), "hw.json": HW}),
    Case("run-model-heads-above-hidden", ROOFLINE, ("num_attention_heads", "hidden_size"),
         files={"mc/config.json": model(num_attention_heads=8192), "hw.json": HW}),
    Case("run-model-kv-heads-above-heads", ROOFLINE, ("num_key_value_heads",),
         files={"mc/config.json": model(num_key_value_heads=64), "hw.json": HW}),
    Case("run-model-layers-zero", ROOFLINE, ("num_hidden_layers",),
         files={"mc/config.json": model(num_hidden_layers=0), "hw.json": HW}),
    Case("run-model-dtype", ROOFLINE, ("torch_dtype", "bfloat16"),
         files={"mc/config.json": model(torch_dtype="float7"), "hw.json": HW}),
    Case("run-model-not-json", ROOFLINE, ("config.json",), files={"mc/config.json": "{nope", "hw.json": HW}),
    # ---- run: memory
    Case("run-memory-requests", GENERATED + ["--max-prompts", "1000000"], ("memory", "BLIS_SWEEP_MEMORY_LIMIT"),
         env=SMALL_MEMORY),
    Case("run-memory-instances", GENERATED + ["--max-prompts", "20000", "--num-instances", "5000"], ("memory",),
         env=SMALL_MEMORY),
    Case("run-memory-trace", R, ("this run (8 requests", "memory"), env={"BLIS_SWEEP_MEMORY_LIMIT": "20000"}),
    # ---- grid: the file
    Case("grid-missing-file", ["grid", "nope.yaml", "--out", "out"], ("nope.yaml",)),
    Case("grid-not-yaml", ["grid", "s.yaml", "--out", "out"], ("s.yaml:2", "YAML"), files={"s.yaml": "a: [1\n"}),
    Case("grid-not-mapping", ["grid", "s.yaml", "--out", "out"], ("s.yaml", "mapping"), files={"s.yaml": "- 1\n"}),
    Case("grid-unknown-top-key", ["grid", "s.yaml", "--out", "out"], ("basis", "allowed"),
         files={"s.yaml": sweep(basis=1)}),
    Case("grid-no-base", ["grid", "s.yaml", "--out", "out"], ("base",), files={"s.yaml": sweep(base=None)}),
    Case("grid-unknown-base-key", ["grid", "s.yaml", "--out", "out"], ("base.gpus", "allowed"),
         files={"s.yaml": sweep(base__gpus=2)}),
    Case("grid-billion-laughs", ["grid", "s.yaml", "--out", "out"], ("s.yaml", "aliases"),
         files={"s.yaml": LAUGHS + "base: *l8\n"}),
    # ---- grid: values and ranges
    Case("grid-scheduler", ["grid", "s.yaml", "--out", "out"], ("base.scheduler", "fcfs, priority-fcfs"),
         files={"s.yaml": sweep(base__scheduler="fifo")}),
    Case("grid-tp-zero", ["grid", "s.yaml", "--out", "out"], ("base.tp", ">= 1"), files={"s.yaml": sweep(base__tp=0)}),
    Case("grid-tp-huge", ["grid", "s.yaml", "--out", "out"], ("base.tp", "[1, 1024]"),
         files={"s.yaml": sweep(base__tp=10**20)}),
    Case("grid-kv-float", ["grid", "s.yaml", "--out", "out"], ("base.total_kv_blocks", "integer"),
         files={"s.yaml": sweep(base__total_kv_blocks=1e30)}),
    Case("grid-kv-huge", ["grid", "s.yaml", "--out", "out"], ("base.total_kv_blocks", "281474976710656"),
         files={"s.yaml": sweep(base__total_kv_blocks=10**30)}),
    Case("grid-block-size-huge", ["grid", "s.yaml", "--out", "out"], ("base.block_size", "[1, 65536]"),
         files={"s.yaml": sweep(base__block_size=10**20)}),
    Case("grid-running-huge", ["grid", "s.yaml", "--out", "out"], ("base.max_num_running_reqs",),
         files={"s.yaml": sweep(base__max_num_running_reqs=10**20)}),
    Case("grid-seed-huge", ["grid", "s.yaml", "--out", "out"], ("seeds.0", "9223372036854775807"),
         files={"s.yaml": sweep(seeds=[10**23])}),
    Case("grid-seed-float", ["grid", "s.yaml", "--out", "out"], ("seeds.0", "integer"),
         files={"s.yaml": sweep(seeds=[1e23])}),
    Case("grid-instances-huge", ["grid", "s.yaml", "--out", "out"], ("base.num_instances", "[1, 10000]"),
         files={"s.yaml": sweep(base__num_instances=1000000)}),
    Case("grid-requests-huge", ["grid", "s.yaml", "--out", "out"], ("base.num_requests", "100000000"),
         files={"s.yaml": sweep(base__num_requests=10**9)}),
    Case("grid-prompt-huge", ["grid", "s.yaml", "--out", "out"], ("prompt_tokens", "10000000"),
         files={"s.yaml": sweep(base__workload=dist(prompt_tokens=10**8))}),
    Case("grid-horizon-zero", ["grid", "s.yaml", "--out", "out"], ("base.horizon", ">= 1"),
         files={"s.yaml": sweep(base__horizon=0)}),
    Case("grid-admission-latency", ["grid", "s.yaml", "--out", "out"], ("base.admission_latency", ">= 0"),
         files={"s.yaml": sweep(base__admission_latency=-1)}),
    Case("grid-rate-zero", ["grid", "s.yaml", "--out", "out"], ("base.rate", "> 0"),
         files={"s.yaml": sweep(base__rate=0)}),
    Case("grid-chunk-size", ["grid", "s.yaml", "--out", "out"], ("chunk_size", ">= 1"),
         files={"s.yaml": sweep(chunk_size=0)}),
    Case("grid-empty-axis", ["grid", "s.yaml", "--out", "out"], ("axes.rate", "empty"),
         files={"s.yaml": sweep(axes={"rate": []})}),
    Case("grid-zip-unequal", ["grid", "s.yaml", "--out", "out"], ("zip.0", "equal lengths"),
         files={"s.yaml": sweep(axes={"rate": [1, 2], "tp": [1, 2, 4]}, zip=[["rate", "tp"]])}),
    Case("grid-unknown-model", ["grid", "s.yaml", "--out", "out"], ("model",),
         files={"s.yaml": sweep(base__model="acme/unknown", base__latency_model="roofline",
                                base__alpha_coeffs=None, base__beta_coeffs=None)}),
    Case("grid-unknown-gpu", ["grid", "s.yaml", "--out", "out"], ("hardware", "H100"),
         files={"s.yaml": sweep(base__hardware="NOPE", base__latency_model="roofline", base__alpha_coeffs=None,
                                base__beta_coeffs=None)}),
    Case("grid-model-config-huge", ["grid", "s.yaml", "--out", "out"], ("hidden_size", "at most"),
         files={"s.yaml": sweep(base__model_config="mc/config.json", base__latency_model="roofline",
                                base__alpha_coeffs=None, base__beta_coeffs=None),
                "mc/config.json": model(hidden_size=1e30)}),
    # ---- grid: checked before the output directory is touched
    Case("grid-too-many-configs", ["grid", "s.yaml", "--out", "out"], ("--max-configs", "1,000,000"),
         files={"s.yaml": sweep(axes={"rate": list(range(1, 1001))}, replicates=1000000)}),
    Case("grid-max-configs", ["grid", "s.yaml", "--out", "out", "--max-configs", "1"], ("--max-configs",),
         files={"s.yaml": sweep()}),
    Case("grid-max-configs-zero", ["grid", "s.yaml", "--out", "out", "--max-configs", "0"], ("--max-configs",),
         files={"s.yaml": sweep()}),
    Case("grid-trace-missing", ["grid", "s.yaml", "--out", "out"], ("missing.csv",),
         files={"s.yaml": sweep(base__workload={"trace": "missing.csv"}, base__rate=None, axes={"tp": [1, 2]})}),
    Case("grid-trace-bad-row", ["grid", "s.yaml", "--out", "out"], ("bad.csv", "row"),
         files={"s.yaml": sweep(base__workload={"trace": "bad.csv"}, base__rate=None, axes={"tp": [1, 2]}),
                "bad.csv": BAD_ROW_TRACE}),
    Case("grid-trace-unsorted-horizon", ["grid", "s.yaml", "--out", "out"], ("unsorted.csv", "horizon", "sorted"),
         files={"s.yaml": sweep(base__workload={"trace": "unsorted.csv"}, base__rate=None, base__horizon=150000,
                                axes={"tp": [1, 2]}),
                "unsorted.csv": "arrived_at,num_prefill_tokens,num_decode_tokens,prefill_tokens,decode_tokens\n"
                                '0.1,2,2,"[1,2]","[3,4]"\n0.2,2,2,"[1,5]","[6,7]"\n0.12,2,2,"[1,8]","[9,10]"\n'}),
    Case("grid-memory", ["grid", "s.yaml", "--out", "out"], ("memory", "BLIS_SWEEP_MEMORY_LIMIT"),
         files={"s.yaml": sweep(base__num_requests=5000000)}, env=SMALL_MEMORY),
    Case("grid-out-is-file", ["grid", "s.yaml", "--out", "s.yaml"], ("s.yaml", "not a directory"),
         files={"s.yaml": sweep()}),
    # ---- curves
    Case("curves-missing-dir", ["curves", "nope"], ("nope", "grid")),
    Case("curves-top-negative", ["curves", "run", "--top", "-1"], ("--top", "[1,"), files={"run/configs.parquet": ""}),
    Case("curves-top-zero", ["curves", "run", "--top", "0"], ("--top",), files={"run/configs.parquet": ""}),
    Case("curves-sustain", ["curves", "run", "--sustain", "0"], ("--sustain", "(0, 1]"),
         files={"run/configs.parquet": ""}),
    Case("curves-slo-metric", ["curves", "run", "--slo", "speed=3"], ("speed", "ttft_p99_ms"),
         files={"run/configs.parquet": ""}),
    Case("curves-slo-value", ["curves", "run", "--slo", "ttft_p99_ms=abc"], ("ttft_p99_ms", "number"),
         files={"run/configs.parquet": ""}),
    Case("curves-slo-syntax", ["curves", "run", "--slo", "ttft_p99_ms"], ("--slo", "METRIC=BOUND"),
         files={"run/configs.parquet": ""}),
    Case("curves-plot-type", ["curves", "run", "--plot", "c.txt"], ("--plot", ".png, .svg, .pdf"),
         files={"run/configs.parquet": ""}),
    Case("curves-plot-folder", ["curves", "run", "--plot", "nodir/c.png"], ("--plot", "nodir"),
         files={"run/configs.parquet": ""}),
    Case("curves-plot-directory", ["curves", "run", "--plot", "d.png"], ("--plot", "directory"),
         files={"run/configs.parquet": "", "d.png/keep": ""}),
]


def _snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): (p.is_dir(), p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*"))}


def _run_case(case: Case, root: Path) -> tuple[Case, subprocess.CompletedProcess, dict, dict]:
    work = root / case.name
    work.mkdir()
    shutil.copy(TRACE, work / "trace.csv")
    for name, content in case.files.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(content)
    before = _snapshot(work)
    env = {k: v for k, v in os.environ.items() if k != "BLIS_SWEEP_DEBUG"}
    proc = subprocess.run([BLIS, *case.args], cwd=work, capture_output=True, text=True, timeout=600,
                          env={**env, **case.env})
    return case, proc, before, _snapshot(work)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad_inputs")
    with ThreadPoolExecutor(max_workers=4) as pool:
        return {case.name: result for case, *result in pool.map(lambda c: _run_case(c, root), CASES)}


def test_enough_cases_with_unique_names():
    assert len(CASES) >= 80
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_gives_one_clear_line(outcomes, case):
    proc, before, after = outcomes[case.name]
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for part in case.expect:
        assert part in lines[0], (part, lines[0])
    assert proc.stdout == ""
    assert after == before  # nothing created, nothing changed


USAGE_ERRORS = [
    [],
    ["nope"],
    ["--nope"],
    ["grid", "--nope"],
    ["grid", "--max-configs", "abc"],
    ["curves"],
    ["curves", "run", "--top", "abc"],
]


@pytest.mark.parametrize("args", USAGE_ERRORS, ids=[" ".join(a) or "no-args" for a in USAGE_ERRORS])
def test_usage_errors_exit_2_with_usage_text(tmp_path, args):
    proc = subprocess.run([BLIS, *args], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "Usage: blis-sweep" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args", [["--version"], ["-h"], ["grid", "-h"], ["curves", "--help"], ["run", "--help"]])
def test_help_and_version_exit_0(tmp_path, args):
    proc = subprocess.run([BLIS, *args], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "" and proc.stdout.strip()


def test_run_help_describes_every_flag():
    from dataclasses import fields

    from blis_sweep.reference.args import RunFlags
    from blis_sweep.reference.help import FLAG_HELP, run_help_text

    names = [f.name for f in fields(RunFlags) if f.name != "explicit"]
    assert [n for n in names if not FLAG_HELP.get(n)] == []
    text = run_help_text()
    for n in names:
        assert f"--{n.replace('_', '-')}" in text
