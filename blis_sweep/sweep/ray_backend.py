"""`--backend ray`: simulate a sweep's chunks (or a capacity search's probes) on a Ray cluster.

The driver (the process running `blis-sweep`) does everything a local run does except
simulating: it validates the sweep, cuts it into chunks of configurations
(`sweep.run.chunk_entries`: parameter values, ids, seeds), writes every returned chunk with
`sweep.run.write_chunk` (atomic files carrying the spec hash, hence the same resume) and merges.

Workers are Ray actors, one per CPU, each with one Numba thread. An actor loads the compiled
kernel once and keeps it, with its resolver, workload cache and packed workloads, for every
chunk it is given, and runs the local backend's own function on it (`sweep.run.simulate_points`).
The sweep is put into the object store once; so is each base workload (one per source, length
and seed: rates only change the arrival times) and each trace, so a worker fetches each once
and derives the rates itself as the local `WorkloadCache` does. Chunks come back as Arrow tables.

Results equal the local backend's bit for bit: the same function simulates the same
configurations on the same workloads, and a configuration's result depends neither on the
batch it shares nor on the number of threads (tests/test_batch_consistency.py). Workers check
that they run the driver's kernel sources.

Fault tolerance: an actor whose process dies is restarted and its unfinished chunks are run
again (Ray's max_restarts / max_task_retries); the driver writes each chunk once, when its
result arrives, so a chunk is never lost or written twice. A driver that dies leaves complete
chunk files only, and the same command resumes from them.
"""
from __future__ import annotations

import os
import socket
import time

import polars as pl
import pyarrow as pa

from blis_sweep.sweep.capacity import LocalEvaluator
from blis_sweep.errors import BlisError
from blis_sweep.sweep.resolve import Resolver, WorkloadCache
from blis_sweep.sweep.spec import GridSpec, freeze

INSTALL_HINT = "pip install 'blis-sweep[ray]'"
ACTOR_RESTARTS = 4  # a chunk survives this many worker deaths before the run fails
CHUNKS_QUEUED_PER_WORKER = 2  # one running, one waiting: no idle gap while the driver receives and writes


