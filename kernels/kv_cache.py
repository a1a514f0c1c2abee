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

HT_EMPTY = np.uint64(1 << 63)  # real keys are < 2**61
# a block's `hashed`: no prefix hash; a hash that is in the prefix map; a hash kept out of it
HASH_NONE = 0
HASH_PUBLISHED = 1
HASH_DEFERRED = 2
NEVER_PRIVATE = np.int64(1 << 62)  # a request's private_from when none of its hashes is its own


# ---------------------------------------------------------------- hash map
# ht[i, s] holds a key and its value side by side (one cache miss per probe, not two); the
# last column's value counts the map's modifications, so a lookup can be reused while the
# map is unchanged. Capacity: ht.shape[1] - 1 slots, a power of two.
ht_slot_dt = np.dtype((np.record, np.dtype([("key", np.uint64), ("val", np.int64)], align=True)))


@njit(cache=True, error_model="numpy", inline="always")
def _home_nb(key, mask):
    return np.int64((key ^ (key >> np.uint64(29))) & np.uint64(mask))


@njit(cache=True, error_model="numpy")
def new_hash_map_nb(rows, capacity):
    """An empty map per row with `capacity` slots (a power of two)."""
    ht = np.empty((rows, capacity + 1), dtype=ht_slot_dt)
    for i in range(rows):
        for s in range(capacity):
            ht[i, s].key = HT_EMPTY
        ht[i, capacity].key = HT_EMPTY
        ht[i, capacity].val = 0
    return ht


@njit(cache=True, error_model="numpy", forceinline=True)
def ht_get_nb(ht, i, key):
    mask = ht.shape[1] - 2
    s = _home_nb(key, mask)
    while True:
        slot = ht[i, s]
        if slot.key == HT_EMPTY:
            return -1
        if slot.key == key:
            return slot.val
        s = (s + 1) & mask


@njit(cache=True, error_model="numpy", inline="always")
def ht_version_nb(ht, i):
    return ht[i, ht.shape[1] - 1].val


@njit(cache=True, error_model="numpy", forceinline=True)
def ht_put_nb(ht, i, key, value):
    mask = ht.shape[1] - 2
    ht[i, mask + 1].val += 1
    s = _home_nb(key, mask)
    while True:
        slot = ht[i, s]
        k = slot.key
        if k == HT_EMPTY or k == key:
            slot.key = key
            slot.val = value
            return
        s = (s + 1) & mask


@njit(cache=True, error_model="numpy", forceinline=True)
def ht_delete_nb(ht, i, key):
    mask = ht.shape[1] - 2
    s = _home_nb(key, mask)
    while True:
        k = ht[i, s].key
        if k == HT_EMPTY:
            return
        if k == key:
            break
        s = (s + 1) & mask
    ht[i, mask + 1].val += 1
    # backward-shift deletion keeps every probe chain unbroken without tombstones
    hole = s
    j = (s + 1) & mask
    while ht[i, j].key != HT_EMPTY:
        home = _home_nb(ht[i, j].key, mask)
        # move j into the hole unless its home lies cyclically in (hole, j]
        if (j > hole and (home <= hole or home > j)) or (j < hole and (home <= hole and home > j)):
            ht[i, hole].key = ht[i, j].key
            ht[i, hole].val = ht[i, j].val
            hole = j
        j = (j + 1) & mask
    ht[i, hole].key = HT_EMPTY


# ---------------------------------------------------------------- free list
@njit(cache=True, error_model="numpy", inline="always")
def _free_list_append_nb(blocks, ist, i, b):
    blocks[i, b].next = -1
    tail = ist[i].free_tail
    if tail != -1:
        blocks[i, tail].next = b
        blocks[i, b].prev = tail
        ist[i].free_tail = b
    else:
        ist[i].free_head = b
        ist[i].free_tail = b
        blocks[i, b].prev = -1
    ist[i].free_len += 1


