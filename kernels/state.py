"""Field indices of the kernel's working state (one set of arrays per configuration).

Instance-level state carries a leading instance axis, so a configuration with N
instances is the same code with N rows. Request-level state is per configuration
(a request lives on at most one instance).
"""

# ---- instance scalars: ist[i, IS_*]
IS_CLOCK = 0
IS_HEAP_LEN = 1
IS_WQ_HEAD = 2
IS_WQ_LEN = 3
IS_RB_LEN = 4
IS_STEP_PENDING = 5  # the reference's stepEvent != nil
IS_STEP_COUNT = 6
IS_KV_TOTAL = 7
IS_KV_USED = 8
IS_KV_TOUCHED = 9  # blocks [touched, total) were never popped: the implicit head of the free list
IS_FREE_HEAD = 10  # explicit part of the free list (blocks released at least once)
IS_FREE_TAIL = 11
IS_CACHE_HITS = 12
IS_CACHE_MISSES = 13
IS_PREEMPTION_HAPPENED = 14
IS_PREEMPTIONS = 15
IS_COMPLETED = 16
IS_TOTAL_INPUT = 17
IS_TOTAL_OUTPUT = 18
IS_PEAK_KV = 19
IS_WQ_SAMPLE_SUM = 20
IS_WQ_SAMPLE_COUNT = 21
IS_KV_ALLOC_FAILURES = 22
IS_STEP_MISS_TOKENS = 23  # regression features of the current step
IS_STEP_DECODE_TOKENS = 24
IS_CLOCK_REGRESSIONS = 25
# CPU tier of a tiered KV cache (inactive when IS_CPU_CAPACITY == 0)
IS_CPU_CAPACITY = 26
IS_CPU_USED = 27  # the reference's counter (it can exceed the entries held: re-offloads overwrite)
IS_CPU_ENTRIES = 28
IS_PENDING_TRANSFER = 29
IS_OFFLOADS = 30
IS_CPU_HITS = 31
IS_CPU_MISSES = 32
IS_THRASHING = 33
IS_TIER_CLOCK = 34
IS_TRANSFER_BASE_LATENCY = 35
# memo of the last prefix-cache lookup (request, map version, blocks found)
IS_MEMO_REQ = 36
IS_MEMO_VERSION = 37
IS_MEMO_COUNT = 38
IS_LAST_ENTRY = 39  # the instance's latest entry in the step log (-1: none yet)
N_IS = 40

# ---- instance floats: ifl[i, IF_*]
IF_KV_BLOCK_TICKS = 0
IF_OFFLOAD_THRESHOLD = 1
IF_TRANSFER_BANDWIDTH = 2
N_IF = 3

# ---- block fields: blk[i, B_*, block]
B_REF = 0
B_NTOK = 1
B_PREV = 2
B_NEXT = 3
B_IN_USE = 4
B_HASHED = 5
B_CPU_VALID = 6  # an offloaded copy of this GPU block is held on the CPU tier
B_CPU_TIME = 7
B_CPU_NTOK = 8
N_B = 9

# ---- block hashes: bhash[i, BH_*, block]
BH_GPU = 0
BH_CPU = 1

# ---- event heap fields: heap[i, H_*, slot]
H_TIME = 0
H_KIND = 1
H_REQ = 2
N_H = 3

EV_ARRIVAL = 0
EV_QUEUED = 1
EV_STEP = 2
EV_SCHEDULED = 3
EV_PREEMPTION = 4
EV_REQUEST_LEFT = 5

# ---- cluster event heap: cheap[K_*, slot]; kinds are the reference's priorities
K_TIME = 0
K_PRIO = 1
K_SEQ = 2
K_REQ = 3
N_K = 4
CEV_ARRIVAL = 0
CEV_ADMISSION = 1
CEV_ROUTING = 2

# ---- request ints: rq[r, R_*]; the fields touched for every decode token come first,
# so that they share one cache line (rows are padded to 16 fields = 128 bytes)
R_PROGRESS = 0
R_COMPUTED = 1  # the reference's reqNumComputedTokens
R_NUM_NEW = 2
# copies of the request's last block id and its token count, so that the per-token
# decode path reads one request row instead of chasing node -> block (kept in sync
# by kv_cache.allocate_blocks_nb and release_blocks_nb)
R_LATEST_NTOK = 3
R_LATEST_BLOCK = 4
# decode tokens appended since the request's concatenated-block hash was last brought up
# to date: positions [R_PEND_START, R_PEND_START + R_PEND_LEN) of its sequence
R_PEND_START = 5
R_PEND_LEN = 6
R_ITL_SUM = 7
R_FLAGS = 8
R_FIRST_TOKEN = 9  # relative to arrival, like the reference's FirstTokenTime
R_SCHED_DELAY = 10
R_INSTANCE = 11
R_MAP_LAST = 12  # last node of the request's block list, -1 when the map has no entry
R_E2E = 13
# inter-token latencies are logged per step (see SL_*): a request records one in every step
# of its instance while it decodes, so its records are spans of that instance's entries
R_ITL_SPAN = 14  # step-log entry where its current span began (-1: not decoding)
R_SPANS = 15  # head of its list of spans closed by preemption (-1: none)
N_R = 16

# ---- configuration scalars: cs[CS_*]
CS_NODE_FREE = 0
CS_NODE_TOP = 1
CS_SL_N = 2  # entries in the step log
CS_STATUS = 3
CS_CLOCK = 4
CS_SEQ = 5
CS_RR_COUNTER = 6
CS_REJECTED = 7
CS_ARRIVED = 8
CS_ROUTED = 9
CS_CHEAP_LEN = 10
CS_PA_COUNT = 11
CS_SPAN_BASE = 12  # closed spans live in the step log's array from this column on
CS_SPAN_N = 13  # next free column for a closed span
N_CS = 14

# ---- step log: slog[SL_*, entry], one entry per step that recorded inter-token latencies
SL_VALUE = 0  # the step's inter-token latency (every record of a step has the same value)
SL_INSTANCE = 1
SL_RECORDS = 2  # records made (decode tokens plus completions)
N_SL = 3

# ---- closed spans: spans[SP_*, k], columns CS_SPAN_BASE.. of the step log's array
SP_START = 0
SP_END = 1
SP_NEXT = 2
N_SP = 3

# ---- configuration floats: cf[CFS_*]
CFS_BUCKET_TOKENS = 0
CFS_BUCKET_LAST_REFILL = 1
N_CFS = 2
