import json

import pytest

from blis_sweep.errors import BlisError
from blis_sweep.data.hardware import gpu_calib
from blis_sweep.data.model_config import (auto_kv_blocks, kv_bytes_per_token, load_model_config, model_config_from_dict,
                                     parameter_count, roofline_params, weight_bytes)
from blis_sweep.data.paths import (available_model_config_dirs, bundled_defaults_yaml, bundled_hardware_config,
                              bundled_model_configs_dir, model_config_dir_for)
from blis_sweep.sim_config import RooflineParams

BASE = {"num_hidden_layers": 4, "hidden_size": 64, "num_attention_heads": 8, "torch_dtype": "bfloat16"}


def write(tmp_path, cfg):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    return path


def llama8b():
    return load_model_config(model_config_dir_for("meta-llama/llama-3.1-8b-instruct"))


def test_bundled_paths_exist():
    assert bundled_defaults_yaml().is_file()
    assert bundled_hardware_config().is_file()
    assert "llama-3.1-8b-instruct" in available_model_config_dirs()
    assert len(available_model_config_dirs()) == 10


def test_model_dir_mapping_is_case_insensitive_after_the_slash():
    assert model_config_dir_for("meta-llama/Llama-3.1-8B-Instruct") == bundled_model_configs_dir() / "llama-3.1-8b-instruct"
    assert model_config_dir_for("Qwen2.5-7B-Instruct").name == "qwen2.5-7b-instruct"
    with pytest.raises(BlisError, match=r"no model config for 'org/unknown'.*available: codellama-34b-instruct-hf, "):
        model_config_dir_for("org/unknown")


def test_llama_8b_shape():
    m = llama8b()
    assert (m.num_layers, m.hidden_dim, m.num_heads, m.num_kv_heads, m.vocab_size, m.intermediate_dim,
            m.bytes_per_param) == (32, 4096, 32, 8, 128256, 14336, 2.0)


def test_roofline_params_llama_8b_h100():
    assert roofline_params(llama8b(), gpu_calib("H100"), 2) == RooflineParams(
        num_layers=32, hidden_dim=4096, num_heads=32, num_kv_heads=8, intermediate_dim=14336, bytes_per_param=2.0,
        tflops_peak=989.5, bw_peak_tbs=3.35, bw_eff_constant=0.72, t_overhead_micros=500.0, per_layer_overhead=20.0,
        mfu_prefill=0.65, mfu_decode=0.12, all_reduce_latency=20.0, tp=2)
    with pytest.raises(BlisError, match="tp must be an integer >= 1"):
        roofline_params(llama8b(), gpu_calib("H100"), 0)


def test_text_config_overrides_top_level(tmp_path):
    cfg = {**BASE, "text_config": {"num_hidden_layers": 7, "num_key_value_heads": 2, "torch_dtype": "float32"}}
    m = load_model_config(write(tmp_path, cfg))
    assert (m.num_layers, m.num_kv_heads, m.bytes_per_param) == (7, 2, 4.0)


def test_kv_heads_default_to_heads_and_numbers_truncate():
    m = model_config_from_dict({**BASE, "hidden_size": 64.9, "intermediate_size": "128"})
    assert (m.num_kv_heads, m.hidden_dim, m.intermediate_dim, m.vocab_size) == (8, 64, 0, 0)


@pytest.mark.parametrize("dtype,size", [("float32", 4), ("float16", 2), ("bfloat16", 2), ("int8", 1),
                                        ("uint8", 1), ("fp8", 1), ("int4", 1), ("nf4", 1)])
def test_dtype_bytes(dtype, size):
    assert model_config_from_dict({**BASE, "torch_dtype": dtype}).bytes_per_param == size


@pytest.mark.parametrize("key", ["num_hidden_layers", "hidden_size", "num_attention_heads"])
def test_missing_or_zero_required_field_named_with_file(tmp_path, key):
    cfg = {k: v for k, v in BASE.items() if k != key}
    with pytest.raises(BlisError, match=rf"config.json: {key} is missing or zero"):
        load_model_config(write(tmp_path, cfg))
    with pytest.raises(BlisError, match=rf"config.json: {key} is missing or zero"):
        load_model_config(write(tmp_path, {**BASE, key: 0}))
    with pytest.raises(BlisError, match=rf"{key} must be positive"):
        model_config_from_dict({**BASE, key: -2})


def test_torch_dtype_missing_or_unknown(tmp_path):
    with pytest.raises(BlisError, match=r"config.json: torch_dtype is missing"):
        load_model_config(write(tmp_path, {k: v for k, v in BASE.items() if k != "torch_dtype"}))
    with pytest.raises(BlisError, match=r"torch_dtype 'float64' is not supported"):
        load_model_config(write(tmp_path, {**BASE, "torch_dtype": "float64"}))


def test_unreadable_or_bad_json(tmp_path):
    with pytest.raises(BlisError, match="cannot read model config"):
        load_model_config(tmp_path / "missing" / "config.json")
    path = tmp_path / "config.json"
    path.write_text("{")
    with pytest.raises(BlisError, match="config.json is not valid JSON"):
        load_model_config(path)


def test_memory_sizing_llama_8b():
    m = llama8b()
    # 32 layers * (4096*(4096+2*1024) + 4096^2 + 3*4096*14336) + 2 * 128256*4096 (untied lm_head)
    assert parameter_count(m) == 8_029_995_008
    assert weight_bytes(m) == 16_059_990_016
    assert kv_bytes_per_token(m) == 2 * 32 * 8 * 128 * 2
    # floor((0.9 * 80 GiB - weights) / (131072 B * 16 tokens)) = floor(29206.08)
    assert auto_kv_blocks(m, 80, 1, 16) == 29206
    assert auto_kv_blocks(m, 80, 2, 16) == 66070
    assert auto_kv_blocks(m, 80, 1, 16, gpu_memory_utilization=0.5) == 12822


def test_tied_embeddings_and_explicit_head_dim():
    tied = load_model_config(model_config_dir_for("Qwen/Qwen2.5-1.5B-Instruct"))
    assert tied.tie_word_embeddings
    untied = model_config_from_dict({**BASE, "vocab_size": 100})
    tied_small = model_config_from_dict({**BASE, "vocab_size": 100, "tie_word_embeddings": True})
    assert parameter_count(untied) - parameter_count(tied_small) == 100 * 64
    nemo = load_model_config(model_config_dir_for("mistralai/Mistral-Nemo-Instruct-2407"))
    assert nemo.effective_head_dim == 128  # config's head_dim, not 5120 / 32
    assert kv_bytes_per_token(nemo) == 2 * 40 * 8 * 128 * 2


def test_model_too_big_gives_non_positive_blocks():
    m70 = load_model_config(model_config_dir_for("meta-llama/Llama-3.1-70B-Instruct"))
    assert auto_kv_blocks(m70, 80, 1, 16) <= 0
    assert auto_kv_blocks(m70, 80, 4, 16) > 0


def test_auto_kv_blocks_validation():
    m = llama8b()
    with pytest.raises(BlisError, match="memory_gib"):
        auto_kv_blocks(m, None, 1, 16)
    with pytest.raises(BlisError, match="block size"):
        auto_kv_blocks(m, 80, 1, 0)
    with pytest.raises(BlisError, match="utilization"):
        auto_kv_blocks(m, 80, 1, 16, gpu_memory_utilization=1.5)


def test_every_bundled_model_config_loads():
    for name in available_model_config_dirs():
        m = load_model_config(bundled_model_configs_dir() / name)
        assert m.num_layers > 0 and m.bytes_per_param == 2.0
