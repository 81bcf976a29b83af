"""Through the real entry point, in-process."""

import json

import pytest
import torch
from safetensors.torch import load_file

from conftest import needs_fashion
from idx_files import write_fake_mnist
from run_checks import assert_inactive_zero
from sparsegan.cli import main
from sparsegan.training import read_records


def _data(tmp_path):
    return write_fake_mnist(tmp_path / "data", n_train=512, n_test=8)


@needs_fashion
def test_acceptance_stu_mlp_on_fashion_mnist(tmp_path):
    rc = main(["train", "--dataset", "fashion-mnist", "--model", "mlp", "--method", "stu",
               "--sparsity-g", "0.9", "--sparsity-d", "0.5", "--steps", "400", "--update-interval", "100",
               "--out", str(tmp_path / "RUN"), "--no-progress"])
    assert rc == 0
    run = tmp_path / "RUN"
    topo = [r for r in read_records(run, "topology") if r["net"] == "G"]
    assert [r["step"] for r in topo] == [100, 200, 300]
    assert len({r["active"] for r in topo}) == 1
    assert all(r["pruned"] > 0 and r["pruned"] == r["grown"] for r in topo)
    summary = json.loads((run / "summary.json").read_text())
    prunable = summary["params"]["G"]["prunable"]
    assert abs(summary["density"]["G"] * prunable - 0.1 * prunable) <= 1
    assert summary["density"]["D"] == pytest.approx(0.5, abs=1 / summary["params"]["D"]["prunable"])
    assert summary["itop_rate"]["G"] > 0.1 + 0.01
    assert summary["status"] == "completed"
    masks = assert_inactive_zero(run)
    assert len(masks) == 7  # every prunable weight: 4 Linear in G, 3 in D
    assert sorted(run.joinpath("samples").iterdir())
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["method"] == "stu" and cfg["environment"]["torch"] == torch.__version__


def test_static_changes_no_mask(tiny_run, tmp_path):
    assert tiny_run(tmp_path / "run", "--method", "static", "--steps", "30", "--update-interval", "10",
                    "--sparsity-g", "0.8", "--model", "mlp", "--model-width", "16", data=_data(tmp_path)) == 0
    topo = [r for r in read_records(tmp_path / "run", "topology") if r["net"] == "G"]
    assert len(topo) == 2
    assert all(r["pruned"] == 0 and r["itop_rate"] == pytest.approx(r["density"]) for r in topo)
    assert_inactive_zero(tmp_path / "run")


def test_dense_has_density_one_and_records_ignored_flags(tiny_run, tmp_path):
    assert tiny_run(tmp_path / "run", "--method", "dense", "--steps", "5", "--sparsity-g", "0.9",
                    "--model", "mlp", "--model-width", "16", data=_data(tmp_path)) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["density"] == {"G": 1.0, "D": 1.0}
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["ignored"] == ["sparsity_g", "sparsity_d"]


@pytest.mark.parametrize("explore", ["G", "D", "GD"])
def test_stu_dcgan_explore(tiny_run, tmp_path, explore):
    assert tiny_run(tmp_path / "run", "--model", "dcgan", "--model-width", "8", "--steps", "6",
                    "--update-interval", "2", "--explore", explore, "--batch-size", "16", "--sparsity-d", "0.5",
                    data=_data(tmp_path)) == 0
    topo = read_records(tmp_path / "run", "topology")
    for net in ("G", "D"):
        changed = [r["pruned"] for r in topo if r["net"] == net]
        assert (sum(changed) > 0) == (net in explore)
    assert_inactive_zero(tmp_path / "run")


def test_grow_random_and_conv_scope(tiny_run, tmp_path):
    assert tiny_run(tmp_path / "run", "--model", "dcgan", "--model-width", "8", "--steps", "4",
                    "--update-interval", "2", "--grow", "random", "--prunable", "conv", "--batch-size", "8",
                    data=_data(tmp_path)) == 0
    masks = load_file(tmp_path / "run" / "final" / "masks.safetensors")
    assert len(masks) == 8


class _Crash(Exception):
    pass