@njit(cache=True, error_model="numpy", inline="always")
def _free_list_remove_nb(blocks, ist, i, b):
    prev = blocks[i, b].prev
    nxt = blocks[i, b].next
    if prev != -1:
        blocks[i, prev].next = nxt
    else:
        ist[i].free_head = nxt
    if nxt != -1:
        blocks[i, nxt].prev = prev
    else:
        ist[i].free_tail = prev
    blocks[i, b].next = -1
    blocks[i, b].prev = -1
    ist[i].free_len -= 1


@njit(cache=True, error_model="numpy", forceinline=True)
def pop_free_block_nb(blocks, ht, ist, cs, i):
    """The reference's popFreeBlock: take the LRU head, drop its prefix hash. -1 when none."""
    touched = ist[i].kv_touched
    if touched < ist[i].kv_total:
        if touched >= blocks.shape[1]:
            cs.status = 1  # working memory estimate too small: caller retries larger
            return -1
        b = touched
        ist[i].kv_touched = touched + 1
        # first use of this block's (uninitialised) slot
        blocks[i, b].hashed = HASH_NONE
        blocks[i, b].prev = -1
        blocks[i, b].next = -1
        blocks[i, b].ref = 0
        blocks[i, b].in_use = 0
    else:
        b = ist[i].free_head
        if b == -1:
            return -1
        _free_list_remove_nb(blocks, ist, i, b)
        head = ist[i].free_head
        if head != -1:
            # the next pop reads this record (blocks are reused at random): ask for it now
            prefetch_nb(blocks, (i, head))
    hashed = blocks[i, b].hashed
    if hashed != HASH_NONE:
        if hashed == HASH_PUBLISHED:
            # deletes the key even when it now names another block, as the reference does
            ht_delete_nb(ht, i, blocks[i, b].hash)
        blocks[i, b].hashed = HASH_NONE
    blocks[i, b].ntok = 0
    return b


@njit(cache=True, error_model="numpy")
def count_free_list_nb(blocks, ist, i):
    """Walk the free list (tests check it against the kept count, free_blocks_nb)."""
    n = ist[i].kv_total - ist[i].kv_touched
    b = ist[i].free_head
    while b != -1:
        n += 1
        b = blocks[i, b].next
    return n


@njit(cache=True, error_model="numpy", inline="always")
def free_blocks_nb(ist, i):
    """Free blocks: the untouched ones plus the explicit list (whose length is kept, not walked:
    a walk at the end of a run chases every free block's link, a cache miss each)."""
    return ist[i].kv_total - ist[i].kv_touched + ist[i].free_len


# ---------------------------------------------------------------- request block lists
@njit(cache=True, error_model="numpy", inline="always")
def list_append_nb(rq, nodes, cs, r, b):
    node = cs.node_free
    if node != -1:
        cs.node_free = nodes[node].prev
    else:
        node = cs.node_top
        if node >= nodes.shape[0]:
            cs.status = 1
            return False
        cs.node_top = node + 1
    nodes[node].block = b
    nodes[node].prev = rq[r].map_last
    rq[r].map_last = node
    return True


@njit(cache=True, error_model="numpy", inline="always")
def commit_pending_hash_nb(rq, chash, r, ph, seq_start, pow_table):
    """Fold the lazily tracked decode tokens into the request's concatenated-block hash."""
    n = rq[r].pend_len
    if n > 0:
        a = seq_start + rq[r].pend_start
        chash[r] = concat_hash_nb(chash[r], submod_nb(ph[a + n], mulmod_nb(ph[a], pow_table[n])), pow_table[n])
        rq[r].pend_len = 0


