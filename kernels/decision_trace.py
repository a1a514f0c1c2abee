"""Decision-trace records: per routing decision, the top-k counterfactual candidates and the regret."""
import numpy as np
from numba import njit

from .layout import (
    CF_CACHE_WEIGHT, CF_LOAD_WEIGHT, CI_ROUTING, ROUTE_WEIGHTED, TC_BATCH_SIZE, TC_FREE_KV_BLOCKS,
    TC_INSTANCE, TC_KV_UTILIZATION, TC_QUEUE_DEPTH, TC_SCORE, TR_CLOCK, TR_REGRET,
)
from .state import IS_KV_TOTAL, IS_KV_USED, IS_RB_LEN, IS_WQ_LEN


@njit(cache=True, error_model="numpy")
def _decimal_digits_nb(x, out):
    """Decimal digits of x >= 0 into out, least significant first; returns their count."""
    n = 0
    while True:
        out[n] = x % 10
        n += 1
        x //= 10
        if x == 0:
            return n


@njit(cache=True, error_model="numpy")
def instance_id_less_nb(a, b):
    """"instance_<a>" < "instance_<b>" as strings (so instance_10 sorts before instance_2)."""
    da = np.empty(20, dtype=np.int64)
    db = np.empty(20, dtype=np.int64)
    na = _decimal_digits_nb(a, da)
    nb = _decimal_digits_nb(b, db)
    for k in range(min(na, nb)):
        ca = da[na - 1 - k]
        cb = db[nb - 1 - k]
        if ca != cb:
            return ca < cb
    return na < nb


@njit(cache=True, error_model="numpy")
def routing_scores_nb(cfg_int, cfg_float, c, ist, n_inst, out):
    """Scores the counterfactual compares: weighted scoring's own, else minus the load."""
    if cfg_int[c, CI_ROUTING] == ROUTE_WEIGHTED:
        weight_sum = cfg_float[c, CF_CACHE_WEIGHT] + cfg_float[c, CF_LOAD_WEIGHT]
        cache_w = cfg_float[c, CF_CACHE_WEIGHT] / weight_sum
        load_w = cfg_float[c, CF_LOAD_WEIGHT] / weight_sum
        max_free = 0
        for i in range(n_inst):
            max_free = max(max_free, ist[i, IS_KV_TOTAL] - ist[i, IS_KV_USED])
        for i in range(n_inst):
            cache_score = 0.0
            if max_free > 0:
                cache_score = float(ist[i, IS_KV_TOTAL] - ist[i, IS_KV_USED]) / float(max_free)
            out[i] = cache_score * cache_w + (1.0 / (1.0 + float(ist[i, IS_WQ_LEN]))) * load_w
    else:
        for i in range(n_inst):
            out[i] = -float(ist[i, IS_WQ_LEN] + ist[i, IS_RB_LEN])


@njit(cache=True, error_model="numpy")
def record_routing_nb(cfg_int, cfg_float, c, ist, n_inst, k, chosen, clock, r, trace_route, trace_candidates,
                      scores, order):
    trace_route[c, r, TR_CLOCK] = clock
    trace_route[c, r, TR_REGRET] = 0.0
    if k <= 0:
        return
    routing_scores_nb(cfg_int, cfg_float, c, ist, n_inst, scores)
    for i in range(n_inst):
        order[i] = i
    # insertion sort: score descending, then instance id string ascending
    for a in range(1, n_inst):
        x = order[a]
        b = a - 1
        while b >= 0:
            y = order[b]
            if scores[x] > scores[y] or (scores[x] == scores[y] and instance_id_less_nb(x, y)):
                order[b + 1] = y
                b -= 1
            else:
                break
        order[b + 1] = x
    n = min(k, n_inst)
    for j in range(min(n, trace_candidates.shape[2])):
        i = order[j]
        trace_candidates[c, r, j, TC_INSTANCE] = i
        trace_candidates[c, r, j, TC_SCORE] = scores[i]
        trace_candidates[c, r, j, TC_QUEUE_DEPTH] = ist[i, IS_WQ_LEN]
        trace_candidates[c, r, j, TC_BATCH_SIZE] = ist[i, IS_RB_LEN]
        trace_candidates[c, r, j, TC_KV_UTILIZATION] = float(ist[i, IS_KV_USED]) / float(ist[i, IS_KV_TOTAL])
        trace_candidates[c, r, j, TC_FREE_KV_BLOCKS] = ist[i, IS_KV_TOTAL] - ist[i, IS_KV_USED]
    regret = scores[order[0]] - scores[chosen]
    trace_route[c, r, TR_REGRET] = regret if regret > 0 else 0.0
