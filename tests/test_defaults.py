import json
from pathlib import Path

import pytest

from blis_sweep.data.defaults import (coefficients, default_specs, load_defaults, workload_preset,
                                 workload_preset_names)
from blis_sweep.errors import BlisError

PARITY = Path(__file__).parent / "data" / "parity"
V084 = "vllm/vllm-openai:v0.8.4"

MINI = """
defaults:
  org/model-a:
    GPU: H100
    tensor_parallelism: 2
    vllm_version: v1
models:
- id: org/model-a
  GPU: H100
  tensor_parallelism: 2
  vllm_version: v1
  alpha_coeffs: [1, 2.5, 3e2]
  beta_coeffs: [4.0, 5.0, 6.0, 7.0]
  total_kv_blocks: 100
- id: org/model-a
  GPU: H100
  tensor_parallelism: 2
  vllm_version: v1
  alpha_coeffs: [9.0, 9.0, 9.0]
  beta_coeffs: [9.0, 9.0, 9.0]
  total_kv_blocks: 999
- id: org/bad
  GPU: H100
  tensor_parallelism: 1
  vllm_version: v1
  alpha_coeffs: %s
  beta_coeffs: [1.0, 2.0, 3.0]
  total_kv_blocks: %s
workloads:
  tiny:
    prompt_tokens: 10
    output_tokens: 5
"""


def mini(tmp_path, alpha="[1.0, 2.0, 3.0]", blocks="10"):
    path = tmp_path / "defaults.yaml"
    path.write_text(MINI % (alpha, blocks))
    return path


def test_v06_defaults_lookup_case():
    flags = json.loads((PARITY / "v06_defaults_lookup" / "case.json").read_text())["flags"]
    gpu, tp, version = default_specs(flags["model"])
    assert (gpu, tp, version) == ("H100", 4, V084)
    alpha, beta, blocks = coefficients(flags["model"], flags["tp"], flags["hardware"], version)
    assert alpha == (10024.457261493666, 2.110235670377125, 5822.543580863752)
    assert beta == (2395.9072629127068, 11.768985404449758, 8.894510818868516)
    assert blocks == 105497


def test_model_name_is_lowercased_but_gpu_and_version_are_exact():
    assert coefficients("IBM-Granite/Granite-3.1-8B-Instruct", 2, "H100", V084)[2] == 105497
    assert default_specs("Meta-Llama/Llama-3.1-8B-Instruct") == ("H100", 2, V084)
    assert coefficients("ibm-granite/granite-3.1-8b-instruct", 2, "h100", V084) is None
    assert coefficients("ibm-granite/granite-3.1-8b-instruct", 2, "H100", "v0.8.4") is None
    assert coefficients("ibm-granite/granite-3.1-8b-instruct", 8, "H100", V084) is None
    # The reference's table names the A100 "A100-80".
    assert coefficients("ibm-granite/granite-3.1-8b-instruct", 1, "A100-80", V084)[2] == 23257


def test_absent_model_defaults():
    assert default_specs("nobody/nothing") == ("", 0, "")
    assert coefficients("nobody/nothing", 1, "H100", V084) is None


def test_first_matching_entry_wins_and_yaml12_floats(tmp_path):
    path = mini(tmp_path)
    assert coefficients("org/model-a", 2, "H100", "v1", path) == ((1.0, 2.5, 300.0), (4.0, 5.0, 6.0, 7.0), 100)
    assert default_specs("ORG/MODEL-A", path) == ("H100", 2, "v1")


@pytest.mark.parametrize("alpha,message", [
    ("[1.0, 2.0]", "at least 3 numbers"),
    ("[1.0, .inf, 2.0]", "finite numbers"),
    ("[1.0, .nan, 2.0]", "finite numbers"),
    ("[1.0, abc, 2.0]", "finite numbers"),
    ("7", "at least 3 numbers"),
])
def test_bad_coefficients_named(tmp_path, alpha, message):
    with pytest.raises(BlisError, match=rf"models\[2\] \(org/bad, H100, tp=1\) alpha_coeffs must .*{message}"):
        coefficients("org/bad", 1, "H100", "v1", mini(tmp_path, alpha=alpha))


def test_bad_entry_is_only_reported_when_used(tmp_path):
    assert coefficients("org/model-a", 2, "H100", "v1", mini(tmp_path, alpha="[1]")) is not None


def test_kv_blocks_must_be_positive(tmp_path):
    with pytest.raises(BlisError, match="total_kv_blocks must be > 0"):
        coefficients("org/bad", 1, "H100", "v1", mini(tmp_path, blocks="0"))
    with pytest.raises(BlisError, match="total_kv_blocks must be an integer"):
        coefficients("org/bad", 1, "H100", "v1", mini(tmp_path, blocks="1.5"))


def test_bundled_presets():
    assert workload_preset_names() == ["chatbot", "contentgen", "multidoc", "summarization"]
    assert workload_preset("chatbot") == {
        "prefix_tokens": 0, "prompt_tokens": 256, "prompt_tokens_stdev": 100, "prompt_tokens_min": 2,
        "prompt_tokens_max": 800, "output_tokens": 256, "output_tokens_stdev": 100, "output_tokens_min": 1,
        "output_tokens_max": 1024}
    assert workload_preset("multidoc")["prefix_tokens"] == 0  # absent in the file


def test_unknown_preset_lists_presets(tmp_path):
    with pytest.raises(BlisError, match="unknown workload preset 'Chatbot'.*chatbot, contentgen, multidoc, summarization"):
        workload_preset("Chatbot")
    assert workload_preset("tiny", mini(tmp_path))["output_tokens_max"] == 0


def test_file_errors(tmp_path):
    with pytest.raises(BlisError, match="cannot read defaults file .*missing.yaml"):
        load_defaults(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [\n")
    with pytest.raises(BlisError, match="bad.yaml is not valid YAML"):
        load_defaults(bad)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("models: {a: 1}\n")
    with pytest.raises(BlisError, match="`models` must be a list"):
        load_defaults(wrong)
