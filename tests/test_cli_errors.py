"""Bad input fails loudly and cleanly: one line naming the field, non-zero exit, no traceback, no file."""
import subprocess
import sys

import pytest

from tests.parity_cases import stage_case

BASE = ["run", "--workload", "traces", "--workload-traces-filepath", "trace.csv",
        "--model", "meta-llama/llama-3.1-8b-instruct",
        "--alpha-coeffs", "232.46,1.75,3357.44", "--beta-coeffs", "5752.7,17.25,5.99",
        "--total-kv-blocks", "7463", "--results-path", "out.json"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return stage_case("v05_single_batch_cap", tmp_path_factory.mktemp("cli"))


def blis(args, cwd):
    return subprocess.run([sys.executable, "-m", "blis_sweep.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def replace_flag(args, flag, value):
    out = list(args)
    if flag in out:
        out[out.index(flag) + 1] = value
    else:
        out += [flag, value]
    return out


@pytest.mark.parametrize("flag, value, expected", [
    ("--scheduler", "lifo", "fcfs, priority-fcfs, sjf, reverse-priority"),
    ("--routing-policy", "random", "round-robin, least-loaded, weighted, prefix-affinity, always-busiest"),
    ("--total-kv-blocks", "-5", "total-kv-blocks"),
    ("--beta-coeffs", "5752.7,NaN,5.99", "beta"),
    ("--kv-cpu-blocks", "-1", "kv-cpu-blocks"),
    ("--workload-traces-filepath", "missing.csv", "missing.csv"),
])
def test_bad_flag_gives_one_clear_line(workdir, flag, value, expected):
    (workdir / "out.json").unlink(missing_ok=True)
    result = blis(replace_flag(BASE, flag, value), workdir)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and expected in lines[0], lines[0]
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert not (workdir / "out.json").exists()


def test_missing_model_config_folder(workdir):
    args = ["run", "--workload", "traces", "--workload-traces-filepath", "trace.csv", "--model", "x/unknown",
            "--model-config-folder", "model_configs/nope", "--hardware-config", "hardware_config.json",
            "--hardware", "H100", "--tp", "1"]
    result = blis(args, workdir)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "model_configs/nope" in result.stderr


def test_malformed_trace_row_names_the_row(workdir):
    lines = (workdir / "trace.csv").read_text().splitlines()
    lines[3] = lines[3].replace("[", "[oops,", 1)
    (workdir / "bad.csv").write_text("\n".join(lines) + "\n")
    result = blis(replace_flag(BASE, "--workload-traces-filepath", "bad.csv"), workdir)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "row 2" in result.stderr and "bad.csv" in result.stderr


def test_good_run_exits_zero_and_writes_results(workdir):
    (workdir / "out.json").unlink(missing_ok=True)
    result = blis(BASE, workdir)
    assert result.returncode == 0, result.stderr
    assert "=== Simulation Metrics ===" in result.stdout
    assert (workdir / "out.json").exists()


@pytest.mark.parametrize("extra, expected", [
    (["--num-instances", "2", "--admission-policy", "token-bucket", "--token-bucket-capacity", "-5"],
     "token-bucket-capacity"),
    (["--num-instances", "2", "--admission-policy", "token-bucket", "--token-bucket-refill-rate", "NaN"],
     "token-bucket-refill-rate"),
    (["--num-instances", "2", "--routing-policy", "weighted", "--routing-cache-weight", "-0.5"], "weights"),
    (["--num-instances", "2", "--routing-policy", "weighted", "--routing-cache-weight", "0",
      "--routing-load-weight", "0"], "positive sum"),
    (["--kv-cpu-blocks", "100", "--kv-offload-threshold", "1.5"], "kv-offload-threshold"),
    (["--kv-cpu-blocks", "100", "--kv-transfer-bandwidth", "0"], "kv-transfer-bandwidth"),
])
def test_bad_cluster_and_tier_settings(workdir, extra, expected):
    (workdir / "out.json").unlink(missing_ok=True)
    result = blis(BASE + extra, workdir)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert expected in result.stderr, result.stderr
    assert not (workdir / "out.json").exists()
