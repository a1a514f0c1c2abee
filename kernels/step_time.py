"""Step-time models: the trained blackbox (beta) regression and the analytical roofline.

Float operations follow the reference's evaluation order so that the truncation
(blackbox) and rounding (roofline) to integer microseconds land on the same tick.
"""
import math

from numba import njit



@njit(cache=True, error_model="numpy", forceinline=True)
def blackbox_step_time_nb(cfg, cache_miss_tokens, decode_tokens):
    t = 0.0
    t += cfg.beta0
    t += cfg.beta1 * float(cache_miss_tokens)
    t += cfg.beta2 * float(decode_tokens)
    return int(t)


@njit(cache=True, error_model="numpy")
def _model_shape_nb(cfg):
    """(d_model, layers, heads, kv heads, head dim, FFN dim) as the reference derives them."""
    d_model = cfg.hidden_dim
    n_layers = cfg.num_layers
    n_heads = cfg.num_heads
    n_kv = cfg.num_kv_heads
    if n_kv == 0.0:
        n_kv = n_heads
    d_head = d_model / n_heads
    d_ff = 4.0 * d_model
    if cfg.intermediate_dim > 0.0:
        d_ff = cfg.intermediate_dim
    return d_model, n_layers, n_heads, n_kv, d_head, d_ff


@njit(cache=True, error_model="numpy")
def _flops_nb(cfg, seq_len, new_tokens):
    """(gemm_ops, sram_ops) of one request's forward pass over new_tokens at context seq_len."""
    d_model, n_layers, n_heads, n_kv, d_head, d_ff = _model_shape_nb(cfg)
    seq = float(seq_len)
    new_t = float(new_tokens)
    d_kv = n_kv * d_head
    qkv = 2.0 * new_t * (d_model * d_model + 2.0 * d_model * d_kv)
    proj = 2.0 * new_t * d_model * d_model
    gemm = (qkv + proj) * n_layers
    eff_ctx = seq
    if new_t > 1.0:
        eff_ctx = seq + (new_t - 1.0) / 2.0
    attn_gemm = 4.0 * n_heads * new_t * eff_ctx * d_head
    rope = 2.0 * new_t * d_model
    vector = (5.0 * n_heads * new_t * eff_ctx) + rope
    gemm += attn_gemm * n_layers
    sram = vector * n_layers
    gemm += 2.0 * new_t * (3.0 * d_model * d_ff) * n_layers
    return gemm, sram


@njit(cache=True, error_model="numpy")
def _weight_bytes_nb(cfg):
    d_model, n_layers, n_heads, n_kv, d_head, d_ff = _model_shape_nb(cfg)
    d_kv = n_kv * d_head
    per_layer = d_model * (d_model + 2.0 * d_kv) + (d_model * d_model) + (3.0 * d_model * d_ff)
    return per_layer * n_layers * cfg.bytes_per_param


@njit(cache=True, error_model="numpy")
def _dynamic_bytes_nb(cfg, seq_len, new_tokens, weights):
    """Bytes moved besides the weights: KV growth, KV reads of the past, activations."""
    d_model, n_layers, n_heads, n_kv, d_head, _ = _model_shape_nb(cfg)
    bpp = cfg.bytes_per_param
    new_t = float(new_tokens)
    kv_per_token = 2.0 * n_layers * n_kv * d_head * bpp
    growth = kv_per_token * new_t
    access = kv_per_token * float(seq_len)
    activations = n_layers * d_model * bpp * new_t
    # the reference sums a map holding the weights too, then subtracts them
    total = weights + growth + access + activations
    return total - weights


@njit(cache=True, error_model="numpy")
def go_round_nb(x):
    """Go's math.Round: half away from zero."""
    t = math.trunc(x)
    if abs(x - t) >= 0.5:
        t += math.copysign(1.0, x)
    return t


@njit(cache=True, error_model="numpy")
def roofline_step_time_nb(cfg, batch, batch_len, rq, in_len):
    """Analytical step time of the running batch (prefill and decode phases each take their bottleneck)."""
    tp = cfg.tp
    tp_f = float(tp)
    peak_flops = cfg.tflops_peak * 1e12
    peak_bw = cfg.bw_peak_tbs * 1e12
    eff_bw = peak_bw * cfg.bw_eff_constant
    vector_peak = peak_flops * 0.10
    weights = _weight_bytes_nb(cfg)
    p_gemm = 0.0
    p_vec = 0.0
    p_dyn = 0.0
    d_gemm = 0.0
    d_vec = 0.0
    d_dyn = 0.0
    n_prefill = 0
    n_decode = 0
    for k in range(batch_len):
        r = batch[k]
        progress = rq[r].progress
        if progress < in_len[r]:
            n_prefill += 1
            g, s = _flops_nb(cfg, progress, rq[r].num_new)
            p_gemm += g / tp_f
            p_vec += s / tp_f
            p_dyn += _dynamic_bytes_nb(cfg, progress, rq[r].num_new, weights) / tp_f
        else:
            n_decode += 1
            g, s = _flops_nb(cfg, progress, 1)
            d_gemm += g / tp_f
            d_vec += s / tp_f
            d_dyn += _dynamic_bytes_nb(cfg, progress, 1, weights) / tp_f
    prefill_compute = 0.0
    prefill_memory = 0.0
    decode_compute = 0.0
    decode_memory = 0.0
    if n_prefill > 0:
        prefill_compute = (p_gemm / (peak_flops * cfg.mfu_prefill)) + (p_vec / vector_peak)
        prefill_memory = (weights / tp_f + p_dyn) / eff_bw
    if n_decode > 0:
        decode_compute = (d_gemm / (peak_flops * cfg.mfu_decode)) + (d_vec / vector_peak)
        decode_memory = (weights / tp_f + d_dyn) / eff_bw
    hardware_s = max(prefill_compute, prefill_memory) + max(decode_compute, decode_memory)
    n_layers = cfg.num_layers
    layer_floor_s = (n_layers * cfg.per_layer_overhead) / 1e6
    comm_s = 0.0
    if tp > 1:
        comm_s = (n_layers * 2.0 * cfg.all_reduce_latency) / 1e6
    total_us = (hardware_s * 1e6) + (layer_floor_s * 1e6) + (comm_s * 1e6) + cfg.t_overhead_micros
    return int(go_round_nb(total_us))
