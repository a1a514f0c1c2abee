"""Ctrl-C during `blis-sweep grid` (a real SIGINT to the console script): exit 130, a line
saying how many chunks were kept, the kept chunks intact, and the same command finishing
the run with results identical to an uninterrupted one."""
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq

from blis_sweep.sweep.io import TMP_MARK, parquet_identity

BLIS = str(Path(sys.executable).parent / "blis-sweep")
SWEEP = """\
name: interrupt
base:
  model: meta-llama/llama-3.1-8b-instruct
  hardware: H100
  latency_model: blackbox
  alpha_coeffs: [100, 1, 100]
  beta_coeffs: [1000, 10, 1]
  total_kv_blocks: 5000
  workload:
    distribution: {prompt_tokens: 256, prompt_tokens_stdev: 128, prompt_tokens_min: 2, prompt_tokens_max: 1024,
                   output_tokens: 64, output_tokens_stdev: 32, output_tokens_min: 1, output_tokens_max: 256}
  num_requests: 3000
axes:
  rate: [5, 10, 20, 40, 80, 160, 320, 640]
  max_num_running_reqs: [16, 64, 256, 1024]
replicates: 2
chunk_size: 4
"""
NUM_CHUNKS = 16


def grid(cwd, out, **kwargs):
    return subprocess.Popen([BLIS, "grid", "s.yaml", "--out", out, "--quiet"], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def test_sigint_keeps_complete_chunks_and_the_same_command_resumes(tmp_path):
    (tmp_path / "s.yaml").write_text(SWEEP)
    chunks = tmp_path / "cut" / "chunks"
    proc = grid(tmp_path, "cut")
    deadline = time.monotonic() + 900  # the first call may compile the kernels
    while not (chunks / "configs-00001.parquet").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no chunk written"
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 130, stderr
    kept = sorted(chunks.glob("configs-*.parquet"))
    assert 2 <= len(kept) < NUM_CHUNKS
    assert stderr.strip().splitlines() == [
        f"interrupted: {len(kept)} of {NUM_CHUNKS} chunks written to cut; run the same command to resume"]
    assert "Traceback" not in stderr
    assert not [p for p in chunks.iterdir() if TMP_MARK in p.name]
    hashes = {parquet_identity(p) for p in kept}
    assert len(hashes) == 1 and next(iter(hashes))[1] == 4  # complete chunks of one run, 4 rows each
    assert not (tmp_path / "cut" / "configs.parquet").exists()

    resumed = grid(tmp_path, "cut")
    _, err = resumed.communicate(timeout=900)
    assert resumed.returncode == 0, err
    whole = grid(tmp_path, "whole")
    _, err = whole.communicate(timeout=900)
    assert whole.returncode == 0, err
    cut_table = pq.read_table(tmp_path / "cut" / "configs.parquet")
    assert cut_table.num_rows == 64
    assert cut_table.equals(pq.read_table(tmp_path / "whole" / "configs.parquet"))
