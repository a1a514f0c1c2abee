"""A grid row equals `blis-sweep run` on the same configuration (one engine, two front ends)."""
import io
import textwrap

import polars as pl

from blis_sweep.sweep.run import run_grid
from blis_sweep.reference.command import run_reference
from tests.parity_cases import parse_metric_blocks

SWEEP = """\
name: run_equivalence
base:
  model: meta-llama/llama-3.1-8b-instruct
  hardware: H100
  latency_model: blackbox
  total_kv_blocks: auto
  workload: {preset: chatbot}
  num_requests: 60
  arrival: constant
  rate: 10
axes:
  tp: [1, 2]
  rate: [8, 40]
  max_num_running_reqs: [16, 256]
seeds: [42, 7]
"""

KEYS = ("completed_requests", "total_input_tokens", "total_output_tokens", "responses_per_sec", "tokens_per_sec",
        "e2e_mean_ms", "e2e_p99_ms", "ttft_mean_ms", "ttft_p90_ms", "itl_mean_ms", "itl_p99_ms",
        "scheduling_delay_p99_ms")


def test_sampled_grid_rows_equal_run(tmp_path):
    spec = tmp_path / "sweep.yaml"
    spec.write_text(textwrap.dedent(SWEEP))
    run_grid(spec, out=tmp_path / "out", quiet=True)
    rows = pl.read_parquet(tmp_path / "out" / "configs.parquet").to_dicts()
    assert len(rows) == 16
    for row in rows[::3]:
        argv = ["--workload", "chatbot", "--model", "meta-llama/llama-3.1-8b-instruct", "--hardware", "H100",
                "--tp", str(row["tp"]), "--rate", str(row["rate"]), "--max-prompts", "60",
                "--seed", str(row["seed"]), "--max-num-running-reqs", str(row["max_num_running_reqs"])]
        out = io.StringIO()
        assert run_reference(argv, cwd=tmp_path, out=out, err=io.StringIO()) == 0
        (block,) = parse_metric_blocks(out.getvalue())
        for key in KEYS:
            assert block[key] == row[key], (row["config_id"], key, block[key], row[key])
