"""Decision-trace records: per routing decision, the top-k counterfactual candidates and the regret."""
from numba import njit

from .layout import ROUTE_WEIGHTED


@njit(cache=True, error_model="numpy")
def _digit_count_nb(x):
    """Decimal digits of x >= 0, and 10 ** (digits - 1)."""
    n = 1
    top = 1
    while x // top >= 10:
        top *= 10
        n += 1
    return n, top


@njit(cache=True, error_model="numpy")
def instance_id_less_nb(a, b):
    """"instance_<a>" < "instance_<b>" as strings (so instance_10 sorts before instance_2).

    Allocation-free: it runs inside the event loop, which is compiled without reference counting."""
    na, ta = _digit_count_nb(a)
    nb, tb = _digit_count_nb(b)
    for _ in range(min(na, nb)):
        ca = (a // ta) % 10
        cb = (b // tb) % 10
        if ca != cb:
            return ca < cb
        ta //= 10
        tb //= 10
    return na < nb


@njit(cache=True, error_model="numpy")
def routing_scores_nb(cfg, ist, n_inst, out):
    """Scores the counterfactual compares: weighted scoring's own (the router's), else minus the load."""
    if cfg.routing_policy == ROUTE_WEIGHTED:
        weight_sum = cfg.routing_cache_weight + cfg.routing_load_weight
        cache_w = cfg.routing_cache_weight / weight_sum
        load_w = cfg.routing_load_weight / weight_sum
        max_free = 0
        for i in range(n_inst):
            max_free = max(max_free, ist[i].kv_total - ist[i].kv_used)
        for i in range(n_inst):
            cache_score = 0.0
            if max_free > 0:
                cache_score = float(ist[i].kv_total - ist[i].kv_used) / float(max_free)
            out[i] = cache_score * cache_w + (1.0 / (1.0 + float(ist[i].wq_len))) * load_w
    else:
        for i in range(n_inst):
            out[i] = -float(ist[i].wq_len + ist[i].rb_len)


@njit(cache=True, error_model="numpy")
def record_routing_nb(cfg, ist, n_inst, chosen, clock, route, candidates, scores, order):
    """Fill one routing decision's trace: `route` (a record) and its top-k `candidates` (k = cfg.trace_k)."""
    k = cfg.trace_k
    route.clock = clock
    route.regret = 0.0
    if k <= 0:
        return
    routing_scores_nb(cfg, ist, n_inst, scores)
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
    for j in range(min(n, candidates.shape[0])):
        i = order[j]
        cand = candidates[j]
        cand.instance = i
        cand.score = scores[i]
        cand.queue_depth = ist[i].wq_len
        cand.batch_size = ist[i].rb_len
        cand.kv_utilization = float(ist[i].kv_used) / float(ist[i].kv_total)
        cand.free_kv_blocks = ist[i].kv_total - ist[i].kv_used
    regret = scores[order[0]] - scores[chosen]
    route.regret = regret if regret > 0 else 0.0
