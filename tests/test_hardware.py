import json
import math

import pytest

from blis_sweep.errors import BlisError
from blis_sweep.data.hardware import all_gpu_calibs, available_gpus, gpu_calib

CALIB_KEYS = ("BwEffConstant", "TOverheadMicros", "perLayerOverhead", "mfuPrefill", "mfuDecode", "allReduceLatency")
H100 = {"TFlopsPeak": 989.5, "BwPeakTBs": 3.35, "BwEffConstant": 0.72, "TOverheadMicros": 500.0,
        "perLayerOverhead": 20.0, "mfuPrefill": 0.65, "mfuDecode": 0.12, "allReduceLatency": 20.0}


def write(tmp_path, table):
    path = tmp_path / "hw.json"
    path.write_text(json.dumps(table))
    return path


def test_bundled_reference_gpus_keep_their_calibration():
    h = gpu_calib("H100")
    assert (h.tflops_peak, h.bw_peak_tbs, h.bw_eff_constant, h.t_overhead_micros, h.per_layer_overhead,
            h.mfu_prefill, h.mfu_decode, h.all_reduce_latency, h.memory_gib) == (
        989.5, 3.35, 0.72, 500.0, 20.0, 0.65, 0.12, 20.0, 80.0)
    a = gpu_calib("A100-SXM")
    assert (a.tflops_peak, a.bw_peak_tbs, a.memory_gib) == (312.0, 2.039, 80.0)


def test_bundled_added_gpus_have_datasheet_peaks_and_h100_calibration():
    gpus = all_gpu_calibs()
    assert set(gpus) == {"H100", "A100-SXM", "H200", "A100-80GB", "L40S", "B200"}
    peaks = {"H200": (989.5, 4.8, 141.0), "A100-80GB": (312.0, 2.039, 80.0),
             "L40S": (362.05, 0.864, 48.0), "B200": (2250.0, 8.0, 180.0)}
    h100 = gpus["H100"]
    for name, (tf, bw, mem) in peaks.items():
        g = gpus[name]
        assert (g.tflops_peak, g.bw_peak_tbs, g.memory_gib) == (tf, bw, mem)
        assert (g.bw_eff_constant, g.t_overhead_micros, g.per_layer_overhead, g.mfu_prefill, g.mfu_decode,
                g.all_reduce_latency) == (h100.bw_eff_constant, h100.t_overhead_micros, h100.per_layer_overhead,
                                          h100.mfu_prefill, h100.mfu_decode, h100.all_reduce_latency)


def test_unknown_gpu_lists_available_sorted():
    with pytest.raises(BlisError, match=r"'V100' not found.*available: A100-80GB, A100-SXM, B200, H100, H200, L40S"):
        gpu_calib("V100")
    assert available_gpus() == sorted(available_gpus())


def test_gpu_name_is_case_sensitive():
    with pytest.raises(BlisError, match="not found"):
        gpu_calib("h100")


def test_unreadable_and_malformed_files_name_the_file(tmp_path):
    missing = tmp_path / "nope.json"
    with pytest.raises(BlisError, match="nope.json"):
        gpu_calib("H100", missing)
    bad = tmp_path / "bad.json"
    bad.write_text("{ not json")
    with pytest.raises(BlisError, match="bad.json.*not valid JSON"):
        gpu_calib("H100", bad)
    arr = tmp_path / "arr.json"
    arr.write_text("[1, 2]")
    with pytest.raises(BlisError, match="arr.json"):
        gpu_calib("H100", arr)


@pytest.mark.parametrize("key", list(H100))
def test_missing_field_is_named(tmp_path, key):
    entry = {k: v for k, v in H100.items() if k != key}
    with pytest.raises(BlisError, match=rf"'X'.*missing field {key}"):
        gpu_calib("X", write(tmp_path, {"X": entry}))


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_values_rejected(tmp_path, value):
    path = write(tmp_path, {"X": {**H100, "mfuDecode": value}})
    with pytest.raises(BlisError, match=r"'X' field mfuDecode must be finite"):
        gpu_calib("X", path)


@pytest.mark.parametrize("key", ["TFlopsPeak", "BwPeakTBs", "BwEffConstant", "mfuPrefill", "mfuDecode"])
def test_rates_must_be_positive(tmp_path, key):
    path = write(tmp_path, {"X": {**H100, key: 0}})
    with pytest.raises(BlisError, match=rf"'X' field {key} must be > 0"):
        gpu_calib("X", path)


@pytest.mark.parametrize("key", ["TOverheadMicros", "perLayerOverhead", "allReduceLatency"])
def test_overheads_may_be_zero_but_not_negative(tmp_path, key):
    assert gpu_calib("X", write(tmp_path, {"X": {**H100, key: 0}})) is not None
    with pytest.raises(BlisError, match=rf"'X' field {key} must be >= 0"):
        gpu_calib("X", write(tmp_path, {"X": {**H100, key: -1}}))


def test_non_numbers_rejected(tmp_path):
    with pytest.raises(BlisError, match=r"field BwPeakTBs must be a number"):
        gpu_calib("X", write(tmp_path, {"X": {**H100, "BwPeakTBs": "3.35"}}))
    with pytest.raises(BlisError, match=r"field BwPeakTBs must be a number"):
        gpu_calib("X", write(tmp_path, {"X": {**H100, "BwPeakTBs": True}}))


def test_memory_optional_and_validated(tmp_path):
    assert gpu_calib("X", write(tmp_path, {"X": H100})).memory_gib is None
    assert gpu_calib("X", write(tmp_path, {"X": {**H100, "memory_gib": 24}})).memory_gib == 24.0
    with pytest.raises(BlisError, match="memory_gib must be > 0"):
        gpu_calib("X", write(tmp_path, {"X": {**H100, "memory_gib": 0}}))


def test_keys_match_case_insensitively_like_go(tmp_path):
    entry = {k.lower(): v for k, v in H100.items()}
    assert gpu_calib("X", write(tmp_path, {"X": entry})).tflops_peak == 989.5


def test_other_entries_are_not_validated_for_a_single_lookup(tmp_path):
    path = write(tmp_path, {"X": H100, "Broken": {"TFlopsPeak": -1}})
    assert gpu_calib("X", path).tflops_peak == 989.5
    with pytest.raises(BlisError, match="'Broken'"):
        all_gpu_calibs(path)