@njit(cache=True, error_model="numpy", forceinline=True)
def release_blocks_nb(st, i, r):
    """The reference's ReleaseKVBlocks: drop the map entry, free blocks last to first."""
    blocks, ist, rq, nodes, cs, chash = st.blocks, st.ist, st.rq, st.nodes, st.cs, st.chash
    node = rq[r].map_last
    while node != -1:
        b = nodes[node].block
        blk = blocks[i, b]
        blk.ref -= 1
        if blk.ref == 0:
            blk.in_use = 0
            ist[i].kv_used -= 1
            _free_list_append_nb(blocks, ist, i, b)
        prev = nodes[node].prev
        nodes[node].prev = cs.node_free
        cs.node_free = node
        node = prev
    req = rq[r]
    req.map_last = -1
    req.latest_block = -1
    req.latest_ntok = 0
    req.pend_len = 0
    chash[r] = np.uint64(0)


@njit(cache=True, error_model="numpy", forceinline=True)
def lookup_cached_blocks_nb(ht, ist, i, ph, seq_start, input_len, block_size, out_ids):
    """The reference's GetCachedBlocks: longest run of cached full input blocks.

    Counts a hit per matched block on every call (also for requests that then fail
    to allocate), as the reference does.
    """
    n = input_len // block_size
    count = 0
    for k in range(n):
        b = ht_get_nb(ht, i, ph[seq_start + (k + 1) * block_size])
        if b == -1:
            break
        out_ids[count] = b
        count += 1
    ist[i].cache_hits += count
    return count


@njit(cache=True, error_model="numpy", forceinline=True)
def lookup_cached_blocks_memo_nb(st, reqs, i, r, block_size, out_ids):
    """lookup_cached_blocks_nb for request r, reusing the previous answer for the same request
    while the prefix map is unchanged (a request blocked at the queue head is looked up every step)."""
    ht, ist, memo_ids = st.ht, st.ist, st.memo_ids
    version = ht_version_nb(ht, i)
    inst = ist[i]
    if inst.memo_req == r and inst.memo_version == version:
        count = inst.memo_count
        for k in range(count):
            out_ids[k] = memo_ids[i, k]
        inst.cache_hits += count
        return count
    count = lookup_cached_blocks_nb(ht, ist, i, reqs.prefix_hash, reqs.seq_off[r], reqs.in_len[r],
                                    block_size, out_ids)
    for k in range(count):
        memo_ids[i, k] = out_ids[k]
    inst.memo_req = r
    inst.memo_version = version
    inst.memo_count = count
    return count


@njit(cache=True, error_model="numpy", forceinline=True)
def allocate_blocks_nb(st, reqs, i, r, block_size, start_index, end_index, cached_ids, n_cached):
    """The reference's AllocateKVBlocks; see _allocate_blocks_body_nb."""
    req = st.rq[r]
    if req.latest_block != -1:
        # the decode fast path counts tokens on the request only
        st.blocks[i, req.latest_block].ntok = req.latest_ntok
    ok = _allocate_blocks_body_nb(st, reqs, i, r, block_size, start_index, end_index, cached_ids, n_cached)
    # success or not (the reference does not roll back), refresh the request's last-block copy
    node = req.map_last
    if node == -1:
        req.latest_block = -1
        req.latest_ntok = 0
    else:
        b = st.nodes[node].block
        req.latest_block = b
        req.latest_ntok = st.blocks[i, b].ntok
    return ok


@njit(cache=True, error_model="numpy")
def _stop_deferring_nb(blocks, ht, ist, i):
    """Publish every hash kept out of instance i's prefix map, and keep none out from now on."""
    for b in range(ist[i].kv_touched):
        if blocks[i, b].hashed == HASH_DEFERRED:
            blocks[i, b].hashed = HASH_PUBLISHED
            ht_put_nb(ht, i, blocks[i, b].hash, b)
    ist[i].defer_off = 1