def require_ray():
    """The ray module, or a one-line error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise BlisError(f"--backend ray: Ray is not installed; install it with {INSTALL_HINT}") from None
    return ray


class _NoProgress:
    def advance(self, n: int) -> None:
        pass


class ShippedWorkloadCache(WorkloadCache):
    """A worker's workload cache: base workloads and traces come from the driver through the object store.

    `refs` maps base keys (source, num_requests, seed) and trace keys to object refs; derived
    workloads (rate, arrival process, horizon) are computed here exactly as on the driver.
    """

    def __init__(self, resolver: Resolver):
        super().__init__(resolver)
        self.refs: dict = {}
        self._traces: dict = {}

    def get(self, key: tuple):
        if key[0] == "trace":
            if key not in self._traces:
                self._traces[key] = require_ray().get(self.refs[key])
            return self._traces[key]
        return super().get(key)

    def _generate(self, source: dict, num_requests: int, seed: int):  # replaces the base class's generator
        return require_ray().get(self.refs[(freeze(source), num_requests, seed)])


def base_key(workload_key: tuple) -> tuple:
    """What the driver ships for a workload key: its base (source, num_requests, seed), or the trace key."""
    return workload_key if workload_key[0] == "trace" else workload_key[1:4]


def _check_reachable(address: str | None) -> None:
    """Fail fast on a HOST:PORT where nothing listens (ray.init would retry for minutes)."""
    if address is None or address == "auto" or "://" in address:
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise BlisError(f"--address {address}: expected auto or HOST:PORT of the Ray head (e.g. 10.0.0.5:6379)")
    try:
        socket.create_connection((host, int(port)), timeout=10).close()
    except OSError as exc:
        raise BlisError(f"--address {address}: no Ray head reachable there ({exc.strerror or exc}); "
                        f"start one with `ray start --head` and pass the address it prints") from None


class ChunkWorker:
    """Body of the Ray actor: the kernel, and per sweep a resolver, workload cache and packed workloads."""

    def __init__(self, want_requests: bool):
        import numba

        from blis_sweep.sweep.run import _warm_up

        numba.set_num_threads(1)  # one actor per CPU
        self.compile_s = _warm_up(want_requests)
        self._sweep = None  # (spec ref id, spec, workload cache with its resolver, pack cache)

    def info(self) -> dict:
        from blis_sweep import kernels

        return {"pid": os.getpid(), "node": require_ray().get_runtime_context().get_node_id(),
                "compile_s": self.compile_s, "kernel_digest": kernels._digest}

    def run(self, spec_ref: list, entries: list, refs: dict, want_requests: bool, attainment, kernel_batch: int,
            tag, hook=None):
        """Simulate `entries` of the sweep in spec_ref[0] (wrapped so that Ray does not fetch it every call)."""
        from blis_sweep.sweep.run import _PackCache, simulate_points

        t0 = time.perf_counter()
        if hook is not None:
            hook(tag)
        if self._sweep is None or self._sweep[0] != spec_ref[0].hex():
            spec = require_ray().get(spec_ref[0])
            resolver = Resolver(spec)
            wcache = ShippedWorkloadCache(resolver)
            self._sweep = (spec_ref[0].hex(), spec, wcache, _PackCache(wcache))
        _, spec, wcache, packs = self._sweep
        wcache.refs.update(refs)
        res = simulate_points(entries, wcache.resolver, wcache, packs, want_requests, _NoProgress(), 1, spec.steady,
                              attainment, kernel_batch=kernel_batch, class_slo=spec.class_slo)
        return res, time.perf_counter() - t0


class RayBackend:
    """Runs grid chunks on Ray. address: None starts a local Ray instance, "auto" or HOST:PORT joins a cluster.

    workers: actors (one CPU each); default every CPU of the cluster. chunk_hook: called in the
    worker with the chunk index before it is simulated (tests kill the worker from it).
    """

    def __init__(self, address: str | None = None, workers: int | None = None, chunk_hook=None):
        self.ray = require_ray()
        if workers is not None and workers < 1:
            raise BlisError(f"--workers: must be >= 1, got {workers}")
        self.address = address
        self.workers = workers
        self.chunk_hook = chunk_hook
        self._started_ray = False
        self._actors: list = []
        self._base_refs: dict = {}
        self._spec = self._spec_ref = self._spec_resolver = None
        self._worker_info: list = []
        self.start_s = 0.0  # last start(): actor processes spawned and kernels loaded
        self.chunk_stats: list = []  # per chunk: configs, worker seconds, bytes returned (benchmarks/bench_ray.py)
        self.wait_s = 0.0  # driver time spent waiting for results (the rest of a run is driver work)
        self.workloads_shipped = 0  # base workloads and traces put into the object store

    # ------------------------------------------------------------ lifecycle

    def connect(self) -> None:
        """Join (or start) Ray and check --workers against the cluster's CPUs; BlisError if unreachable."""
        ray = self.ray
        if not ray.is_initialized():
            import logging

            _check_reachable(self.address)
            try:
                ray.init(address=self.address, include_dashboard=False, log_to_driver=False,
                         logging_level=logging.ERROR)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                where = self.address or "a new local instance"
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise BlisError(f"--address {where}: cannot connect to a Ray cluster ({reason})") from None
            self._started_ray = True
        cpus = int(ray.cluster_resources().get("CPU", 0))
        if self.workers is None:
            self.workers = max(cpus, 1)
        elif self.workers > cpus:
            raise BlisError(f"--workers {self.workers}: the Ray cluster has {cpus} CPUs (use at most {cpus})")

    def start(self, want_requests: bool) -> float:
        """Start the actors and wait until each has loaded the kernel; returns the slowest load/compile time."""
        from blis_sweep import kernels

        t0 = time.perf_counter()
        self.connect()
        actor_cls = self.ray.remote(num_cpus=1, max_restarts=ACTOR_RESTARTS,
                                    max_task_retries=ACTOR_RESTARTS)(ChunkWorker)
        self._actors = [actor_cls.remote(want_requests) for _ in range(self.workers)]
        self._worker_info = self.ray.get([a.info.remote() for a in self._actors])
        stale = [i for i in self._worker_info if i["kernel_digest"] != kernels._digest]
        if stale:
            raise BlisError(f"--backend ray: {len(stale)} worker(s) run other kernel sources than this driver "
                            f"(digest {stale[0]['kernel_digest']}, here {kernels._digest}); "
                            f"install the same blis-sweep on every node")
        self.start_s = time.perf_counter() - t0
        return max(i["compile_s"] for i in self._worker_info)

    def describe(self) -> dict:
        return {"name": "ray", "address": self.address or "local", "workers": len(self._actors),
                "nodes": len({i["node"] for i in self._worker_info}), "workloads_shipped": self.workloads_shipped,
                "ray": self.ray.__version__}

    def worker_pids(self) -> list[int]:
        return [i["pid"] for i in self._worker_info]

    def close(self) -> None:
        """Stop the actors (and Ray, when this backend started it)."""
        for actor in self._actors:
            self.ray.kill(actor)
        self._actors = []
        self._base_refs.clear()
        self._spec = self._spec_ref = self._spec_resolver = None
        if self._started_ray and self.ray.is_initialized():
            self.ray.shutdown()
            self._started_ray = False

    # ------------------------------------------------------------ chunks

    def _refs_for(self, entries: list) -> dict:
        """Object refs of the base workloads and traces `entries` use; each is put into the store once."""
        from blis_sweep.sweep.resolve import workload_key

        refs = {}
        for entry in entries:
            bk = base_key(workload_key(entry.values, entry.seed))
            if bk not in self._base_refs:
                if bk[0] == "trace":
                    workload = self._spec_resolver.trace_workload(bk[1])
                else:
                    source, num_requests, seed = bk
                    workload = WorkloadCache._generate(dict(source), num_requests, seed)
                self._base_refs[bk] = self.ray.put(workload)
                self.workloads_shipped += 1
            refs[bk] = self._base_refs[bk]
        return refs

    def run_batches(self, spec: GridSpec, batches, want_requests: bool, attainment, kernel_batch: int):
        """Yield (tag, result, worker seconds) for each (tag, entries) of `batches`, in completion order.

        Batches are taken from the iterator as workers free up (CHUNKS_QUEUED_PER_WORKER each), so the
        driver holds only those in flight.
        """
        ray = self.ray
        if self._spec_ref is None or self._spec is not spec:
            self._spec, self._spec_ref, self._spec_resolver = spec, ray.put(spec), Resolver(spec)
        queue = iter(batches)
        in_flight: dict = {}  # object ref -> (tag, actor index)
        load = [0] * len(self._actors)

        def submit() -> bool:
            item = next(queue, None)
            if item is None:
                return False
            tag, entries = item
            refs = self._refs_for(entries)
            w = min(range(len(load)), key=load.__getitem__)
            ref = self._actors[w].run.remote([self._spec_ref], entries, refs, want_requests, attainment,
                                             kernel_batch, tag, self.chunk_hook)
            in_flight[ref] = (tag, w)
            load[w] += 1
            return True

        for _ in range(CHUNKS_QUEUED_PER_WORKER * len(self._actors)):
            if not submit():
                break
        while in_flight:
            t_wait = time.perf_counter()
            [ref], _ = ray.wait(list(in_flight), num_returns=1)
            self.wait_s += time.perf_counter() - t_wait
            tag, w = in_flight.pop(ref)
            load[w] -= 1
            try:
                res, worker_s = ray.get(ref)
            except ray.exceptions.RayActorError as exc:
                raise BlisError(f"chunk {tag}: its Ray worker died {ACTOR_RESTARTS + 1} times "
                                f"({type(exc).__name__}); see the Ray logs of that node") from None
            self.chunk_stats.append({
                "chunk": tag, "configs": res.configs.num_rows, "worker_s": worker_s,
                "result_bytes": res.configs.nbytes + (res.requests.nbytes if res.requests else 0)})
            submit()
            yield tag, res, worker_s

    def grid_chunks(self, spec: GridSpec, todo: list, want_requests: bool, progress):
        """The Ray counterpart of sweep.run._local_chunks: (k, result, worker seconds) per (k, a, b) of `todo`."""
        from blis_sweep.sweep.run import KERNEL_BATCH, chunk_entries

        batches = ((k, chunk_entries(spec, a, b)) for k, a, b in todo)
        for k, res, worker_s in self.run_batches(spec, batches, want_requests, spec.attainment, KERNEL_BATCH):
            progress.advance(res.configs.num_rows)
            yield k, res, worker_s



