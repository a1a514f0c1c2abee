"""Column layout shared by the kernel and its only caller (blis_sweep.engine).

Plain integer constants: Numba folds them as compile-time globals.
"""

# ---- per-configuration integer parameters: cfg_int[c, CI_*]
CI_TOTAL_KV_BLOCKS = 0
CI_BLOCK_SIZE = 1
CI_MAX_RUNNING = 2
CI_MAX_SCHED_TOKENS = 3
CI_LONG_PREFILL = 4
CI_HORIZON = 5
CI_SCHEDULER = 6
CI_PRIORITY = 7
CI_ROOFLINE = 8
CI_WORKLOAD = 9
CI_NUM_INSTANCES = 10
CI_ADMISSION = 11
CI_ADMISSION_LATENCY = 12
CI_ROUTING_LATENCY = 13
CI_ROUTING = 14
CI_TP = 15
CI_CAPACITY_SCALE = 16  # multiplies working-memory estimates; raised on overflow retry
CI_KV_CPU_BLOCKS = 17
CI_KV_TRANSFER_BASE_LATENCY = 18
CI_TRACE_K = 19  # -1: no decision trace; k >= 0: record decisions with top-k counterfactual candidates
N_CFG_INT = 20

# ---- per-configuration float parameters: cfg_float[c, CF_*]
CF_ALPHA0 = 0
CF_ALPHA1 = 1
CF_ALPHA2 = 2
CF_BETA0 = 3
CF_BETA1 = 4
CF_BETA2 = 5
CF_NUM_LAYERS = 6
CF_HIDDEN = 7
CF_HEADS = 8
CF_KV_HEADS = 9
CF_INTERMEDIATE = 10
CF_BYTES_PER_PARAM = 11
CF_TFLOPS = 12
CF_BW_TBS = 13
CF_BW_EFF = 14
CF_T_OVERHEAD = 15
CF_PER_LAYER_OVERHEAD = 16
CF_MFU_PREFILL = 17
CF_MFU_DECODE = 18
CF_ALLREDUCE = 19
CF_BUCKET_CAPACITY = 20
CF_BUCKET_REFILL = 21
CF_CACHE_WEIGHT = 22
CF_LOAD_WEIGHT = 23
CF_KV_OFFLOAD_THRESHOLD = 24
CF_KV_TRANSFER_BANDWIDTH = 25
N_CFG_FLOAT = 26

# ---- enums (mirror blis_sweep.sim_config)
SCHED_FCFS = 0
SCHED_PRIORITY_FCFS = 1
SCHED_SJF = 2
SCHED_REVERSE_PRIORITY = 3
PRIO_CONSTANT = 0
PRIO_SLO_BASED = 1
PRIO_INVERTED_SLO = 2
ADMIT_ALWAYS = 0
ADMIT_TOKEN_BUCKET = 1
ADMIT_REJECT_ALL = 2
ROUTE_ROUND_ROBIN = 0
ROUTE_LEAST_LOADED = 1
ROUTE_WEIGHTED = 2
ROUTE_PREFIX_AFFINITY = 3
ROUTE_ALWAYS_BUSIEST = 4

# ---- metrics of one block (cluster or one instance): out[..., M_*]
M_COMPLETED = 0
M_TOTAL_INPUT_TOKENS = 1
M_TOTAL_OUTPUT_TOKENS = 2
M_SIM_ENDED_TICKS = 3
M_DURATION_S = 4
M_RESPONSES_PER_SEC = 5
M_TOKENS_PER_SEC = 6
M_E2E_MEAN = 7
M_E2E_P50 = 8
M_E2E_P90 = 9
M_E2E_P95 = 10
M_E2E_P99 = 11
M_TTFT_MEAN = 12
M_TTFT_P50 = 13
M_TTFT_P90 = 14
M_TTFT_P95 = 15
M_TTFT_P99 = 16
M_ITL_MEAN = 17
M_ITL_P50 = 18
M_ITL_P90 = 19
M_ITL_P95 = 20
M_ITL_P99 = 21
M_TPOT_MEAN = 22
M_TPOT_P50 = 23
M_TPOT_P90 = 24
M_TPOT_P99 = 25
M_SCHED_DELAY_MEAN = 26
M_SCHED_DELAY_P99 = 27
M_PREEMPTIONS = 28
M_CACHE_HIT_RATE = 29
M_KV_PEAK_BLOCKS = 30
M_KV_BLOCK_TICKS = 31  # integral of used blocks over time
M_PRIORITY_INVERSIONS = 32
M_HOL_BLOCKING = 33
M_REJECTED = 34
M_ARRIVED = 35  # requests the cluster saw arrive
M_ROUTED = 36  # requests injected into an instance
M_WAITING_END = 37
M_RUNNING_END = 38
M_IN_FLIGHT_END = 39  # admitted or routed but not yet in a wait queue when the run ended
M_KV_USED_END = 40
M_KV_FREE_END = 41  # counted by walking the free list
M_KV_TOTAL = 42
M_STEPS = 43
M_CLOCK_REGRESSIONS = 44  # events that ran before the clock: must stay 0
M_KV_ALLOC_FAILURES = 45
M_TTFT_COUNT = 46
M_STATUS = 47  # 0 ok, 1 working memory too small (caller retries larger)
M_KV_THRASHING_RATE = 48
N_METRICS = 49

STATUS_OK = 0
STATUS_CAPACITY = 1

# ---- per-request flags: req_flags[c, r]
RF_HAS_TTFT = 1
RF_COMPLETED = 2
RF_SCHEDULED = 4
RF_ROUTED = 8
RF_REJECTED = 16
RF_ADMISSION_DECIDED = 32
RF_HAS_ITL = 64  # at least one inter-token latency recorded

# ---- decision trace: trace_route[c, r, TR_*] and trace_candidates[c, r, k, TC_*]
TR_CLOCK = 0
TR_REGRET = 1
N_TR = 2
TC_INSTANCE = 0
TC_SCORE = 1
TC_QUEUE_DEPTH = 2
TC_BATCH_SIZE = 3
TC_KV_UTILIZATION = 4
TC_FREE_KV_BLOCKS = 5
N_TC = 6
