import gzip
import math
from pathlib import Path

import numpy as np
import pytest

from blis_sweep.errors import BlisError
from blis_sweep.sim_config import INT64_MAX
from blis_sweep.workloads.requests import (constant_arrival_ticks, distribution_workload, poisson_arrival_ticks,
                                 preset_workload, read_trace)

PARITY = Path(__file__).parent / "data" / "parity"
HEADER = "arrived_at,num_prefill_tokens,num_decode_tokens,prefill_tokens,decode_tokens\n"
# A valid distribution: rate, n, prefix, prompt (mean, std, min, max), output (mean, std, min, max)
DIST = dict(rate_per_s=10.0, num_requests=50, prefix_tokens=0, prompt_mean=70, prompt_std=35, prompt_min=2,
            prompt_max=200, output_mean=215, output_std=80, output_min=1, output_max=512, seed=42)


def write_trace(tmp_path, body, name="t.csv", compress=False):
    path = tmp_path / name
    data = (HEADER + body).encode()
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def ph(w, r, i):
    return int(w.prefix_hash[w.seq_offset[r] + i])


# ---------------------------------------------------------------- traces

def test_v01_trace():
    w = read_trace(PARITY / "v01_single_chat_prefix" / "trace.csv.gz")
    assert w.num_requests == 300 and w.rate_per_s == 0.0
    expected = 100000 * (np.arange(300) + 1)
    # int64(x * 1e6) truncates: 4.1 s * 1e6 = 4099999.9999999995 -> 4099999
    expected[[40, 81, 163]] -= 1
    assert np.array_equal(w.arrival_ticks, expected)
    assert (w.input_len[0], w.output_len[0]) == (412, 323)
    # All requests share a 284-token prefix, then diverge.
    assert ph(w, 0, 284) == ph(w, 1, 284)
    assert ph(w, 0, 285) != ph(w, 1, 285)
    end = lambda r: int(w.input_len[r] + w.output_len[r])  # noqa: E731
    assert ph(w, 0, end(0)) != ph(w, 1, end(1))


def test_horizon_stops_at_first_later_row():
    w = read_trace(PARITY / "v18_horizon_cut" / "trace.csv.gz", horizon=6_000_000)
    assert w.num_requests == 126 and w.arrival_ticks[-1] == 5_964_832


def test_tick_equal_to_horizon_is_kept_and_rows_after_the_stop_are_not_parsed(tmp_path):
    path = write_trace(tmp_path, '0.5,1,1,"[1]","[2]"\n1.0,1,1,"[3]","[4]"\n2.0,1,1,garbage,[x\n3.0,1,1,"[5]","[6]"\n')
    assert read_trace(path, horizon=1_000_000).num_requests == 2
    assert read_trace(path, horizon=999_999).num_requests == 1


def test_plain_gz_suffix_and_gz_magic_give_the_same_workload(tmp_path):
    body = '0.25,2,1,"[10, 11]","[12]"\n0.5,0,2,[],"[1,2]"\n'
    a = read_trace(write_trace(tmp_path, body))
    b = read_trace(write_trace(tmp_path, body, name="t.csv.gz", compress=True))
    c = read_trace(write_trace(tmp_path, body, name="hidden.csv", compress=True))
    for w in (b, c):
        assert np.array_equal(a.prefix_hash, w.prefix_hash) and np.array_equal(a.arrival_ticks, w.arrival_ticks)
    assert list(a.arrival_ticks) == [250000, 500000]
    assert list(a.input_len) == [2, 0] and list(a.output_len) == [1, 2]


def test_null_list_and_blank_lines_and_counts_ignored(tmp_path):
    path = write_trace(tmp_path, '\n0,999,999,null,"[ 7 ,8 ]"\n\n1e-6,0,0,"[1]",[]\n')
    w = read_trace(path)
    assert list(w.arrival_ticks) == [0, 1]
    assert list(w.input_len) == [0, 1] and list(w.output_len) == [2, 0]