@njit(cache=True, error_model="numpy", inline="always")
def close_block_nb(blocks, ht, ist, i, b, h, canonical, private):
    """Block b of instance i now closes its request's block list, whose hash is h: publish it
    in the prefix map, or, when h is its request's own (private: the hash of the request's
    sequence at this block, `canonical`, is one no other request has, see
    engine._mark_private_prefixes_nb), keep it on the block until the request goes back to
    waiting (publish_deferred_nb).

    Deferring is exact: only lookups read the map, a request looks up only its own input
    prefixes, and only while it waits: before its first admission (when none of its own
    hashes is in the map either way), and after a preemption or an admission that failed
    part-way (it keeps what it got): publish_deferred_nb runs on both.
    No other request can write or look up such a hash. Most blocks of most workloads hold
    such hashes (past a shared system prompt or an earlier turn, prefixes differ), so they
    never touch the map, whose every probe is a cache miss.

    A block list need not start at the sequence's start (the reference does not adopt a cached
    prefix that covers the whole input), and then h is not the sequence's hash: it could be
    any request's, so deferring stops for good on that instance (all kept hashes published
    now, where the reference has had them since their blocks filled)."""
    blocks[i, b].hash = h
    if h != canonical:
        if ist[i].defer_off == 0:
            _stop_deferring_nb(blocks, ht, ist, i)
        private = False
    if private and ist[i].defer_off == 0:
        blocks[i, b].hashed = HASH_DEFERRED
    else:
        blocks[i, b].hashed = HASH_PUBLISHED
        ht_put_nb(ht, i, h, b)


@njit(cache=True, error_model="numpy")
def publish_deferred_nb(st, i, r):
    """Request r goes back to waiting (preempted, or its admission failed part-way): put the
    hashes its blocks hold into the prefix map (where the reference has had them since the
    blocks filled), and publish from now on (a later copy of one of them must replace it in the
    map, as in the reference). A request that holds no block has never closed one (one that
    did came through here when it gave its blocks up), so it keeps deferring: most failed
    admissions fail before taking any block."""
    rq, nodes, blocks, ht = st.rq, st.nodes, st.blocks, st.ht
    if rq[r].private_from == NEVER_PRIVATE or rq[r].map_last == -1:
        return
    node = rq[r].map_last
    while node != -1:
        b = nodes[node].block
        if blocks[i, b].hashed == HASH_DEFERRED:
            blocks[i, b].hashed = HASH_PUBLISHED
            ht_put_nb(ht, i, blocks[i, b].hash, b)
        node = nodes[node].prev
    rq[r].private_from = NEVER_PRIVATE


