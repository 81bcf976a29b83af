"""Diffusion models trained sparse through the CLI, one tiny U-Net run per method: the denoiser is
the engine's one net (G), D does not exist (its options are refused in one line), every method
reaches its target with inactive weights exactly 0 in the denoiser and its sparse EMA, and a
resumed run is bitwise the uninterrupted one."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from idx_files import write_fake_mnist
from run_checks import one_error_line
from sparsegan.training import read_records

TINY_FLAGS = ["--model", "unet", "--model-width", "8", "--batch-size", "8", "--sample-steps", "2",
              "--num-sample-images", "4", "--log-every", "1", "--sparse-compute", "off"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_fake_mnist(tmp_path_factory.mktemp("data"), n_train=64, n_test=8)


def _summary(run):
    return json.loads((run / "summary.json").read_text())


def _check(run, sparsity, samples=True):
    """G at its target (to one weight), no D anywhere, inactive weights 0 in G and its EMA."""
    s = _summary(run)
    assert s["status"] == "completed" and set(s["params"]) == set(s["density"]) == {"G"}
    n = s["params"]["G"]["prunable"]
    assert abs(s["density"]["G"] * n - (1 - sparsity) * n) <= 1
    assert {p.name for p in (run / "final").iterdir()} == {"generator.safetensors", "generator_ema.safetensors",
                                                             "masks.safetensors"}
    masks = load_file(run / "final" / "masks.safetensors")
    assert masks and all(k.startswith("G.denoiser.") for k in masks)
    for f in ("generator", "generator_ema"):
        w = load_file(run / "final" / f"{f}.safetensors")
        for key, m in masks.items():
            assert not w[key[2:]][~m.bool()].any(), (f, key)
    assert all("lr_d" not in r and "loss_g" in r for r in read_records(run, "train"))
    assert json.loads((run / "config.json").read_text())["nets"] == ["G"]
    if samples:  # the EMA denoiser's DDIM samples (an IMP run's are in its rounds' folders)
        assert sorted(p.name for p in (run / "samples").iterdir())
    return s


@pytest.mark.parametrize("method,flags", [
    ("dense", []),
    ("static", ["--sparsity-g", "0.8"]),
    ("stu", ["--sparsity-g", "0.8", "--update-interval", "2"]),  # RigL-DM: gradient regrowth
    ("stu", ["--sparsity-g", "0.8", "--update-interval", "2", "--grow", "random"]),  # SET / MagRan-DM
    ("gmp", ["--sparsity-g", "0.8", "--gmp-prunes", "2"]),
    ("snip", ["--sparsity-g", "0.8"]),
    ("grasp", ["--sparsity-g", "0.8"]),
    ("early_bird", ["--sparsity-g", "0.8", "--eb-interval", "2", "--eb-threshold", "0.0", "--eb-max-steps", "4"]),
], ids=["dense", "static", "stu-rigl", "stu-random", "gmp", "snip", "grasp", "early_bird"])
def test_every_method_trains_the_denoiser(tiny_run, tmp_path, data, method, flags):
    run = tmp_path / "r"
    assert tiny_run(run, "--method", method, "--steps", "6", *flags, data=data) == 0
    s = _check(run, 0.0 if method == "dense" else 0.8)
    topo = read_records(run, "topology")
    assert all(r["net"] == "G" for r in topo)
    if method == "stu":  # prune and regrow exchanged weights: G explored beyond its density
        assert any(r["grown"] > 0 for r in topo) and s["itop_rate"]["G"] > s["density"]["G"]
    if method == "gmp":  # pruned in steps from dense to the target
        assert len({round(r["density"], 4) for r in topo}) >= 2
    if method in ("snip", "grasp"):  # scored by the denoiser's loss on probe batches
        assert any(p["phase"] == "probe" for p in s["phases"])
    if method == "early_bird":
        assert read_records(run, "early_bird_check")
    flops = s["flops"]
    assert flops["train"]["kind"] == "diffusion" and set(flops["inference_per_sample"]) == {"G"}
    assert flops["sampling_per_image"]["nfe"] == 2
    assert flops["sampling_per_image"]["sparse"] == pytest.approx(2 * flops["inference_per_sample"]["G"]["sparse"])


IMP = ["--method", "imp", "--sparsity-g", "0.36", "--steps", "3", "--rewind-step", "1"]  # rounds at 80 %, 64 %


@pytest.fixture(scope="module")
def imp_run(tiny_run, data, tmp_path_factory):
    run = tmp_path_factory.mktemp("imp") / "imp"
    assert tiny_run(run, *IMP, data=data) == 0
    return run


def test_imp_rounds_rewind_the_denoiser(imp_run):
    rounds = read_records(imp_run, "round")
    assert [r["round"] for r in rounds] == [0, 1, 2] and all(set(r["density"]) == {"G"} for r in rounds)
    assert (imp_run / "rewind" / "rewind-generator.safetensors").is_file()
    assert not list((imp_run / "rewind").glob("*discriminator*"))
    _check(imp_run, 0.36, samples=False)
    ticket = load_file(imp_run / "tickets" / "round-02" / "final" / "masks.safetensors")
    assert ticket and all(k.startswith("G.") for k in ticket)


@pytest.mark.slow
@pytest.mark.parametrize("control", ["reinit", "random"])
def test_imp_controls(tiny_run, tmp_path, data, imp_run, control):
    ctl = tmp_path / control
    assert tiny_run(ctl, *IMP, "--imp-control", control, "--tickets-from", str(imp_run), data=data) == 0
    _check(ctl, 0.36, samples=False)
    ticket = load_file(imp_run / "tickets" / "round-02" / "final" / "masks.safetensors")
    got = load_file(ctl / "tickets" / "round-02" / "final" / "masks.safetensors")
    same = all(torch.equal(got[k], ticket[k]) for k in ticket)
    assert same == (control == "reinit")  # reinit: the ticket's masks, fresh weights; random: new masks


@pytest.mark.parametrize("sparse_compute", ["off", "on"])  # on: the direct kernels the study trains on
def test_resume_is_bitwise(tiny_run, tmp_path, data, sparse_compute):
    flags = ["--method", "stu", "--sparsity-g", "0.8", "--update-interval", "2", "--steps", "6",
             "--checkpoint-every", "3", "--sparse-compute", sparse_compute]
    straight = tmp_path / "straight"
    assert tiny_run(straight, *flags, data=data) == 0
    # the same run stopped after its step-3 checkpoint: its later files gone, then resumed
    stopped = tmp_path / "stopped"
    shutil.copytree(straight, stopped)
    (stopped / "checkpoints" / "state-00000006.pt").unlink()
    shutil.rmtree(stopped / "final")
    (stopped / "summary.json").unlink()
    assert tiny_run(stopped, *flags, "--resume", "auto", data=data) == 0
    assert [r["step"] for r in read_records(stopped, "resume")] == [3]
    for f in ("generator", "generator_ema", "masks"):
        a, b = load_file(straight / "final" / f"{f}.safetensors"), load_file(stopped / "final" / f"{f}.safetensors")
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), f
    losses = [[r["loss_g"] for r in read_records(run, "train")] for run in (straight, stopped)]
    assert losses[0] == losses[1]


@pytest.mark.parametrize("flags,needle", [
    (["--sparsity-d", "0.5"], "--sparsity-d 0.5 has no effect with --model unet: it trains one net"),
    (["--lr-d", "1e-3"], "--lr-d"),
    (["--method", "stu", "--explore", "GD"], "--explore GD names D"),
    (["--method", "adapt"], "--method adapt applies to noise-to-image GANs"),
    (["--sample-steps", "0"], "--sample-steps must be in 1..1000"),
    (["--z-dim", "64"], "--z-dim 64 has no effect with --model unet"),
])
def test_options_a_denoiser_cannot_take_are_refused(tiny_run, tmp_path, data, capsys, flags, needle):
    assert tiny_run(tmp_path / "r", "--steps", "2", *flags, data=data) == 2
    assert needle in one_error_line(capsys)
    assert not (tmp_path / "r").exists()


def test_gradient_accumulation_matches_the_whole_batch(tiny_run, tmp_path, data):
    # GroupNorm normalises each image alone, so k micro-batches' summed gradients are the whole batch's:
    # the same noise and steps for each image, the same losses at every step to float rounding.
    flags = ["--method", "static", "--sparsity-g", "0.8", "--steps", "3"]
    assert tiny_run(tmp_path / "one", *flags, data=data) == 0
    assert tiny_run(tmp_path / "two", *flags, "--grad-accum", "2", data=data) == 0
    losses = [[r["loss_g"] for r in read_records(tmp_path / run, "train")] for run in ("one", "two")]
    assert len(losses[0]) == 3 and losses[0] == pytest.approx(losses[1], rel=1e-5)
    # Adam's first steps move a weight by about lr whatever its gradient's size, so where a gradient is
    # near 0 its rounding shows up to ~lr (2e-4) in the weights; nowhere more.
    a, b = (load_file(tmp_path / run / "final" / "generator.safetensors") for run in ("one", "two"))
    assert all(torch.allclose(a[k], b[k], atol=1e-3) for k in a)
