"""An autoencoder's held-out reconstruction error (--eval-metrics recon): the math on hand-checkable
inputs, and the records of a real training run, recomputed from its final weights."""

import json
import math

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from idx_files import write_fake_mnist
from sparsegan.cli import main
from sparsegan.data import load_dataset
from sparsegan.metrics import reconstruction_error
from sparsegan.models import ModelSpec, build_models
from sparsegan.training import read_records


class _Zero(nn.Module):
    """Encoder or decoder that outputs zeros of a fixed shape (VAE-style (mu, logvar) if asked)."""

    def __init__(self, shape, variational=False):
        super().__init__()
        self.shape, self.variational, self.w = shape, variational, nn.Parameter(torch.zeros(()))

    def forward(self, x):
        out = torch.zeros(x.shape[0], *self.shape) + self.w
        return (out, out + 5.0) if self.variational else out


class _Mean(nn.Module):
    """Decoder: every pixel = the mean of the code (so a VAE's logvar, if used, would show)."""

    def forward(self, z):
        return z.mean(dim=1).view(-1, 1, 1, 1).expand(-1, 1, 2, 2)


def test_reconstruction_error_by_hand():
    # Three white 2x2 images (x = 1 in model range) reconstructed as 0: 4 per image; per pixel 1,
    # PSNR = 10 log10(2^2 / 1) = 6.02 dB.
    images = torch.full((3, 1, 2, 2), 255, dtype=torch.uint8)
    out = reconstruction_error(_Zero((8,)), _Zero((1, 2, 2)), images, resolution=2, batch_size=2)
    assert out["recon_mse"] == pytest.approx(4.0)
    assert out["psnr"] == pytest.approx(10 * math.log10(4.0))
    # A VAE reconstructs from the posterior mean (0 here), not from a sample or the logvar (5).
    out = reconstruction_error(_Zero((8,), variational=True), _Mean(), images, resolution=2)
    assert out["recon_mse"] == pytest.approx(4.0)


def test_reconstruction_restores_train_mode():
    enc, dec = _Zero((8,)), _Zero((1, 2, 2))
    enc.train(), dec.eval()
    reconstruction_error(enc, dec, torch.zeros(2, 1, 2, 2, dtype=torch.uint8), resolution=2)
    assert enc.training and not dec.training


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_fake_mnist(tmp_path_factory.mktemp("data"), n_train=128, n_test=24)


TINY_FLAGS = ["--dataset", "fashion-mnist", "--batch-size", "8", "--model-width", "4", "--steps", "8"]


@pytest.mark.parametrize("model", ["ae", "vae"])
def test_recon_during_training_matches_final_weights(tiny_run, tmp_path, data, model):
    run = tmp_path / "r"
    assert tiny_run(run, "--model", model, "--method", "stu", "--sparsity-g", "0.8", "--sparsity-d", "0.5",
                    "--update-interval", "4", "--eval-every", "4", "--eval-metrics", "recon", data=data) == 0
    evals = read_records(run, "eval")
    assert [r["step"] for r in evals] == [4, 8]
    last = evals[-1]
    assert last["split"] == "test" and last["num_samples"] == 24 and last["generator"] == "raw"
    assert last["protocol"] == "@24,split=test,G=raw"
    # The value is the final nets' error on the 24 test images, recomputed here from the saved weights.
    config = json.loads((run / "config.json").read_text())
    G, D = build_models(model, ModelSpec(channels=1, z_dim=config["z_dim"], width=4))
    G.load_state_dict(load_file(run / "final" / "generator.safetensors"))
    D.load_state_dict(load_file(run / "final" / "discriminator.safetensors"))
    test = load_dataset("fashion-mnist", "test", str(data)).images
    again = reconstruction_error(D, G, test, resolution=32)
    assert last["recon_mse"] == pytest.approx(again["recon_mse"], rel=1e-5)
    assert last["psnr"] == pytest.approx(again["psnr"], rel=1e-5)
    # "best" is by recon (lower); the decoder alone is no model of its own: no best generator file.
    metrics = json.loads((run / "summary.json").read_text())["metrics"]
    assert metrics["best"]["by"] == "recon"
    assert metrics["best"]["value"] == min(r["recon_mse"] for r in evals)
    assert "best_generator" not in metrics and not (run / "final" / "generator_ema_best.safetensors").exists()


def test_recon_beside_sample_metrics_keeps_two_protocols(tiny_run, tmp_path, data):
    run = tmp_path / "r"
    assert tiny_run(run, "--model", "vae", "--eval-every", "4", "--eval-metrics", "fid_domain,recon",
                    "--eval-num-samples", "16", data=data) == 0
    evals = read_records(run, "eval")
    assert [(r["step"], r["protocol"]) for r in evals] == [
        (4, "@16"), (4, "@24,split=test,G=raw"), (8, "@16"), (8, "@24,split=test,G=raw")]
    assert all(("fid_domain" in r) != ("recon_mse" in r) for r in evals)  # one protocol per record
    metrics = json.loads((run / "summary.json").read_text())["metrics"]
    assert metrics["best"]["by"] == "fid_domain" and metrics["final"]["protocol"] == "@16"
    assert (run / "final" / "generator_ema_best.safetensors").is_file()


def test_recon_refused_for_a_gan_and_in_eval(tiny_run, tmp_path, data, capsys):
    assert tiny_run(tmp_path / "g", "--model", "dcgan", "--eval-every", "4", "--eval-metrics", "recon", data=data) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "autoencoder" in err[0] and "dcgan" in err[0]
    assert not (tmp_path / "g").exists()
    assert tiny_run(tmp_path / "ae", "--model", "ae", data=data) == 0
    assert main(["eval", str(tmp_path / "ae"), "--metrics", "recon", "--no-progress", "--data-root", str(data)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "during training" in err[0]
    assert not (tmp_path / "ae" / "eval").exists()
