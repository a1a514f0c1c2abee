"""Paged KV cache with prefix caching, exactly as the reference manages it.

Memory grows with blocks touched, never with the nominal block count: the
reference's free list starts as blocks 0..N-1 in order, and untouched blocks are
interchangeable, so blocks [touched, N) are an implicit head of the free list and
only blocks released at least once are linked explicitly (LRU order, tail append).

A request's block list (the reference's RequestMap entry) is a chain of nodes in a
per-configuration arena, walked backwards on release (reverse-order freeing).
Block identity for prefix caching is a hash of the exact token prefix it closes
(kernels.hashing); the hash map uses linear probing with backward-shift deletion.
"""
import numpy as np
from numba import njit

from .hashing import concat_hash_nb, mulmod_nb, slice_hash_nb, submod_nb
from .prefetch import prefetch_nb
from .state import (
    B_CPU_NTOK, B_CPU_TIME, B_CPU_VALID, B_HASHED, B_IN_USE, B_NEXT, B_NTOK, B_PREV, B_REF, BH_CPU,
    BH_GPU, CS_NODE_FREE, CS_NODE_TOP, CS_STATUS, IF_OFFLOAD_THRESHOLD, IF_TRANSFER_BANDWIDTH,
    IS_CACHE_HITS, IS_CACHE_MISSES, IS_CPU_CAPACITY, IS_CPU_ENTRIES, IS_CPU_HITS, IS_CPU_MISSES,
    IS_CPU_USED, IS_MEMO_COUNT, IS_MEMO_REQ, IS_MEMO_VERSION, IS_FREE_HEAD, IS_FREE_TAIL, IS_KV_TOTAL, IS_KV_TOUCHED, IS_KV_USED, IS_OFFLOADS,
    IS_PENDING_TRANSFER, IS_THRASHING, IS_TIER_CLOCK, IS_TRANSFER_BASE_LATENCY, R_LATEST_BLOCK,
    R_LATEST_NTOK, R_MAP_LAST, R_PEND_LEN,
    R_PEND_START, R_PROGRESS,
)

HT_EMPTY = np.uint64(1 << 63)  # real keys are < 2**61


# ---------------------------------------------------------------- hash map
@njit(cache=True, error_model="numpy", inline="always")
def _home_nb(key, mask):
    return np.int64((key ^ (key >> np.uint64(29))) & np.uint64(mask))


@njit(cache=True, error_model="numpy", forceinline=True)
def ht_get_nb(ht_key, ht_val, i, key):
    mask = ht_key.shape[1] - 1
    s = _home_nb(key, mask)
    while True:
        k = ht_key[i, s]
        if k == HT_EMPTY:
            return -1
        if k == key:
            return ht_val[i, s]
        s = (s + 1) & mask


# ht_val has one column more than ht_key: ht_val[i, capacity] counts the map's
# modifications, so a lookup can be reused while the map is unchanged.
@njit(cache=True, error_model="numpy", inline="always")
def ht_version_nb(ht_key, ht_val, i):
    return ht_val[i, ht_key.shape[1]]


@njit(cache=True, error_model="numpy", forceinline=True)
def ht_put_nb(ht_key, ht_val, i, key, value):
    ht_val[i, ht_key.shape[1]] += 1
    mask = ht_key.shape[1] - 1
    s = _home_nb(key, mask)
    while True:
        k = ht_key[i, s]
        if k == HT_EMPTY or k == key:
            ht_key[i, s] = key
            ht_val[i, s] = value
            return
        s = (s + 1) & mask


