"""The benchmark scripts run against the current package (the step-time benchmark once called an
API the engine had replaced): a tiny run of each that needs no GPU or downloaded weights."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_step_time_benchmark_runs_and_reports_update_steps(tmp_path):
    out = tmp_path / "st.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "step-time" / "step_time.py"), "--models", "mlp",
                           "--steps", "2", "--rounds", "1", "--update-interval", "1", "--json", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    stu = json.loads(out.read_text())["results"]["mlp"]["stu"]
    assert stu["updates_timed"] >= 1 and stu["update_median_ms"] > 0


def test_inference_benchmark_runs_with_its_controls(tmp_path):
    out = tmp_path / "inf.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "efficiency" / "efficiency_inference.py"),
                           "--models", "mlp", "--sparsities", "0.9", "--batch-sizes", "1,4", "--repeats", "2",
                           "--threads", "1", "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    run = json.loads(out.read_text())["runs"][0]
    assert set(run["timing"]) == set(run["sparsity_only_control"]) == {"1", "4"}
    assert run["first_output"]["cold_ms"] > 0 and run["first_output"]["warm_ms"] > 0
    assert run["max_abs_diff"] < 1e-4


def test_inception_throughput_benchmark_runs(tmp_path):
    import pytest

    from sparsegan.errors import UserError
    from sparsegan.metrics.inception import locate_inception_weights

    try:
        locate_inception_weights()
    except UserError:
        pytest.skip("TF-Inception weights not installed")
    out = tmp_path / "inc.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "metrics" / "inception_throughput.py"),
                           "--images", "8", "--batch", "8", "--rounds", "1", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(out.read_text())
    assert set(res["images_per_s"]) == {"nchw", "channels_last", "shipped"}
    assert max(res["features_max_relative_difference"].values()) < 1e-5