class RayEvaluator(LocalEvaluator):
    """`evaluate` for capacity.search_capacity / run_capacity: each round's probes simulated on Ray.

    The probes are dealt round-robin into CHUNKS_QUEUED_PER_WORKER batches per worker (probes of
    one deployment differ in run length, so neighbours are spread) and simulated by the same
    function as capacity.LocalEvaluator; the rows come back in probe order.
    """

    def __init__(self, spec: GridSpec, slo, backend: RayBackend):
        super().__init__(spec, slo)
        self.backend = backend

    def __call__(self, probes: list) -> pl.DataFrame:
        from blis_sweep.sweep.run import PointEntry

        entries = [PointEntry(p.values, p.lines, i, p.point_id, p.replicate, p.seed) for i, p in enumerate(probes)]
        n = max(1, min(len(entries), CHUNKS_QUEUED_PER_WORKER * len(self.backend._actors)))
        tables = []
        for _, res, _ in self.backend.run_batches(self.spec, [(j, entries[j::n]) for j in range(n)], False,
                                                  self.attainment, 0):
            self.requests_simulated += res.requests_simulated
            self.simulate_s += res.simulate_s
            tables.append(res.configs)
        self.calls += 1
        return pl.from_arrow(pa.concat_tables(tables).sort_by("config_id"))