@pytest.mark.parametrize("row,message", [
    ('0.1,1,1,"[1]"\n', r"row 1 has 4 columns, expected at least 5"),
    ('0.1,1,1,"[1]","[2]",extra\n', r"row 1 has 6 columns but the header has 5"),
    ('abc,1,1,"[1]","[2]"\n', r"row 1: arrived_at 'abc' is not a finite number"),
    (' 0.1,1,1,"[1]","[2]"\n', r"row 1: arrived_at ' 0.1' is not a finite number"),
    ('NaN,1,1,"[1]","[2]"\n', r"row 1: arrived_at 'NaN' is not a finite number"),
    ('-1,1,1,"[1]","[2]"\n', r"row 1: arrived_at must be >= 0"),
    ('1e300,1,1,"[1]","[2]"\n', r"row 1: arrived_at 1e300 is too large"),
    ('0.1,1,1,"[1, 2.5]","[2]"\n', r"row 1: prefill_tokens is not a JSON list of integers"),
    ('0.1,1,1,"[1]","[true]"\n', r"row 1: decode_tokens is not a JSON list of integers"),
    ('0.1,1,1,"[1]","[[2]]"\n', r"row 1: decode_tokens is not a JSON list of integers"),
    ('0.1,1,1,"[1,]","[2]"\n', r"row 1: prefill_tokens is not a JSON list of integers"),
    ('0.1,1,1,"[01]","[2]"\n', r"row 1: prefill_tokens is not a JSON list of integers"),
    ('0.1,1,1,"[1]","[-2]"\n', r"row 1: decode_tokens holds token id -2"),
    ('0.1,1,1,"[99999999999999999999]","[2]"\n', r"row 1: prefill_tokens holds token id"),
])
def test_malformed_rows_name_file_row_and_problem(tmp_path, row, message):
    path = write_trace(tmp_path, '0,1,1,"[1]","[2]"\n' + row)
    with pytest.raises(BlisError, match=rf"t\.csv.*{message}"):
        read_trace(path)


def test_unreadable_empty_and_corrupt_files(tmp_path):
    with pytest.raises(BlisError, match="cannot read trace"):
        read_trace(tmp_path / "missing.csv")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(BlisError, match="empty.csv is empty"):
        read_trace(empty)
    corrupt = tmp_path / "c.csv.gz"
    corrupt.write_bytes(gzip.compress((HEADER * 50).encode())[:40])
    with pytest.raises(BlisError, match="cannot read trace"):
        read_trace(corrupt)
    quote = write_trace(tmp_path, '0,1,1,"[1]"x,"[2]"\n', name="q.csv")
    with pytest.raises(BlisError, match="q.csv: malformed CSV at row 0"):
        read_trace(quote)


def test_large_gzipped_trace_reads_completely(tmp_path):
    rng = np.random.default_rng(0)
    lines = []
    for i in range(500):
        inp = ",".join(map(str, rng.integers(0, 128000, 800)))
        out = ",".join(map(str, rng.integers(0, 128000, 200)))
        lines.append(f'{i * 0.01:.6f},800,200,"[{inp}]","[{out}]"\n')
    path = write_trace(tmp_path, "".join(lines), name="big.csv.gz", compress=True)
    w = read_trace(path)
    assert w.num_requests == 500 and int(w.seq_offset[-1]) == 500 * 1001


# ---------------------------------------------------------------- arrivals

def reference_constant_loop(rate, n, horizon):
    """The reference's loop, literally."""
    out, t, idx, interval = [], 0, 0, int(1 / (rate / 1e6))
    while t < horizon and idx < n:
        out.append(t)
        t += interval
        idx += 1
        if t > horizon:
            break
    return out


@pytest.mark.parametrize("rate", [10.0, 3.0, 7.5, 1e6, 2e6, 0.3])
@pytest.mark.parametrize("n", [1, 5, 40])
@pytest.mark.parametrize("horizon", [0, 1, 99_999, 100_000, 100_001, 1_000_000, 2_999_997, INT64_MAX])
def test_constant_arrivals_follow_the_reference_loop(rate, n, horizon):
    assert list(constant_arrival_ticks(rate, n, horizon)) == reference_constant_loop(rate, n, horizon)


def test_constant_interval_truncates():
    # 1 / (10 / 1e6) = 99999.99999999999 -> 99999
    assert list(constant_arrival_ticks(10.0, 3, INT64_MAX)) == [0, 99_999, 199_998]


