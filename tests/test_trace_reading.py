"""The column-wise trace reader gives exactly the row reader's requests and messages,
and traces the reference cannot simulate sensibly are refused with one clear line."""
from __future__ import annotations

import gzip
import subprocess

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blis_sweep.workloads import traces as trace_csv
from blis_sweep.errors import BlisError
from blis_sweep.sim_config import INT64_MAX

HEADER = "arrived_at,num_prefill_tokens,num_decode_tokens,prefill_tokens,decode_tokens\n"


def _outcome(reader, path, horizon):
    try:
        w = reader(path, horizon)
    except BlisError as exc:
        return ("error", str(exc))
    except trace_csv._NotSimple:
        return ("handed over",)
    return ("ok", w.arrival_ticks.tolist(), w.input_len.tolist(), w.output_len.tolist(), w.seq_offset.tolist(),
            w.prefix_hash.tolist(), w.id_rank.tolist())


def assert_same(path, horizon=INT64_MAX, columnar_used=None):
    rows = _outcome(trace_csv._read_trace_rows, path, horizon)
    columns = _outcome(trace_csv._read_trace_columnar, path, horizon)
    if columns != ("handed over",):
        assert columns == rows
    if columnar_used is not None:
        assert (columns != ("handed over",)) == columnar_used
    assert _outcome(lambda p, h: trace_csv.read_trace(p, h), path, horizon) == rows
    return rows


def write(tmp_path, body, name="t.csv", compress=False, header=HEADER):
    path = tmp_path / name
    data = (header + body).encode()
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


ROWS = [
    '0.1,1,1,"[1]"\n',
    '0.1,1,1,"[1]","[2]",extra\n',
    'abc,1,1,"[1]","[2]"\n',
    ' 0.1,1,1,"[1]","[2]"\n',
    'NaN,1,1,"[1]","[2]"\n',
    '-1,1,1,"[1]","[2]"\n',
    '1e300,1,1,"[1]","[2]"\n',
    '0.1,1,1,"[1, 2.5]","[2]"\n',
    '0.1,1,1,"[1]","[true]"\n',
    '0.1,1,1,"[1,]","[2]"\n',
    '0.1,1,1,"[01]","[2]"\n',
    '0.1,1,1,"[1]","[-2]"\n',
    '0.1,1,1,"[99999999999999999999]","[2]"\n',
    '0.1,1,1,"[2305843009213693950]","[2]"\n',
    '0.1,1,1,"[1]"x,"[2]"\n',
    '0.1,1,1,"[1]","[""2""]"\n',
    '0.1,1,1,"[1]","[2]\n',
    '0.1,1,1,[1],[2]\n',
    '0.1,1,1, "[1]",[2]\n',
    '0.1,1,1,"[1]",[2]\r\n',
    '0.1,1,1,"[\n1\n]",null\n',
    '  \n',
    '.5,0,0,"[ ]","[\t3 , 4 ]"\n',
    '5.,0,0,[],[7]\n',
    '+1e-3,0,0,[],[7]\n',
    '0.1,1,1,[],[]\n',
    '0.1,1,1,"[1]","[2]"\n\xff\n',
    '0.1,1,1,"[1]","[2]"\r',
    '0.1,1,1,"[1]","[2]"',
    '0.1,1,1,"[1]","[2]",\n',
    '0.1,1,1,"","[2]"\n',
    '0.1,1,1,"[1]","[2]"\n\n\r\n0.3,1,1,[5],[6]\n',
]


@pytest.mark.parametrize("row", ROWS)
@pytest.mark.parametrize("compress", [False, True])
def test_readers_agree_on_odd_and_malformed_rows(tmp_path, row, compress):
    for last in ('0.2,1,1,"[3]","[-4]"\n', ""):
        path = write(tmp_path, '0,1,1,"[1]","[2]"\n' + row + last, compress=compress,
                     name="t.csv.gz" if compress else "t.csv")
        assert_same(path)
        assert_same(path, horizon=150_000)


@pytest.mark.parametrize("header", ["", "\n" + HEADER, '"a",b,c,d,e\n', "a,b,c,d\n", "a,b,c,d,e\r\n", "a,b,c,d,e",
                                    "a,b,c,d,\xe9\n"])
def test_readers_agree_on_odd_headers(tmp_path, header):
    assert_same(write(tmp_path, '0,1,1,"[1]","[2]"\n' if header.endswith("\n") else "", header=header))


def test_a_plain_trace_is_read_column_wise(tmp_path):
    body = "".join(f'{k * 0.01:.6f},3,2,"[{k},{k + 1},{k + 2}]","[5,6]"\n' for k in range(50))
    assert assert_same(write(tmp_path, body), columnar_used=True)[0] == "ok"
    assert assert_same(write(tmp_path, body, name="t.csv.gz", compress=True), columnar_used=True)[0] == "ok"


