"""Where the engine's time goes: a per-function profile of the engine benchmark (Linux perf).

Numba's JIT code has no symbols for perf. This runs the bench_engine sweep (256 configurations
x 500 chat requests, one thread) in a child process whose kernels are compiled with line
information (NUMBA_ENABLE_PROFILING=1, in a cache directory of its own, so the first run
compiles for a few minutes), writes a perf map of the loaded kernels (/tmp/perf-PID.map) and
their object code, samples the child with `perf record`, and charges every sample to the
innermost function at its address (`addr2line` on the object code: functions inlined by LLVM
keep their names, functions inlined by Numba (inline="always") count as their caller).

    python benchmarks/profile_engine.py [--seconds 15] [--top 25] [--cache DIR]
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, os, subprocess, sys, time
import numba.core.codegen as codegen

objects = {}
_unserialize = codegen.CPUCodeLibrary._unserialize.__func__


def _keep_object(cls, cg, state):  # the object code of every kernel loaded from the cache
    library = _unserialize(cls, cg, state)
    if state[1] == "object":
        objects[state[0]] = (state[2][0], library)
    return library


codegen.CPUCodeLibrary._unserialize = classmethod(_keep_object)
out, seconds = sys.argv[1], float(sys.argv[2])
sys.path.insert(0, sys.argv[3])
import numba
numba.set_num_threads(1)
from bench_engine import sweep
from blis_sweep.engine import pack_workloads, simulate

configs, workloads, wids, _ = sweep(256, 500, 1)
packed = pack_workloads(workloads)
simulate(configs[:1], workloads, wids[:1], packed=packed)
if not objects:
    print(json.dumps({"compiled": True}), flush=True)
    sys.exit(0)
libs = []
for k, (name, (obj, library)) in enumerate(objects.items()):
    path = os.path.join(out, f"kernel{k}.o")
    with open(path, "wb") as f:
        f.write(obj)
    symbols = []
    for line in subprocess.run(["nm", "-S", "--defined-only", path], capture_output=True, text=True).stdout.splitlines():
        p = line.split()
        if len(p) == 4 and p[2] in "tTwW":
            symbols.append((int(p[0], 16), int(p[1], 16), p[2], p[3]))
    libs.append((path, library, symbols))
records, map_lines = [], []
for path, library, symbols in libs:
    elsewhere = {s[3] for p, _, other in libs if p != path for s in other}
    base = None
    for offset, size, kind, name in symbols:  # a global symbol of this object only: its load address
        if kind in "TW" and name not in elsewhere:
            address = library._codegen._engine._ee.get_function_address(name)
            if address:
                base = address - offset
                break
    if base is not None:
        records.append({"object": path, "base": base, "symbols": symbols})
        map_lines += [f"{base + o:x} {s:x} {n}" for o, s, _, n in symbols]
with open(f"/tmp/perf-{os.getpid()}.map", "w") as f:
    f.write("\n".join(map_lines) + "\n")
with open(os.path.join(out, "objects.json"), "w") as f:
    json.dump(records, f)
print(json.dumps({"pid": os.getpid()}), flush=True)
t0 = time.perf_counter()
while time.perf_counter() - t0 < seconds:
    simulate(configs, workloads, wids, packed=packed)
"""

# innermost function name -> what it is, for the summary
GROUPS = (
    ("_event_loop_nb", "event loop, step, batch formation, decode path (inlined by Numba)"),
    ("simulate_config_nb", "one configuration: working memory, metrics blocks"),
    ("simulate_batch_nb", "the loop over configurations (with one configuration's set-up inlined)"),
    ("kv_cache", "KV blocks: free list, prefix map, allocation, release"),
    ("event_heap", "event heaps"),
    ("metrics", "end-of-run statistics (sorts, percentiles, anomaly counters)"),
    ("step_time", "step time"),
    ("instance", "instance events"),
)


def _short(mangled: str) -> str:
    """module.function from an Itanium-mangled name (length-prefixed parts after _ZN)."""
    text = mangled[3:] if mangled.startswith("_ZN") else mangled
    parts, k = [], 0
    while k < len(text) and text[k].isdigit():
        j = k
        while text[j].isdigit():
            j += 1
        parts.append(text[j:j + int(text[k:j])])
        k = j + int(text[k:j])
    parts = [p for p in parts if p not in ("_3clocals_3e", "impl")]
    return ".".join(parts[-2:]) if parts else mangled[:40]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--lines", type=int, default=0, help="also list the N source lines with most samples")
    ap.add_argument("--cache", default=str(Path.home() / ".cache" / "blis-sweep-profile"),
                    help="kernel cache compiled with line information (kept between runs)")
    args = ap.parse_args()
    env = dict(os.environ, NUMBA_ENABLE_PROFILING="1", BLIS_SWEEP_CACHE_DIR=args.cache)
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(2):  # a first run may only compile (nothing loaded from the cache to map)
            child = subprocess.Popen([sys.executable, "-c", CHILD, tmp, str(args.seconds + 5), str(REPO / "benchmarks")],
                                     env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            first = json.loads(child.stdout.readline())
            if "pid" in first:
                break
            child.wait()
        else:
            sys.exit("error: the kernels did not load from the profiling cache")
        data = os.path.join(tmp, "perf.data")
        subprocess.run(["perf", "record", "-q", "-F", "2500", "-p", str(first["pid"]), "-o", data, "--",
                        "sleep", str(args.seconds)], check=True, capture_output=True)
        child.wait()
        ips = collections.Counter(int(line, 16) for line in subprocess.run(
            ["perf", "script", "-i", data, "-F", "ip"], capture_output=True, text=True, check=True).stdout.split())
        records = json.load(open(os.path.join(tmp, "objects.json")))
        total = sum(ips.values())
        functions: collections.Counter = collections.Counter()
        lines: collections.Counter = collections.Counter()
        mapped = 0
        for record in records:
            end = max(o + s for o, s, _, _ in record["symbols"])
            hits = [(ip - record["base"], n) for ip, n in ips.items() if 0 <= ip - record["base"] < end]
            if not hits:
                continue
            out = subprocess.run(["addr2line", "-f", "-e", record["object"], "-j", ".ltext"]
                                 + [hex(o) for o, _ in hits], capture_output=True, text=True).stdout.splitlines()
            for k, (_, n) in enumerate(hits):
                functions[_short(out[2 * k])] += n
                lines[f"{os.path.basename(os.path.dirname(out[2 * k + 1]))}/{os.path.basename(out[2 * k + 1])}"] += n
                mapped += n
        Path(f"/tmp/perf-{first['pid']}.map").unlink(missing_ok=True)
    print(f"{total} samples over {args.seconds:.0f} s; {100 * (total - mapped) / total:.1f}% outside the kernels "
          f"(Python, NRT, the OS)")
    groups: collections.Counter = collections.Counter()
    for name, n in functions.items():
        label = next((text for key, text in GROUPS if key in name), "Numba/NumPy library code (min/max, searches)")
        groups[label] += n
    print(f"{'share':>6}  what")
    for label, n in groups.most_common():
        print(f"{100 * n / total:5.1f}%  {label}")
    print(f"\n{'share':>6}  function (innermost, after inlining)")
    for name, n in functions.most_common(args.top):
        print(f"{100 * n / total:5.1f}%  {name}")
    if args.lines:
        print(f"\n{'share':>6}  source line (innermost, after inlining)")
        for name, n in lines.most_common(args.lines):
            print(f"{100 * n / total:5.1f}%  {name}")


if __name__ == "__main__":
    main()
