"""Record a workload-spec parity case with a build of the reference's `run` (not a test).

Use a build of d25e1935 with the four fixes; check it against the shared cases first (a
build without the fixes differs on KV pressure and shared prefixes).

    python tests/make_spec_reference_case.py REFERENCE_BINARY CASE_DIR [extra run flags...]

CASE_DIR holds workload_spec.yaml (and any ServeGen folder it names) and `about.txt`;
the reference runs there (with defaults.yaml, hardware_config.json and model_configs/
staged beside it, as for the shared cases) with
`run --workload-spec workload_spec.yaml <extra flags> --results-path results.json`, and
case.json and requests.csv are written in the shared cases' format, so that
tests/test_parity.py replays the case through `blis-sweep run`.
"""
from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.parity_cases import REPO, parse_metric_blocks, parse_sections  # noqa: E402

WALL = ("sim_start_timestamp", "sim_end_timestamp", "simulation_duration_s")


def flags_of(args: list[str]) -> dict:
    """The given flags and their values, as the shared cases' `flags`."""
    from blis_sweep.reference.argv import parse_run_argv

    parsed = parse_run_argv(args[1:])
    names = [a[2:].split("=")[0] for a in args[1:] if a.startswith("--")]
    out = {}
    for name in names:
        value = getattr(parsed, name.replace("-", "_"))
        out[name] = list(value) if isinstance(value, tuple) else value
    return out


def main(binary: str, case_dir: str, *flags: str) -> None:
    case_dir = Path(case_dir)
    spec_files = sorted(str(p.relative_to(case_dir)) for p in case_dir.rglob("*")
                        if p.is_file() and p.name not in ("case.json", "requests.csv", "about.txt"))
    args = ["run", "--workload-spec", "workload_spec.yaml", *flags]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for rel in spec_files:
            (work / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(case_dir / rel, work / rel)
        shutil.copy(REPO / "model_configs" / "defaults.yaml", work / "defaults.yaml")
        shutil.copy(REPO / "hardware" / "hardware_config.json", work / "hardware_config.json")
        shutil.copytree(REPO / "model_configs", work / "model_configs", ignore=shutil.ignore_patterns("*.yaml", "*.md"))
        proc = subprocess.run([binary, *args, "--results-path", "results.json"], cwd=work, capture_output=True,
                              text=True, timeout=600, check=True)
        results = json.loads((work / "results.json").read_text())
    sections = parse_sections(proc.stdout)
    case = {"name": case_dir.name, "about": (case_dir / "about.txt").read_text().strip(),
            "flags": flags_of(args), "reference_cli_args": args, "spec_files": spec_files,
            "metrics": [{k: v for k, v in b.items() if k not in WALL} for b in parse_metric_blocks(proc.stdout)]}
    if "Anomaly Counters" in sections:
        a = sections["Anomaly Counters"]
        case["anomalies"] = {"priority_inversions": int(a["Priority Inversions"]),
                             "hol_blocking_events": int(a["HOL Blocking Events"]),
                             "rejected_requests": int(a["Rejected Requests"])}
    if "Fitness Evaluation" in sections:
        f = dict(sections["Fitness Evaluation"])
        case["fitness"] = {"score": float(f.pop("Score")), "components": {k: float(v) for k, v in f.items()}}
    (case_dir / "case.json").write_text(json.dumps(case, indent=1) + "\n")
    with open(case_dir / "requests.csv", "w", newline="") as out:
        w = csv.writer(out)
        w.writerow(["request_id", "arrived_at", "num_prefill_tokens", "num_decode_tokens", "ttft_ms", "e2e_ms",
                    "itl_us_per_token", "scheduling_delay_us", "slo_class", "tenant_id"])
        for r in results.get("requests", []):
            w.writerow([r["requestID"], r["arrived_at"], r["num_prefill_tokens"], r["num_decode_tokens"],
                        r["ttft_ms"], r["e2e_ms"], r["itl_ms"], r["scheduling_delay_ms"], r.get("slo_class", ""),
                        r.get("tenant_id", "")])
    print(f"{case_dir.name}: {len(case['metrics'])} metrics blocks, {len(results.get('requests', []))} requests")


if __name__ == "__main__":
    main(*sys.argv[1:])