def test_batches_join_seamlessly(tmp_path, monkeypatch):
    """Many small pieces (rows split across piece borders) equal one piece."""
    rng = np.random.default_rng(5)
    lines = []
    for k in range(300):
        ins = ",".join(map(str, rng.integers(0, 50, rng.integers(0, 30))))
        outs = ",".join(map(str, rng.integers(0, 50, rng.integers(1, 10))))
        lines.append(f'{k * 0.003:.6f},0,0,"[{ins}]","[{outs}]"\n')
    path = write(tmp_path, "".join(lines))
    whole = assert_same(path, columnar_used=True)
    monkeypatch.setattr(trace_csv, "_CHUNK_BYTES", 97)
    assert assert_same(path, columnar_used=True) == whole
    assert assert_same(path, horizon=450_000, columnar_used=True)[1] == whole[1][:151]
    # a token-range error in an early batch yields to a syntax error in a later one, as row by row
    bad = write(tmp_path, '0,1,1,"[-1]","[2]"\n' + "".join(lines) + '9,1,1,"[x]","[2]"\n', name="bad.csv")
    assert "prefill_tokens is not a JSON list" in assert_same(bad)[1]


token_lists = st.lists(st.integers(0, 40), max_size=12)


@st.composite
def traces(draw):
    lines = []
    for _ in range(draw(st.integers(0, 12))):
        arrival = draw(st.sampled_from(["0", "0.5", "1", "1.25", "2e-1", "3.", "0.000001", "7"]))
        cells = []
        for tokens in (draw(token_lists), draw(token_lists)):
            text = draw(st.sampled_from([", ", ",", " ,"])).join(map(str, tokens))
            text = "[" + draw(st.sampled_from(["", " "])) + text + "]"
            if not tokens and draw(st.booleans()):
                text = "null"
            cells.append(f'"{text}"' if "," in text or " " in text or draw(st.booleans()) else text)
        lines.append(f"{arrival},{draw(st.integers(0, 9))},0,{cells[0]},{cells[1]}" +
                     draw(st.sampled_from(["\n", "\r\n", "\n\n"])))
    return "".join(lines)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=traces(), horizon=st.sampled_from([INT64_MAX, 0, 1_000_000, 1_250_000]))
def test_readers_agree_on_random_traces(tmp_path, body, horizon):
    assert_same(write(tmp_path, body), horizon)


# ---------------------------------------------------------------- traces refused or accepted like the reference

@pytest.mark.parametrize("body,horizon,message", [
    ("", INT64_MAX, r"t\.csv has a header row but no requests"),
    ('0,1,1,"[1]","[2]"\n0.1,0,0,[],null\n', INT64_MAX,
     r"t\.csv: row 1: prefill_tokens and decode_tokens are both empty"),
    ('0.5,1,1,"[1]","[2]"\n0.001,1,1,"[1]","[2]"\n', 100_000, r"t\.csv: row 1 arrives at 1000 us, within the "
                                                               r"horizon \(100000 us\), but after row 0"),
    ('0.5,1,1,"[1]","[2]"\n0.7,1,1,"[1]","[2]"\n', 100_000, r"t\.csv: row 0 arrives at 500000 us, after the horizon"),
])
def test_traces_the_reference_cannot_simulate_are_refused(tmp_path, body, horizon, message):
    path = write(tmp_path, body)
    assert assert_same(path, horizon)[0] == "error"
    with pytest.raises(BlisError, match=message):
        trace_csv.read_trace(path, horizon)


def _run(cwd, *args):
    return subprocess.run(["blis-sweep", "run", "--model", "meta-llama/llama-3.1-8b-instruct", "--alpha-coeffs",
                           "100,1,100", "--beta-coeffs", "1000,10,1", "--workload", "traces",
                           "--workload-traces-filepath", *args], cwd=cwd, capture_output=True, text=True)


def test_cli_refuses_an_unsorted_trace_with_a_horizon_in_one_line(tmp_path):
    write(tmp_path, '0.5,3,2,"[1,2,3]","[6,7]"\n0.001,3,2,"[1,2,3]","[6,7]"\n')
    out = _run(tmp_path, "t.csv", "--horizon", "100000")
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("error: trace ")
    assert "t.csv: row 1 arrives at 1000 us" in out.stderr


def test_declared_token_counts_are_ignored_like_the_reference(tmp_path):
    """The reference reads columns 0, 3 and 4 only: wrong counts change nothing."""
    write(tmp_path, '0.0,99,7,"[1,2,3,4,5]","[6,7]"\n0.001,1,1,"[1,2,3]","[6,7,8]"\n', name="wrong.csv")
    write(tmp_path, '0.0,5,2,"[1,2,3,4,5]","[6,7]"\n0.001,3,3,"[1,2,3]","[6,7,8]"\n', name="right.csv")
    wrong, right = _run(tmp_path, "wrong.csv"), _run(tmp_path, "right.csv")
    assert wrong.returncode == 0 and '"completed_requests": 2' in wrong.stdout
    strip = lambda text: [ln for ln in text.splitlines() if "timestamp" not in ln and "simulation_duration" not in ln]  # noqa: E731
    assert strip(wrong.stdout) == strip(right.stdout)