@njit(cache=True, error_model="numpy", forceinline=True)
def ht_delete_nb(ht_key, ht_val, i, key):
    mask = ht_key.shape[1] - 1
    s = _home_nb(key, mask)
    while True:
        k = ht_key[i, s]
        if k == HT_EMPTY:
            return
        if k == key:
            break
        s = (s + 1) & mask
    ht_val[i, ht_key.shape[1]] += 1
    # backward-shift deletion keeps every probe chain unbroken without tombstones
    hole = s
    j = (s + 1) & mask
    while ht_key[i, j] != HT_EMPTY:
        home = _home_nb(ht_key[i, j], mask)
        # move j into the hole unless its home lies cyclically in (hole, j]
        if (j > hole and (home <= hole or home > j)) or (j < hole and (home <= hole and home > j)):
            ht_key[i, hole] = ht_key[i, j]
            ht_val[i, hole] = ht_val[i, j]
            hole = j
        j = (j + 1) & mask
    ht_key[i, hole] = HT_EMPTY


# ---------------------------------------------------------------- free list
@njit(cache=True, error_model="numpy", inline="always")
def _free_list_append_nb(blk, ist, i, b):
    blk[i, B_NEXT, b] = -1
    tail = ist[i, IS_FREE_TAIL]
    if tail != -1:
        blk[i, B_NEXT, tail] = b
        blk[i, B_PREV, b] = tail
        ist[i, IS_FREE_TAIL] = b
    else:
        ist[i, IS_FREE_HEAD] = b
        ist[i, IS_FREE_TAIL] = b
        blk[i, B_PREV, b] = -1


@njit(cache=True, error_model="numpy", inline="always")
def _free_list_remove_nb(blk, ist, i, b):
    prev = blk[i, B_PREV, b]
    nxt = blk[i, B_NEXT, b]
    if prev != -1:
        blk[i, B_NEXT, prev] = nxt
    else:
        ist[i, IS_FREE_HEAD] = nxt
    if nxt != -1:
        blk[i, B_PREV, nxt] = prev
    else:
        ist[i, IS_FREE_TAIL] = prev
    blk[i, B_NEXT, b] = -1
    blk[i, B_PREV, b] = -1


@njit(cache=True, error_model="numpy", forceinline=True)
def pop_free_block_nb(blk, bhash, ht_key, ht_val, ist, cs, i):
    """The reference's popFreeBlock: take the LRU head, drop its prefix hash. -1 when none."""
    touched = ist[i, IS_KV_TOUCHED]
    if touched < ist[i, IS_KV_TOTAL]:
        if touched >= blk.shape[2]:
            cs[CS_STATUS] = 1  # working memory estimate too small: caller retries larger
            return -1
        b = touched
        ist[i, IS_KV_TOUCHED] = touched + 1
        # first use of this block's (uninitialised) slot
        blk[i, B_HASHED, b] = 0
        blk[i, B_PREV, b] = -1
        blk[i, B_NEXT, b] = -1
        blk[i, B_REF, b] = 0
        blk[i, B_IN_USE, b] = 0
        blk[i, B_CPU_VALID, b] = 0
    else:
        b = ist[i, IS_FREE_HEAD]
        if b == -1:
            return -1
        _free_list_remove_nb(blk, ist, i, b)
        head = ist[i, IS_FREE_HEAD]
        if head != -1:
            # the next pop reads these (blocks are reused at random): ask for them now
            prefetch_nb(blk, (i, B_HASHED, head))
            prefetch_nb(blk, (i, B_NEXT, head))
            prefetch_nb(bhash, (i, BH_GPU, head))
    if blk[i, B_HASHED, b] != 0:
        # deletes the key even when it now names another block, as the reference does
        ht_delete_nb(ht_key, ht_val, i, bhash[i, BH_GPU, b])
        blk[i, B_HASHED, b] = 0
    blk[i, B_NTOK, b] = 0
    return b


@njit(cache=True, error_model="numpy")
def count_free_list_nb(blk, ist, i):
    """Walk the free list (for the conservation invariant, not the hot path)."""
    n = ist[i, IS_KV_TOTAL] - ist[i, IS_KV_TOUCHED]
    b = ist[i, IS_FREE_HEAD]
    while b != -1:
        n += 1
        b = blk[i, B_NEXT, b]
    return n


