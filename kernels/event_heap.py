"""Binary min-heaps with Go container/heap's exact push and pop.

The instance heap orders by timestamp only, so same-time events resolve by heap
position: the sift order below must match Go's (append + up; swap root with last,
down over n-1, remove last) for ties to break as in the reference.
"""
from numba import njit

from .state import H_KIND, H_REQ, H_TIME, IS_HEAP_LEN, K_PRIO, K_SEQ, K_TIME, N_K


@njit(cache=True, error_model="numpy", inline="always")
def _swap_nb(heap, i, a, b):
    for f in range(3):
        t = heap[i, f, a]
        heap[i, f, a] = heap[i, f, b]
        heap[i, f, b] = t


@njit(cache=True, error_model="numpy", forceinline=True)
def heap_push_nb(heap, ist, i, time, kind, req):
    """Push onto instance i's heap; False when the preallocated capacity is exhausted."""
    n = ist[i, IS_HEAP_LEN]
    if n >= heap.shape[2]:
        return False
    heap[i, H_TIME, n] = time
    heap[i, H_KIND, n] = kind
    heap[i, H_REQ, n] = req
    ist[i, IS_HEAP_LEN] = n + 1
    j = n
    while j > 0:
        p = (j - 1) // 2
        if not heap[i, H_TIME, j] < heap[i, H_TIME, p]:
            break
        _swap_nb(heap, i, p, j)
        j = p
    return True


@njit(cache=True, error_model="numpy", forceinline=True)
def heap_pop_nb(heap, ist, i):
    """Pop the root of instance i's heap; returns (time, kind, req)."""
    n = ist[i, IS_HEAP_LEN] - 1
    _swap_nb(heap, i, 0, n)
    k = 0
    while True:
        c = 2 * k + 1
        if c >= n:
            break
        c2 = c + 1
        if c2 < n and heap[i, H_TIME, c2] < heap[i, H_TIME, c]:
            c = c2
        if not heap[i, H_TIME, c] < heap[i, H_TIME, k]:
            break
        _swap_nb(heap, i, k, c)
        k = c
    ist[i, IS_HEAP_LEN] = n
    return heap[i, H_TIME, n], heap[i, H_KIND, n], heap[i, H_REQ, n]


@njit(cache=True, error_model="numpy", inline="always")
def _cluster_less_nb(ch, a, b):
    if ch[K_TIME, a] != ch[K_TIME, b]:
        return ch[K_TIME, a] < ch[K_TIME, b]
    if ch[K_PRIO, a] != ch[K_PRIO, b]:
        return ch[K_PRIO, a] < ch[K_PRIO, b]
    return ch[K_SEQ, a] < ch[K_SEQ, b]


@njit(cache=True, error_model="numpy", inline="always")
def _cluster_swap_nb(ch, a, b):
    for f in range(N_K):
        t = ch[f, a]
        ch[f, a] = ch[f, b]
        ch[f, b] = t


@njit(cache=True, error_model="numpy", forceinline=True)
def cluster_push_nb(ch, n, time, prio, seq, req):
    """Push a control-plane event; (time, priority, sequence) is a total order. Returns new length or -1."""
    if n >= ch.shape[1]:
        return -1
    ch[K_TIME, n] = time
    ch[K_PRIO, n] = prio
    ch[K_SEQ, n] = seq
    ch[3, n] = req
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
