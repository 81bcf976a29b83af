"""The benchmark scripts run against the current package (the step-time benchmark once called an
API the engine had replaced): a tiny run of each that needs no GPU or downloaded weights."""

import json
import subprocess
import sys
from pathlib import Path

from idx_files import write_fake_mnist

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


def test_unet_speed_benchmark_runs_tiny(tmp_path):
    # every variant through the CLI on a tiny U-Net, one repetition: speed-ups per repetition against dense;
    # another thread count writes files of its own (the 1-thread ones stay)
    data = write_fake_mnist(tmp_path / "data", n_train=64, n_test=8)
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "training-speed" / "unet_speed.py"),
                           "--out", str(tmp_path / "out"), "--reps", "1", "--width", "4", "--batch", "4",
                           "--steps", "4", "--log-every", "2", "--from-step", "2", "--threads", "2",
                           "--", "--data-root", str(data)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["unet_training_speed_2threads.json",
                                                                    "unet_training_speed_2threads.md"]
    res = json.loads((tmp_path / "out" / "unet_training_speed_2threads.json").read_text())
    assert list(res["variants"]) == ["dense off", "static off", "static auto", "static on"]
    assert res["variants"]["dense off"]["speedup_vs_dense"] == [1.0]
    for v in res["variants"].values():
        assert len(v["images_per_s"]) == 1 and v["images_per_s"][0] > 0
        ratio = v["images_per_s"][0] / res["variants"]["dense off"]["images_per_s"][0]
        assert abs(v["speedup_vs_dense"][0] - ratio) < 0.01
    assert res["conditions"]["threads"] == 2 and "--model unet" in res["command"]
    md = (tmp_path / "out" / "unet_training_speed_2threads.md").read_text()
    assert "| static on |" in md and "unet_speed.py --threads 2`" in md


def test_training_speed_benchmark_runs_tiny(tmp_path):
    # every section, on the mlp, a few repetitions: the tables are written and name what they compare
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "training-speed" / "training_speed.py"),
                           "--out", str(tmp_path), "--models", "mlp", "--sparsities", "0.95", "--batches", "16",
                           "--threads", "1", "--reps", "2", "--sparsity-g", "0.95", "--sparsity-d", "0,0.5",
                           "--intervals", "5", "--steps", "3", "--rounds", "1", "--warmup", "2"],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads((tmp_path / "training_speed.json").read_text())
    assert {r["layer"] for r in res["layers"]} >= {"Linear(512, 1024)", "Linear(1024, 784)"}
    assert all(r["dense_ms"] > 0 and r["sparsegan_ms"] > 0 for r in res["layers"])
    methods = [(r["method"], r["sparsity_d"]) for r in res["runs"]]
    assert methods == [("dense", 0.0), ("static", 0.0), ("stu", 0.0), ("static", 0.5), ("stu", 0.5)]
    assert res["runs"][0]["speedup_vs_dense"] == 1.0
    dense, stu = res["profile"]
    assert 0 < dense["generator_share"] < 1 and dense["limit_free_generator"] > 1 and stu["speedup_vs_dense"] > 0
    assert abs(sum(stu["shares"].values()) - 1) < 1e-3
    assert stu["shares"].get("sparse products", 0) > 0  # the autograd functions' names are the category's
    assert [r["sparse_compute"] for r in res["memory"]] == ["off", "off", "auto"]
    # three 20-step stretches per setting, each with one topology update (every 20 steps)
    assert [(r["sparse_compute"], r["updates_timed"]) for r in res["updates"]] == [("auto", 3), ("off", 3)]
    assert all(abs(r["update_vs_plain"] - r["update_median_ms"] / r["plain_median_ms"]) < 0.01 for r in res["updates"])
    md = (tmp_path / "training_speed.md").read_text()
    assert "## STU-GAN's topology-update steps" in md
    assert "## Per layer" in md and "## Whole training steps" in md and "Amdahl" in md and "## Peak resident" in md