# ---------------------------------------------------------------- request block lists
@njit(cache=True, error_model="numpy", inline="always")
def list_append_nb(rq, nodes, cs, r, b):
    node = cs[CS_NODE_FREE]
    if node != -1:
        cs[CS_NODE_FREE] = nodes[1, node]
    else:
        node = cs[CS_NODE_TOP]
        if node >= nodes.shape[1]:
            cs[CS_STATUS] = 1
            return False
        cs[CS_NODE_TOP] = node + 1
    nodes[0, node] = b
    nodes[1, node] = rq[r, R_MAP_LAST]
    rq[r, R_MAP_LAST] = node
    return True


@njit(cache=True, error_model="numpy", inline="always")
def commit_pending_hash_nb(rq, chash, r, ph, seq_start, pow_table):
    """Fold the lazily tracked decode tokens into the request's concatenated-block hash."""
    n = rq[r, R_PEND_LEN]
    if n > 0:
        a = seq_start + rq[r, R_PEND_START]
        chash[r] = concat_hash_nb(chash[r], submod_nb(ph[a + n], mulmod_nb(ph[a], pow_table[n])), pow_table[n])
        rq[r, R_PEND_LEN] = 0


@njit(cache=True, error_model="numpy", forceinline=True)
def release_blocks_nb(blk, ist, rq, nodes, cs, chash, i, r):
    """The reference's ReleaseKVBlocks: drop the map entry, free blocks last to first."""
    node = rq[r, R_MAP_LAST]
    while node != -1:
        b = nodes[0, node]
        blk[i, B_REF, b] -= 1
        if blk[i, B_REF, b] == 0:
            blk[i, B_IN_USE, b] = 0
            ist[i, IS_KV_USED] -= 1
            _free_list_append_nb(blk, ist, i, b)
        prev = nodes[1, node]
        nodes[1, node] = cs[CS_NODE_FREE]
        cs[CS_NODE_FREE] = node
        node = prev
    rq[r, R_MAP_LAST] = -1
    rq[r, R_LATEST_BLOCK] = -1
    rq[r, R_LATEST_NTOK] = 0
    rq[r, R_PEND_LEN] = 0
    chash[r] = np.uint64(0)


@njit(cache=True, error_model="numpy", forceinline=True)
def lookup_cached_blocks_nb(ht_key, ht_val, ist, i, ph, seq_start, input_len, block_size, out_ids):
    """The reference's GetCachedBlocks: longest run of cached full input blocks.

    Counts a hit per matched block on every call (also for requests that then fail
    to allocate), as the reference does.
    """
    n = input_len // block_size
    count = 0
    for k in range(n):
        b = ht_get_nb(ht_key, ht_val, i, ph[seq_start + (k + 1) * block_size])
        if b == -1:
            break
        out_ids[count] = b
        count += 1
    ist[i, IS_CACHE_HITS] += count
    return count


@njit(cache=True, error_model="numpy", forceinline=True)
def lookup_cached_blocks_memo_nb(ht_key, ht_val, ist, i, r, ph, seq_start, input_len, block_size, out_ids, memo_ids):
    """lookup_cached_blocks_nb, reusing the previous answer for the same request while the
    prefix map is unchanged (a request blocked at the queue head is looked up every step)."""
    version = ht_version_nb(ht_key, ht_val, i)
    if ist[i, IS_MEMO_REQ] == r and ist[i, IS_MEMO_VERSION] == version:
        count = ist[i, IS_MEMO_COUNT]
        for k in range(count):
            out_ids[k] = memo_ids[i, k]
        ist[i, IS_CACHE_HITS] += count
        return count
    count = lookup_cached_blocks_nb(ht_key, ht_val, ist, i, ph, seq_start, input_len, block_size, out_ids)
    for k in range(count):
        memo_ids[i, k] = out_ids[k]
    ist[i, IS_MEMO_REQ] = r
    ist[i, IS_MEMO_VERSION] = version
    ist[i, IS_MEMO_COUNT] = count
    return count