def test_poisson_arrivals():
    rng = np.random.Generator(np.random.PCG64(1))
    t = poisson_arrival_ticks(100.0, 20_000, INT64_MAX, rng)
    assert t[0] == 0 and len(t) == 20_000 and np.all(np.diff(t) >= 0)
    assert abs(np.diff(t).mean() - 1e4) < 300  # mean gap 1e6 / rate µs
    cut = poisson_arrival_ticks(100.0, 20_000, 1_000_000, np.random.Generator(np.random.PCG64(1)))
    assert np.array_equal(cut, t[t < 1_000_000])
    tiny_rate = poisson_arrival_ticks(1e-12, 5, INT64_MAX, np.random.Generator(np.random.PCG64(1)))
    assert tiny_rate[0] == 0 and np.all(tiny_rate >= 0)


# ---------------------------------------------------------------- generated workloads

def test_distribution_lengths_are_clamped_and_prefix_is_shared():
    w = distribution_workload(**{**DIST, "prefix_tokens": 30, "num_requests": 400})
    prompt = w.input_len - 30
    assert prompt.min() >= 2 and prompt.max() <= 200 and w.output_len.min() >= 1 and w.output_len.max() <= 512
    assert (prompt == 2).any()  # N(70, 35) reaches the lower clamp among 400 draws
    assert w.rate_per_s == 10.0
    assert len({ph(w, r, 30) for r in range(w.num_requests)}) == 1
    assert len({ph(w, r, 31) for r in range(w.num_requests)}) > 390


def test_min_equal_max_gives_fixed_length():
    w = distribution_workload(**{**DIST, "prompt_mean": 9, "prompt_std": 9, "prompt_min": 9, "prompt_max": 9})
    assert set(w.input_len.tolist()) == {9}


def test_same_seed_same_requests_whatever_rate_horizon_or_arrivals():
    a = distribution_workload(**DIST)
    b = distribution_workload(**{**DIST, "rate_per_s": 50.0, "horizon": 500_000, "arrival": "poisson"})
    assert 0 < b.num_requests < a.num_requests
    k = b.num_requests
    assert np.array_equal(a.input_len[:k], b.input_len) and np.array_equal(a.output_len[:k], b.output_len)
    assert np.array_equal(a.prefix_hash[: a.seq_offset[k]], b.prefix_hash)
    c = distribution_workload(**{**DIST, "seed": 43})
    assert not np.array_equal(a.prefix_hash, c.prefix_hash)
    d = distribution_workload(**{**DIST, "seed": -5})  # the reference's seeds are int64
    assert d.num_requests == 50


def test_horizon_limits_generated_requests():
    w = distribution_workload(**{**DIST, "horizon": 250_000})
    assert list(w.arrival_ticks) == [0, 99_999, 199_998]


@pytest.mark.parametrize("change,message", [
    (dict(prompt_mean=201), r"prompt-tokens \(201\) and prompt-tokens-stdev \(35\) should be in range"),
    (dict(prompt_std=1), r"prompt-tokens \(70\) and prompt-tokens-stdev \(1\) should be in range .* = \[2, 200\]"),
    (dict(output_std=600), r"output-tokens \(215\) and output-tokens-stdev \(600\)"),
    (dict(output_min=300), r"output-tokens .* should be in range .* = \[300, 512\]"),
    (dict(rate_per_s=0.0), "rate must be a finite number > 0"),
    (dict(rate_per_s=math.inf), "rate must be a finite number > 0"),
    (dict(rate_per_s=math.nan), "rate must be a finite number > 0"),
    (dict(num_requests=0), "num requests must be >= 1"),
    (dict(num_requests=2.5), "num requests must be an integer"),
    (dict(prefix_tokens=-1), "prefix-tokens must be >= 0"),
    (dict(prompt_min=-1, prompt_std=0), "prompt-tokens-min must be >= 0"),
    (dict(arrival="uniform"), "arrival must be one of constant, poisson"),
])
def test_distribution_validation(change, message):
    with pytest.raises(BlisError, match=message):
        distribution_workload(**{**DIST, **change})


def test_presets():
    w = preset_workload("chatbot", rate_per_s=5.0, num_requests=200, seed=1)
    assert w.num_requests == 200 and w.rate_per_s == 5.0
    assert w.input_len.min() >= 2 and w.input_len.max() <= 800
    assert w.output_len.min() >= 1 and w.output_len.max() <= 1024
    assert abs(w.input_len.mean() - 256) < 25
    with pytest.raises(BlisError, match="unknown workload preset 'distribution'"):
        preset_workload("distribution", rate_per_s=5.0, num_requests=10, seed=1)
    with pytest.raises(BlisError, match="rate must be"):
        preset_workload("chatbot", rate_per_s=-1.0, num_requests=10, seed=1)
