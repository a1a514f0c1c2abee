"""Binary min-heaps with Go container/heap's exact push and pop.

The instance heap orders by timestamp only, so same-time events resolve by heap
position: the sift order below must match Go's (append + up; swap root with last,
down over n-1, remove last) for ties to break as in the reference.
"""
from numba import njit


@njit(cache=True, error_model="numpy", inline="always")
def _swap_nb(h, a, b):
    """Swap entries a and b of one instance's heap row (records are views: copy fields)."""
    ea = h[a]
    eb = h[b]
    t, k, r = ea.time, ea.kind, ea.req
    ea.time, ea.kind, ea.req = eb.time, eb.kind, eb.req
    eb.time, eb.kind, eb.req = t, k, r


@njit(cache=True, error_model="numpy", forceinline=True)
def heap_push_nb(heap, ist, i, time, kind, req):
    """Push onto instance i's heap; False when the preallocated capacity is exhausted."""
    h = heap[i]
    n = ist[i].heap_len
    if n >= h.shape[0]:
        return False
    e = h[n]
    e.time = time
    e.kind = kind
    e.req = req
    ist[i].heap_len = n + 1
    j = n
    while j > 0:
        p = (j - 1) // 2
        if not h[j].time < h[p].time:
            break
        _swap_nb(h, p, j)
        j = p
    return True


@njit(cache=True, error_model="numpy", forceinline=True)
def heap_pop_nb(heap, ist, i):
    """Pop the root of instance i's heap; returns (time, kind, req)."""
    h = heap[i]
    n = ist[i].heap_len - 1
    _swap_nb(h, 0, n)
    k = 0
    while True:
        c = 2 * k + 1
        if c >= n:
            break
        c2 = c + 1
        if c2 < n and h[c2].time < h[c].time:
            c = c2
        if not h[c].time < h[k].time:
            break
        _swap_nb(h, k, c)
        k = c
    ist[i].heap_len = n
    e = h[n]
    return e.time, e.kind, e.req


@njit(cache=True, error_model="numpy", inline="always")
def _cluster_less_nb(ch, a, b):
    ea = ch[a]
    eb = ch[b]
    if ea.time != eb.time:
        return ea.time < eb.time
    if ea.prio != eb.prio:
        return ea.prio < eb.prio
    return ea.seq < eb.seq


@njit(cache=True, error_model="numpy", inline="always")
def _cluster_swap_nb(ch, a, b):
    ea = ch[a]
    eb = ch[b]
    t, p, s, r = ea.time, ea.prio, ea.seq, ea.req
    ea.time, ea.prio, ea.seq, ea.req = eb.time, eb.prio, eb.seq, eb.req
    eb.time, eb.prio, eb.seq, eb.req = t, p, s, r


@njit(cache=True, error_model="numpy", forceinline=True)
def cluster_push_nb(ch, n, time, prio, seq, req):
    """Push a control-plane event; (time, priority, sequence) is a total order. Returns new length or -1."""
    if n >= ch.shape[0]:
        return -1
    e = ch[n]
    e.time = time
    e.prio = prio
    e.seq = seq
    e.req = req
    j = n
    while j > 0:
        p = (j - 1) // 2
        if not _cluster_less_nb(ch, j, p):
            break
        _cluster_swap_nb(ch, p, j)
        j = p
    return n + 1


@njit(cache=True, error_model="numpy", forceinline=True)
def cluster_pop_nb(ch, length):
    """Pop the minimum; the popped entry is left at index length-1."""
    n = length - 1
    _cluster_swap_nb(ch, 0, n)
    k = 0
    while True:
        c = 2 * k + 1
        if c >= n:
            break
        c2 = c + 1
        if c2 < n and _cluster_less_nb(ch, c2, c):
            c = c2
        if not _cluster_less_nb(ch, c, k):
            break
        _cluster_swap_nb(ch, k, c)
        k = c
    return n