@njit(cache=True, error_model="numpy", forceinline=True)
def allocate_blocks_nb(blk, bhash, ht_key, ht_val, ist, rq, nodes, cs, chash,
                       i, r, ph, seq_start, input_len, pow_table, block_size,
                       start_index, end_index, cached_ids, n_cached):
    """The reference's AllocateKVBlocks; see _allocate_blocks_body_nb."""
    ok = _allocate_blocks_body_nb(blk, bhash, ht_key, ht_val, ist, rq, nodes, cs, chash,
                                  i, r, ph, seq_start, input_len, pow_table, block_size,
                                  start_index, end_index, cached_ids, n_cached)
    # success or not (the reference does not roll back), refresh the request's last-block copy
    node = rq[r, R_MAP_LAST]
    if node == -1:
        rq[r, R_LATEST_BLOCK] = -1
        rq[r, R_LATEST_NTOK] = 0
    else:
        rq[r, R_LATEST_BLOCK] = nodes[0, node]
        rq[r, R_LATEST_NTOK] = blk[i, B_NTOK, nodes[0, node]]
    return ok


@njit(cache=True, error_model="numpy", forceinline=True)
def _allocate_blocks_body_nb(blk, bhash, ht_key, ht_val, ist, rq, nodes, cs, chash,
                             i, r, ph, seq_start, input_len, pow_table, block_size,
                             start_index, end_index, cached_ids, n_cached):
    """The reference's AllocateKVBlocks (with its fixes 2 and 3, without rollback).

    Tokens start_index..end_index of the request's sequence (input ++ output) go into
    its blocks: first into a partially filled last block, then into fresh blocks. In
    decode only the single token at start_index is written and end_index is ignored.
    """
    commit_pending_hash_nb(rq, chash, r, ph, seq_start, pow_table)
    in_prefill = rq[r, R_PROGRESS] < input_len
    if in_prefill:
        n_new = end_index - start_index
        n_new_blocks = (n_new + block_size - 1) // block_size
        if n_new_blocks > ist[i, IS_KV_TOTAL] - ist[i, IS_KV_USED]:
            return False
    else:
        n_new = 1
        n_new_blocks = 1
    done = 0
    while done < n_new:
        latest_ntok = 0
        latest = -1
        if rq[r, R_MAP_LAST] != -1:
            latest = nodes[0, rq[r, R_MAP_LAST]]
            latest_ntok = blk[i, B_NTOK, latest]
        else:
            # first sight of this request: adopt the cached prefix blocks
            for k in range(n_cached):
                b = cached_ids[k]
                blk[i, B_REF, b] += 1
                if blk[i, B_IN_USE, b] == 0:
                    blk[i, B_IN_USE, b] = 1
                    ist[i, IS_KV_USED] += 1
                    _free_list_remove_nb(blk, ist, i, b)
                if not list_append_nb(rq, nodes, cs, r, b):
                    return False
                chash[r] = concat_hash_nb(chash[r], slice_hash_nb(ph[seq_start:], k * block_size, (k + 1) * block_size, pow_table), pow_table[block_size])
        if latest_ntok > 0 and latest_ntok < block_size:
            take = min(done + block_size - latest_ntok, n_new) - done
            a = start_index + done
            blk[i, B_NTOK, latest] = latest_ntok + take
            chash[r] = concat_hash_nb(chash[r], slice_hash_nb(ph[seq_start:], a, a + take, pow_table), pow_table[take])
            done += take
            if latest_ntok + take == block_size:
                # the block closes the request's whole token list so far
                h = chash[r]
                bhash[i, BH_GPU, latest] = h
                blk[i, B_HASHED, latest] = 1
                ht_put_nb(ht_key, ht_val, i, h, latest)
        else:
            for _ in range(n_new_blocks):
                if in_prefill and done + 2 * block_size <= n_new:
                    # the next block's slot in the prefix map, fetched while this block is filled
                    prefetch_nb(ht_key, (i, _home_nb(ph[seq_start + start_index + done + 2 * block_size],
                                                     ht_key.shape[1] - 1)))
                b = pop_free_block_nb(blk, bhash, ht_key, ht_val, ist, cs, i)
                if b == -1:
                    return False
                end = min(done + block_size, n_new)
                take = end - done
                blk[i, B_NTOK, b] = take
                blk[i, B_REF, b] = 1
                blk[i, B_IN_USE, b] = 1
                ist[i, IS_KV_USED] += 1
                ist[i, IS_CACHE_MISSES] += 1
                if take == block_size and in_prefill:
                    h = ph[seq_start + start_index + end]
                    bhash[i, BH_GPU, b] = h
                    blk[i, B_HASHED, b] = 1
                    ht_put_nb(ht_key, ht_val, i, h, b)
                if not list_append_nb(rq, nodes, cs, r, b):
                    return False
                a = start_index + done
                chash[r] = concat_hash_nb(chash[r], slice_hash_nb(ph[seq_start:], a, a + take, pow_table), pow_table[take])
                done = end
    return True


