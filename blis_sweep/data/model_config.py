"""Model shape from a HuggingFace config.json (read like the reference), and memory sizing."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from blis_sweep.errors import BlisError
from blis_sweep.data.hardware import GpuCalib
from blis_sweep.sim_config import RooflineParams

# torch_dtype -> bytes per parameter, as the reference maps them (4-bit types sit in 1-byte containers).
DTYPE_BYTES = {
    "float32": 4, "float16": 2, "bfloat16": 2,
    "int8": 1, "uint8": 1, "fp8": 1, "int4": 1, "nf4": 1,
}


# Largest accepted value of each integer field: far above any real model, low enough that
# the roofline's products (e.g. layers x hidden^2 x bytes) stay exact in float64.
MODEL_FIELD_MAX = {
    "num_hidden_layers": 10_000, "hidden_size": 1 << 20, "num_attention_heads": 1 << 16,
    "num_key_value_heads": 1 << 16, "vocab_size": 1 << 24, "intermediate_size": 1 << 24, "head_dim": 1 << 16,
}


@dataclass(frozen=True)
class ModelConfig:
    num_layers: int
    hidden_dim: int
    num_heads: int
    num_kv_heads: int  # num_attention_heads when the config has none
    vocab_size: int  # 0 when absent
    intermediate_dim: int  # 0 when absent: the roofline then uses 4 * hidden_dim
    bytes_per_param: float
    # Only memory sizing uses these two; the reference's roofline ignores them.
    head_dim: int = 0  # explicit `head_dim` of the config, 0 when absent
    tie_word_embeddings: bool = False

    @property
    def effective_head_dim(self) -> int:
        return self.head_dim if self.head_dim > 0 else self.hidden_dim // self.num_heads

    @property
    def effective_intermediate_dim(self) -> int:
        return self.intermediate_dim if self.intermediate_dim > 0 else 4 * self.hidden_dim


def load_model_config(path: str | Path) -> ModelConfig:
    """Parse a config.json, or a folder holding one."""
    path = Path(path)
    if path.is_dir():
        path = path / "config.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise BlisError(f"cannot read model config {path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise BlisError(f"model config {path} is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise BlisError(f"model config {path} must be a JSON object")
    return model_config_from_dict(raw, source=str(path))


def model_config_from_dict(raw: dict, source: str = "model config") -> ModelConfig:
    merged = dict(raw)
    text_config = raw.get("text_config")
    if isinstance(text_config, dict):  # multimodal configs: the text model's keys win
        merged.update(text_config)

    def integer(key: str, required: bool) -> int:
        value = merged.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
                and value > MODEL_FIELD_MAX[key]:
            raise BlisError(f"{source}: {key} must be at most {MODEL_FIELD_MAX[key]}, got {value:g}")
        # The reference reads only JSON numbers, truncating toward zero; anything else counts as 0.
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            number = 0
        elif isinstance(value, float) and not math.isfinite(value):
            raise BlisError(f"{source}: {key} must be a finite number, got {value}")
        else:
            number = int(value)
        if number < 0 or (required and number == 0):
            what = "is missing or zero" if number == 0 else f"must be positive, got {number}"
            raise BlisError(f"{source}: {key} {what}")
        return number

    num_layers = integer("num_hidden_layers", True)
    hidden_dim = integer("hidden_size", True)
    num_heads = integer("num_attention_heads", True)
    num_kv_heads = integer("num_key_value_heads", False) or num_heads
    if num_heads > hidden_dim:
        raise BlisError(f"{source}: num_attention_heads ({num_heads}) must be at most hidden_size ({hidden_dim})")
    if num_kv_heads > num_heads:
        raise BlisError(f"{source}: num_key_value_heads ({num_kv_heads}) must be at most num_attention_heads "
                        f"({num_heads})")
    dtype = merged.get("torch_dtype")
    if not isinstance(dtype, str) or dtype not in DTYPE_BYTES:
        raise BlisError(
            f"{source}: torch_dtype {'is missing' if dtype is None else f'{dtype!r} is not supported'}"
            f" (supported: {', '.join(DTYPE_BYTES)})"
        )
    return ModelConfig(
        num_layers=num_layers,
        hidden_dim=hidden_dim,
        num_heads=num_heads,
        num_kv_heads=num_kv_heads,
        vocab_size=integer("vocab_size", False),
        intermediate_dim=integer("intermediate_size", False),
        bytes_per_param=float(DTYPE_BYTES[dtype]),
        head_dim=integer("head_dim", False),
        tie_word_embeddings=merged.get("tie_word_embeddings") is True,
    )


def roofline_params(model_cfg: ModelConfig, gpu_calib: GpuCalib, tp: int) -> RooflineParams:
    if isinstance(tp, bool) or not isinstance(tp, int) or tp < 1:
        raise BlisError(f"tp must be an integer >= 1, got {tp!r}")
    return RooflineParams(
        num_layers=model_cfg.num_layers,
        hidden_dim=model_cfg.hidden_dim,
        num_heads=model_cfg.num_heads,
        num_kv_heads=model_cfg.num_kv_heads,
        intermediate_dim=model_cfg.intermediate_dim,
        bytes_per_param=model_cfg.bytes_per_param,
        tflops_peak=gpu_calib.tflops_peak,
        bw_peak_tbs=gpu_calib.bw_peak_tbs,
        bw_eff_constant=gpu_calib.bw_eff_constant,
        t_overhead_micros=gpu_calib.t_overhead_micros,
        per_layer_overhead=gpu_calib.per_layer_overhead,
        mfu_prefill=gpu_calib.mfu_prefill,
        mfu_decode=gpu_calib.mfu_decode,
        all_reduce_latency=gpu_calib.all_reduce_latency,
        tp=tp,
    )


def parameter_count(model_cfg: ModelConfig) -> int:
    """Dense decoder parameters: attention + SwiGLU MLP per layer, plus embeddings and lm_head."""
    d = model_cfg.hidden_dim
    d_kv = model_cfg.num_kv_heads * model_cfg.effective_head_dim
    per_layer = d * (d + 2 * d_kv) + d * d + 3 * d * model_cfg.effective_intermediate_dim
    embeddings = model_cfg.vocab_size * d * (1 if model_cfg.tie_word_embeddings else 2)
    return per_layer * model_cfg.num_layers + embeddings


def weight_bytes(model_cfg: ModelConfig) -> int:
    return int(parameter_count(model_cfg) * model_cfg.bytes_per_param)


def kv_bytes_per_token(model_cfg: ModelConfig) -> int:
    """K and V of one token across all layers."""
    return int(2 * model_cfg.num_layers * model_cfg.num_kv_heads * model_cfg.effective_head_dim
               * model_cfg.bytes_per_param)


def auto_kv_blocks(model_cfg: ModelConfig, memory_gib: float | None, tp: int, block_size: int,
                   gpu_memory_utilization: float = 0.9) -> int:
    """KV blocks that fit next to the weights on `tp` GPUs (vLLM-style budget).

    Returns 0 or a negative number when the weights alone do not fit; the caller
    reports that configuration as infeasible.
    """
    if memory_gib is None:
        raise BlisError("the GPU has no memory_gib in the hardware config; cannot derive the KV block count")
    if not (math.isfinite(memory_gib) and memory_gib > 0):
        raise BlisError(f"memory_gib must be a finite number > 0, got {memory_gib}")
    if not isinstance(tp, int) or tp < 1:
        raise BlisError(f"tp must be an integer >= 1, got {tp!r}")
    if not isinstance(block_size, int) or block_size < 1:
        raise BlisError(f"block size must be an integer >= 1, got {block_size!r}")
    if not (0 < gpu_memory_utilization <= 1):
        raise BlisError(f"gpu memory utilization must be in (0, 1], got {gpu_memory_utilization}")
    budget = gpu_memory_utilization * memory_gib * 2**30 * tp - weight_bytes(model_cfg)
    return math.floor(budget / (kv_bytes_per_token(model_cfg) * block_size))