@njit(cache=True, error_model="numpy", forceinline=True)
def _allocate_blocks_body_nb(st, reqs, i, r, block_size, start_index, end_index, cached_ids, n_cached):
    """The reference's AllocateKVBlocks (with its fixes 2 and 3, without rollback).

    Tokens start_index..end_index of request r's sequence (input ++ output) go into
    its blocks: first into a partially filled last block, then into fresh blocks. In
    decode only the single token at start_index is written and end_index is ignored.
    """
    blocks, ht, ist, rq, nodes, cs, chash = st.blocks, st.ht, st.ist, st.rq, st.nodes, st.cs, st.chash
    pow_table = reqs.pow_table
    seq_start = reqs.seq_off[r]
    ph = reqs.prefix_hash[seq_start:]
    commit_pending_hash_nb(rq, chash, r, reqs.prefix_hash, seq_start, pow_table)
    in_prefill = rq[r].progress < reqs.in_len[r]
    if in_prefill:
        n_new = end_index - start_index
        n_new_blocks = (n_new + block_size - 1) // block_size
        if n_new_blocks > ist[i].kv_total - ist[i].kv_used:
            return False
    else:
        n_new = 1
        n_new_blocks = 1
    done = 0
    while done < n_new:
        latest_ntok = 0
        latest = -1
        if rq[r].map_last != -1:
            latest = nodes[rq[r].map_last].block
            latest_ntok = blocks[i, latest].ntok
        else:
            # first sight of this request: adopt the cached prefix blocks
            for k in range(n_cached):
                b = cached_ids[k]
                blocks[i, b].ref += 1
                if blocks[i, b].in_use == 0:
                    blocks[i, b].in_use = 1
                    ist[i].kv_used += 1
                    _free_list_remove_nb(blocks, ist, i, b)
                if not list_append_nb(rq, nodes, cs, r, b):
                    return False
                chash[r] = concat_hash_nb(chash[r], slice_hash_nb(ph, k * block_size, (k + 1) * block_size,
                                                                  pow_table), pow_table[block_size])
        if latest_ntok > 0 and latest_ntok < block_size:
            take = min(done + block_size - latest_ntok, n_new) - done
            a = start_index + done
            blocks[i, latest].ntok = latest_ntok + take
            chash[r] = concat_hash_nb(chash[r], slice_hash_nb(ph, a, a + take, pow_table), pow_table[take])
            done += take
            if latest_ntok + take == block_size:
                # the block closes the request's whole token list so far
                close_block_nb(blocks, ht, ist, i, latest, chash[r], ph[start_index + done],
                               start_index + done >= rq[r].private_from)
        else:
            for _ in range(n_new_blocks):
                if in_prefill and done + 2 * block_size <= n_new and start_index + done + 2 * block_size < rq[r].private_from:
                    # the next block's slot in the prefix map, fetched while this block is filled
                    prefetch_nb(ht, (i, _home_nb(ph[start_index + done + 2 * block_size], ht.shape[1] - 2)))
                b = pop_free_block_nb(blocks, ht, ist, cs, i)
                if b == -1:
                    return False
                end = min(done + block_size, n_new)
                take = end - done
                blk = blocks[i, b]
                blk.ntok = take
                blk.ref = 1
                blk.in_use = 1
                ist[i].kv_used += 1
                ist[i].cache_misses += 1
                if take == block_size and in_prefill:
                    close_block_nb(blocks, ht, ist, i, b, ph[start_index + end], ph[start_index + end],
                                   start_index + end >= rq[r].private_from)
                if not list_append_nb(rq, nodes, cs, r, b):
                    return False
                a = start_index + done
                chash[r] = concat_hash_nb(chash[r], slice_hash_nb(ph, a, a + take, pow_table), pow_table[take])
                done = end
    return True


# ---------------------------------------------------------------- tiered store (GPU + CPU)
@njit(cache=True, error_model="numpy")
def _reload_from_cpu_nb(st, i, block_size):
    """Bring offloaded prefix blocks back as free, cached GPU blocks (lowest GPU id first)."""
    blocks, cpu_blocks, ht, ist, cs = st.blocks, st.cpu_blocks, st.ht, st.ist, st.cs
    inst = ist[i]
    reloaded = False
    if inst.cpu_entries == 0:
        return False
    for src in range(inst.kv_touched):
        copy = cpu_blocks[i, src]
        if copy.cpu_valid == 0:
            continue
        h = copy.cpu_hash
        if ht_get_nb(ht, i, h) != -1:
            continue
        b = pop_free_block_nb(blocks, ht, ist, cs, i)
        if b == -1:
            break
        blocks[i, b].ntok = copy.cpu_ntok
        blocks[i, b].ref = 0
        blocks[i, b].in_use = 0
        close_block_nb(blocks, ht, ist, i, b, h, h, False)
        _free_list_append_nb(blocks, ist, i, b)
        inst.pending_transfer += inst.transfer_base_latency + int(
            np.ceil(float(block_size) / inst.transfer_bandwidth))
        if inst.tier_clock - copy.cpu_time < 1000:
            inst.thrashing += 1
        copy.cpu_valid = 0
        inst.cpu_entries -= 1
        inst.cpu_used -= 1
        inst.cpu_hits += 1
        reloaded = True
    return reloaded