# ---------------------------------------------------------------- tiered store (GPU + CPU)
@njit(cache=True, error_model="numpy")
def _reload_from_cpu_nb(blk, bhash, ht_key, ht_val, ifl, ist, cs, i, block_size):
    """Bring offloaded prefix blocks back as free, cached GPU blocks (lowest GPU id first)."""
    reloaded = False
    if ist[i, IS_CPU_ENTRIES] == 0:
        return False
    for src in range(ist[i, IS_KV_TOUCHED]):
        if blk[i, B_CPU_VALID, src] == 0:
            continue
        h = bhash[i, BH_CPU, src]
        if ht_get_nb(ht_key, ht_val, i, h) != -1:
            continue
        b = pop_free_block_nb(blk, bhash, ht_key, ht_val, ist, cs, i)
        if b == -1:
            break
        blk[i, B_NTOK, b] = blk[i, B_CPU_NTOK, src]
        bhash[i, BH_GPU, b] = h
        blk[i, B_HASHED, b] = 1
        blk[i, B_REF, b] = 0
        blk[i, B_IN_USE, b] = 0
        ht_put_nb(ht_key, ht_val, i, h, b)
        _free_list_append_nb(blk, ist, i, b)
        ist[i, IS_PENDING_TRANSFER] += ist[i, IS_TRANSFER_BASE_LATENCY] + int(
            np.ceil(float(block_size) / ifl[i, IF_TRANSFER_BANDWIDTH]))
        if ist[i, IS_TIER_CLOCK] - blk[i, B_CPU_TIME, src] < 1000:
            ist[i, IS_THRASHING] += 1
        blk[i, B_CPU_VALID, src] = 0
        ist[i, IS_CPU_ENTRIES] -= 1
        ist[i, IS_CPU_USED] -= 1
        ist[i, IS_CPU_HITS] += 1
        reloaded = True
    return reloaded


@njit(cache=True, error_model="numpy")
def store_allocate_nb(blk, bhash, ht_key, ht_val, ifl, ist, rq, nodes, cs, chash,
                      i, r, ph, seq_start, input_len, pow_table, block_size,
                      start_index, end_index, cached_ids, n_cached, lookup_ids):
    """Allocate through the KV store: GPU first; with a CPU tier, reload and retry once."""
    if allocate_blocks_nb(blk, bhash, ht_key, ht_val, ist, rq, nodes, cs, chash,
                          i, r, ph, seq_start, input_len, pow_table, block_size,
                          start_index, end_index, cached_ids, n_cached):
        return True
    if ist[i, IS_CPU_CAPACITY] <= 0 or cs[CS_STATUS] != 0:
        return False
    if _reload_from_cpu_nb(blk, bhash, ht_key, ht_val, ifl, ist, cs, i, block_size):
        n_new_cached = lookup_cached_blocks_nb(ht_key, ht_val, ist, i, ph, seq_start, input_len, block_size,
                                               lookup_ids)
        new_start = n_new_cached * block_size
        if new_start > start_index:
            # a reload can cover the whole chunk; the reference would slice past its end
            return allocate_blocks_nb(blk, bhash, ht_key, ht_val, ist, rq, nodes, cs, chash,
                                      i, r, ph, seq_start, input_len, pow_table, block_size,
                                      new_start, max(end_index, new_start), lookup_ids, n_new_cached)
        return allocate_blocks_nb(blk, bhash, ht_key, ht_val, ist, rq, nodes, cs, chash,
                                  i, r, ph, seq_start, input_len, pow_table, block_size,
                                  start_index, end_index, cached_ids, n_cached)
    ist[i, IS_CPU_MISSES] += 1
    return False


