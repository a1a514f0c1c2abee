"""Compare the latest benchmark record of each kind against the median of the earlier ones.

Only comparable records count: same bench, sweep file, cold/warm cache and CPU model.
A slowdown of more than --threshold (default 20%) in configurations/s or in simulated
requests/s per core exits with status 1; otherwise 0 (also when there is no history yet).
The compile benchmark compares compile seconds, the trace benchmark read speed and the
peak memory of a run on a large trace (both: more than the threshold worse fails).
Records taken with a load average above the core count (`load1`) are not compared.

    python benchmarks/compare.py [--history benchmarks/history.jsonl] [--threshold 0.2]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

HISTORY = Path(__file__).resolve().parent / "history.jsonl"
METRICS = ("configs_per_s", "requests_per_s_per_core")  # higher is better
# benchmark kinds with their own figures: (metric, True when higher is better)
KIND_METRICS = {
    "compile": (("compile_s", False),),
    "trace": (("read_requests_per_s", True), ("run_peak_mb", False)),
}


def load(path: Path) -> list[dict]:
    if not path.exists():
        return []
    records = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except ValueError:
                print(f"warning: {path}:{n} is not JSON; skipped", file=sys.stderr)
    return records


def comparable(a: dict, b: dict) -> bool:
    return (a.get("bench") == b.get("bench") and a.get("spec") == b.get("spec") and a.get("cold") == b.get("cold")
            and a.get("machine", {}).get("cpu") == b.get("machine", {}).get("cpu"))


def compare(records: list[dict], threshold: float) -> tuple[int, list[str]]:
    """Each benchmark kind (grid, engine_1inst, engine_4inst, ...): its latest record vs its history."""
    kinds = list(dict.fromkeys(r.get("bench") for r in records if r.get("bench")))
    if not kinds:
        return 0, ["no benchmark records yet"]
    status, lines = 0, []
    for kind in kinds:
        kind_status, kind_lines = _compare_kind([r for r in records if r.get("bench") == kind], threshold)
        status |= kind_status
        lines += [f"[{kind}] {line}" for line in kind_lines]
    return status, lines


def loaded(record: dict) -> bool:
    """Measured while other work kept every core busy (load average above the core count)."""
    return record.get("load1", 0) > record.get("machine", {}).get("cores", 1)


def _compare_kind(grid: list[dict], threshold: float) -> tuple[int, list[str]]:
    latest = grid[-1]
    if loaded(latest):
        return 0, [f"latest record measured on a loaded machine (load {latest['load1']} on "
                   f"{latest['machine'].get('cores')} cores); not compared"]
    earlier = [r for r in grid[:-1] if comparable(r, latest) and not loaded(r)]
    if not earlier:
        return 0, [f"no earlier comparable record for {latest.get('spec')} (cold={latest.get('cold')}) on "
                   f"{latest.get('machine', {}).get('cpu')}; nothing to compare"]
    status, lines = 0, []
    for metric, higher_is_better in KIND_METRICS.get(latest.get("bench"), [(m, True) for m in METRICS]):
        median = statistics.median(r[metric] for r in earlier)
        value = latest[metric]
        if higher_is_better:
            slowdown = median / value - 1 if value > 0 else float("inf")
            change = f"throughput {value / median - 1:+.1%}, time {slowdown:+.1%}"
        else:
            slowdown = value / median - 1 if median > 0 else float("inf")
            change = f"{slowdown:+.1%}"
        flag = slowdown > threshold
        status |= flag
        label = "SLOWER" if higher_is_better else "WORSE"
        lines.append(f"{label if flag else 'ok':>6}  {metric}: latest {value:,.1f} vs median {median:,.1f} of "
                     f"{len(earlier)} runs ({change})")
    return status, lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--history", type=Path, default=HISTORY)
    ap.add_argument("--threshold", type=float, default=0.2, help="allowed slowdown (0.2 = 20%%)")
    args = ap.parse_args()
    status, lines = compare(load(args.history), args.threshold)
    print("\n".join(lines))
    if status:
        print(f"slowdown above {args.threshold:.0%} against the history median", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