def test_resume_after_crash_is_bitwise(tmp_path):
    from sparsegan.config import build_config
    from sparsegan.launch import train

    data = write_fake_mnist(tmp_path / "data", n_train=512, n_test=8)
    common = ["--data-root", str(data), "--model", "mlp", "--model-width", "16", "--update-interval", "5",
              "--checkpoint-every", "5", "--batch-size", "16", "--sparsity-g", "0.8", "--log-every", "5",
              "--steps", "20", "--no-progress"]
    assert main(["train", *common, "--out", str(tmp_path / "straight")]) == 0

    def crash(trainer):
        if trainer.step == 13:
            raise _Crash

    cfg = build_config({"data_root": str(data), "model": "mlp", "model_width": 16, "update_interval": 5,
                        "checkpoint_every": 5, "batch_size": 16, "sparsity_g": 0.8, "log_every": 5,
                        "steps": 20, "out": str(tmp_path / "split")})
    with pytest.raises(_Crash):
        train(cfg, progress=False, on_step=crash)
    assert main(["train", *common, "--out", str(tmp_path / "split"), "--resume", "auto"]) == 0
    for f in ("generator", "generator_ema", "discriminator", "masks"):
        a = load_file(tmp_path / "straight" / "final" / f"{f}.safetensors")
        b = load_file(tmp_path / "split" / "final" / f"{f}.safetensors")
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), f
    assert [r["step"] for r in read_records(tmp_path / "split", "resume")] == [10]
    # Records after the checkpoint were dropped and written again: no duplicates.
    steps = [r["step"] for r in read_records(tmp_path / "split", "train")]
    assert steps == [5, 10, 15, 20]


def test_refuses_other_run_folder(tiny_run, tmp_path, capsys):
    assert tiny_run(tmp_path / "run", "--model", "mlp", "--model-width", "8", "--steps", "2", data=_data(tmp_path)) == 0
    before = (tmp_path / "run" / "metrics.jsonl").read_text()
    assert tiny_run(tmp_path / "run", "--model", "mlp", "--model-width", "8", "--steps", "2", data=_data(tmp_path)) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (tmp_path / "run" / "metrics.jsonl").read_text() == before


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--sparsity-g", "1.0"], "sparsity-g"),
        (["--sparsity-d", "-0.1"], "sparsity-d"),
        (["--method", "nope"], "unknown method 'nope'"),
        (["--model", "nope"], "dcgan, mlp"),
        (["--dataset", "nope"], "fashion-mnist"),
        (["--distribution", "nope"], "valid: er, erk, uniform"),
        (["--steps", "0"], "steps"),
        (["--steps", "-3"], "steps"),
        (["--steps", "many"], "expected int"),
        (["--grow", "nope"], "valid: gradient"),
    ],
)
def test_bad_input_one_line(tiny_run, tmp_path, capsys, args, needle):
    rc = tiny_run(tmp_path / "run", *args)
    err = capsys.readouterr().err.strip()
    assert rc != 0
    assert len(err.splitlines()) == 1 and needle in err and "Traceback" not in err


def test_missing_data_root(tmp_path, capsys):
    rc = main(["train", "--data-root", str(tmp_path / "nothing"), "--out", str(tmp_path / "r"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "not found" in err


def test_yaml_config_strict(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps: 10\nsparsity_gg: 0.5\n")
    assert main(["train", "--config", str(bad), "--dry-run"]) == 2
    assert "sparsity_gg" in capsys.readouterr().err
    bad.write_text("steps: ten\n")
    assert main(["train", "--config", str(bad), "--dry-run"]) == 2
    assert "'steps' must be int" in capsys.readouterr().err
    good = tmp_path / "good.yaml"
    good.write_text("steps: 10\nsparsity_g: 0.7\n")
    data = write_fake_mnist(tmp_path / "data", n_train=16, n_test=4)
    assert main(["train", "--config", str(good), "--steps", "12", "--data-root", str(data), "--dry-run"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["steps"] == 12 and out["sparsity_g"] == 0.7


def test_dry_run_checks_the_device_and_the_data(tmp_path, capsys):
    data = write_fake_mnist(tmp_path / "data", n_train=16, n_test=4)
    assert main(["train", "--data-root", str(data), "--device", "auto", "--dry-run"]) == 0
    err = capsys.readouterr().err
    assert "device cpu (from auto)" in err and "data fashion-mnist train split: 16 images, 1 channel(s)" in err
    assert main(["train", "--data-root", str(tmp_path / "nowhere"), "--dry-run"]) == 2
    assert len([ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]) == 1
    if not __import__("torch").cuda.is_available():
        assert main(["train", "--data-root", str(data), "--device", "cuda", "--dry-run"]) == 2
        assert "no usable CUDA device" in capsys.readouterr().err


def test_the_progress_bar_says_when_it_evaluates(tmp_path, capsys):
    """An evaluation (thousands of samples) or a diffusion grid can take minutes: the bar names it rather
    than standing still at the step it reached."""
    data = write_fake_mnist(tmp_path / "data", n_train=32, n_test=8)
    assert main(["train", "--out", str(tmp_path / "r"), "--data-root", str(data), "--model", "mlp", "--method",
                 "static", "--steps", "2", "--batch-size", "8", "--eval-every", "2", "--eval-metrics", "fid_domain",
                 "--eval-num-samples", "16", "--eval-num-ref", "16"]) == 0
    err = capsys.readouterr().err
    assert "sample grid" in err and "evaluating" in err