@njit(cache=True, error_model="numpy", forceinline=True)
def store_release_nb(blk, bhash, ht_key, ht_val, ifl, ist, rq, nodes, cs, chash, i, r):
    """Release through the KV store; with a CPU tier, offload cached free blocks while the GPU is busy."""
    release_blocks_nb(blk, ist, rq, nodes, cs, chash, i, r)
    capacity = ist[i, IS_CPU_CAPACITY]
    if capacity <= 0:
        return
    total = ist[i, IS_KV_TOTAL]
    while total > 0:
        if float(ist[i, IS_KV_USED]) / float(total) <= ifl[i, IF_OFFLOAD_THRESHOLD]:
            break
        if ist[i, IS_CPU_USED] >= capacity:
            break
        # first free block (LRU order) holding cached content; untouched blocks hold none
        b = ist[i, IS_FREE_HEAD]
        while b != -1 and blk[i, B_HASHED, b] == 0:
            b = blk[i, B_NEXT, b]
        if b == -1:
            break
        if blk[i, B_CPU_VALID, b] == 0:
            ist[i, IS_CPU_ENTRIES] += 1
        blk[i, B_CPU_VALID, b] = 1
        blk[i, B_CPU_TIME, b] = ist[i, IS_TIER_CLOCK]
        blk[i, B_CPU_NTOK, b] = blk[i, B_NTOK, b]
        bhash[i, BH_CPU, b] = bhash[i, BH_GPU, b]
        ist[i, IS_CPU_USED] += 1
        ist[i, IS_OFFLOADS] += 1
        _free_list_remove_nb(blk, ist, i, b)
        ht_delete_nb(ht_key, ht_val, i, bhash[i, BH_GPU, b])
        blk[i, B_HASHED, b] = 0
        blk[i, B_NTOK, b] = 0
        _free_list_append_nb(blk, ist, i, b)


@njit(cache=True, error_model="numpy", inline="always")
def try_append_decode_token_nb(blk, bhash, ht_key, ht_val, rq, chash, i, r, ph, seq_start,
                               position, pow_table, block_size):
    """Fast path of a decode allocation: the token fits in the request's partial last block.

    Exactly what AllocateKVBlocks does in that case (no free-block check, no new block);
    returns False when the full allocation path is needed instead. The token's hash is
    folded in lazily, only when the block fills and its prefix hash is needed.
    """
    ntok = rq[r, R_LATEST_NTOK]
    if ntok == 0 or ntok >= block_size:
        return False
    latest = rq[r, R_LATEST_BLOCK]
    blk[i, B_NTOK, latest] = ntok + 1
    rq[r, R_LATEST_NTOK] = ntok + 1
    n_pending = rq[r, R_PEND_LEN]
    if n_pending > 0 and rq[r, R_PEND_START] + n_pending == position:
        rq[r, R_PEND_LEN] = n_pending + 1
    else:
        commit_pending_hash_nb(rq, chash, r, ph, seq_start, pow_table)
        rq[r, R_PEND_START] = position
        rq[r, R_PEND_LEN] = 1
    if ntok + 1 == block_size:
        commit_pending_hash_nb(rq, chash, r, ph, seq_start, pow_table)
        h = chash[r]
        bhash[i, BH_GPU, latest] = h
        blk[i, B_HASHED, latest] = 1
        ht_put_nb(ht_key, ht_val, i, h, latest)
    return True