@njit(cache=True, error_model="numpy")
def store_allocate_nb(st, reqs, i, r, block_size, start_index, end_index, cached_ids, n_cached):
    """Allocate through the KV store: GPU first; with a CPU tier, reload and retry once."""
    if allocate_blocks_nb(st, reqs, i, r, block_size, start_index, end_index, cached_ids, n_cached):
        return True
    ist = st.ist
    if ist[i].cpu_capacity <= 0 or st.cs.status != 0:
        return False
    if _reload_from_cpu_nb(st, i, block_size):
        lookup_ids = st.lookup_ids
        n_new_cached = lookup_cached_blocks_nb(st.ht, ist, i, reqs.prefix_hash, reqs.seq_off[r],
                                               reqs.in_len[r], block_size, lookup_ids)
        new_start = n_new_cached * block_size
        if new_start > start_index:
            # a reload can cover the whole chunk; the reference would slice past its end
            return allocate_blocks_nb(st, reqs, i, r, block_size, new_start, max(end_index, new_start),
                                      lookup_ids, n_new_cached)
        return allocate_blocks_nb(st, reqs, i, r, block_size, start_index, end_index, cached_ids, n_cached)
    ist[i].cpu_misses += 1
    return False


@njit(cache=True, error_model="numpy", forceinline=True)
def store_release_nb(st, i, r):
    """Release through the KV store; with a CPU tier, offload cached free blocks while the GPU is busy."""
    release_blocks_nb(st, i, r)
    blocks, ht, ist = st.blocks, st.ht, st.ist
    inst = ist[i]
    capacity = inst.cpu_capacity
    if capacity <= 0:
        return
    total = inst.kv_total
    while total > 0:
        if float(inst.kv_used) / float(total) <= inst.offload_threshold:
            break
        if inst.cpu_used >= capacity:
            break
        # first free block (LRU order) holding cached content; untouched blocks hold none
        b = inst.free_head
        while b != -1 and blocks[i, b].hashed == HASH_NONE:
            b = blocks[i, b].next
        if b == -1:
            break
        blk = blocks[i, b]
        copy = st.cpu_blocks[i, b]
        if copy.cpu_valid == 0:
            inst.cpu_entries += 1
        copy.cpu_valid = 1
        copy.cpu_time = inst.tier_clock
        copy.cpu_ntok = blk.ntok
        copy.cpu_hash = blk.hash
        inst.cpu_used += 1
        inst.offloads += 1
        _free_list_remove_nb(blocks, ist, i, b)
        ht_delete_nb(ht, i, blk.hash)
        blk.hashed = HASH_NONE
        blk.ntok = 0
        _free_list_append_nb(blocks, ist, i, b)


@njit(cache=True, error_model="numpy", inline="always")
def try_append_decode_token_nb(blocks, ht, ist, rq, chash, i, r, ph, seq_start, position, pow_table,
                               block_size):
    """Fast path of a decode allocation: the token fits in the request's partial last block.

    Exactly what AllocateKVBlocks does in that case (no free-block check, no new block);
    returns False when the full allocation path is needed instead. The token's hash is
    folded in lazily, only when the block fills and its prefix hash is needed.
    Per decode token: plain arrays, not State (extracting arrays from a tuple in this
    inlined, branchy code costs reference-count calls per token).
    """
    req = rq[r]
    ntok = req.latest_ntok
    if ntok == 0 or ntok >= block_size:
        return False
    latest = req.latest_block
    req.latest_ntok = ntok + 1  # the block's own count follows when it fills (or is read: allocate_blocks_nb)
    n_pending = req.pend_len
    if n_pending > 0 and req.pend_start + n_pending == position:
        req.pend_len = n_pending + 1
    else:
        commit_pending_hash_nb(rq, chash, r, ph, seq_start, pow_table)
        req.pend_start = position
        req.pend_len = 1
    if ntok + 1 == block_size:
        blocks[i, latest].ntok = block_size
        commit_pending_hash_nb(rq, chash, r, ph, seq_start, pow_table)
        close_block_nb(blocks, ht, ist, i, latest, chash[r], ph[seq_start + position + 1],
                       position + 1 >= req.private_from)
    return True
