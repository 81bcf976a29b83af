"""Gradient accumulation (--grad-accum K): K micro-batches give the update of one batch K times as
large (nets without batch statistics), dense gradients for regrowth come from the whole batch, and
gradients are averaged across processes once per optimizer step."""

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from idx_files import write_fake_mnist
from sparsegan.cli import main
from sparsegan.data.unpaired import write_fashion_pair
from sparsegan.models import MODEL_KIND, MODELS, NATIVE_RESOLUTION, ModelSpec, build_models, register_model
from sparsegan.models.base import Discriminator, Generator
from sparsegan.training import read_records


class _G(Generator):
    def __init__(self, z_dim):
        super().__init__()
        self.z_dim, self.num_classes, self.channels, self.resolution = z_dim, 0, 1, 28
        self.net = nn.Sequential(nn.Linear(z_dim, 32), nn.ReLU(), nn.Linear(32, 28 * 28), nn.Tanh())

    def forward(self, z, y=None):
        return self.net(z).view(-1, 1, 28, 28)


class _D(Discriminator):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 32), nn.LeakyReLU(0.2), nn.Linear(32, 1))

    def forward(self, x, y=None):
        return self.net(x).flatten()


@pytest.fixture
def no_bn_gan():
    """A GAN without batch statistics, registered for the test only."""
    register_model("nobn-test", native_resolution=28)(lambda spec: (_G(spec.z_dim), _D()))
    yield "nobn-test"
    for table in (MODELS._items, NATIVE_RESOLUTION, MODEL_KIND):
        table.pop("nobn-test", None)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_fake_mnist(tmp_path_factory.mktemp("data"), n_train=128, n_test=8)


def _weights(run, name):
    return load_file(run / "final" / f"{name}.safetensors")


def _close(a, b, net, skip=()):
    x, y = _weights(a, net), _weights(b, net)
    assert x.keys() == y.keys()
    for k in x:
        if k in skip:
            continue
        assert torch.allclose(x[k], y[k], atol=2e-5, rtol=1e-4), (net, k, float((x[k] - y[k]).abs().max()))


@pytest.mark.parametrize("method", ["dense", "stu"])
def test_k_micro_batches_update_as_one_batch(no_bn_gan, data, tmp_path, method):
    common = ["train", "--data-root", str(data), "--model", no_bn_gan, "--z-dim", "8", "--batch-size", "16",
              "--n-dis", "2", "--steps", "6", "--update-interval", "2", "--log-every", "2", "--no-progress",
              "--method", method, "--sparsity-g", "0.5", "--sparsity-d", "0.5", "--allow-ignored"]
    assert main([*common, "--out", str(tmp_path / "one")]) == 0
    assert main([*common, "--out", str(tmp_path / "acc"), "--grad-accum", "4"]) == 0
    _close(tmp_path / "one", tmp_path / "acc", "generator")
    _close(tmp_path / "one", tmp_path / "acc", "discriminator")
    # Regrowth by the dense gradient of the whole accumulated batch: the same connections.
    masks_one, masks_acc = _weights(tmp_path / "one", "masks"), _weights(tmp_path / "acc", "masks")
    assert all(torch.equal(masks_one[k], masks_acc[k]) for k in masks_one)
    if method == "stu":
        assert [r["grown"] for r in read_records(tmp_path / "acc", "topology")] == \
            [r["grown"] for r in read_records(tmp_path / "one", "topology")]
    # The logged losses are the whole batch's.
    for a, b in zip(read_records(tmp_path / "one", "train"), read_records(tmp_path / "acc", "train")):
        assert a["loss_d"] == pytest.approx(b["loss_d"], rel=1e-4, abs=1e-6)


def test_translation_accumulates_too(tmp_path):
    fm = write_fake_mnist(tmp_path / "fm", n_train=120, n_test=40)
    write_fashion_pair(tmp_path / "pair", "sneaker", "ankle-boot", data_root=fm)
    common = ["train", "--model", "cyclegan", "--dataset", "unpaired", "--data-root", str(tmp_path / "pair"),
              "--model-width", "4", "--batch-size", "4", "--steps", "3", "--method", "static", "--sparsity-g", "0.5",
              "--no-progress"]
    assert main([*common, "--out", str(tmp_path / "one")]) == 0  # instance norm: no batch statistics
    assert main([*common, "--out", str(tmp_path / "acc"), "--grad-accum", "2"]) == 0
    # A conv bias right before an instance norm has a zero gradient up to rounding, which Adam scales
    # to full lr-sized steps of random sign: those biases are not comparable between any two runs.
    g, d = build_models("cyclegan", ModelSpec(channels=1, resolution=28, width=4))
    for net, module in (("generator", g), ("discriminator", d)):
        before_norm = {f"{name}.{i}.bias" for name, seq in module.named_modules() if isinstance(seq, nn.Sequential)
                       for i, (m, after) in enumerate(zip(seq, list(seq)[1:]))
                       if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) and isinstance(after, nn.InstanceNorm2d)}
        assert before_norm
        _close(tmp_path / "one", tmp_path / "acc", net, skip=before_norm)


def test_gradients_are_averaged_across_ranks_once_per_step(monkeypatch):
    from sparsegan.training import distributed

    calls = []
    monkeypatch.setattr(distributed.dist, "all_reduce", lambda g, op=None: calls.append(g.shape))
    ctx = distributed.DistContext(rank=0, world_size=2)
    net = nn.Linear(3, 2)
    ctx.average_gradients(net)
    x = torch.randn(8, 3)
    for i, chunk in enumerate(x.chunk(4)):
        with ctx.micro_batch(last=i == 3):
            net(chunk).sum().backward()
    assert len(calls) == 2  # weight and bias, once, after the last micro-batch
    assert torch.allclose(net.bias.grad, torch.full((2,), 8.0) / 2)  # the accumulated sum, averaged over 2
    net(x).sum().backward()  # outside accumulation every backward synchronises
    assert len(calls) == 4


def test_batch_must_divide_into_micro_batches(data, tmp_path, capsys):
    assert main(["train", "--data-root", str(data), "--model", "mlp", "--batch-size", "10", "--grad-accum", "4",
                 "--steps", "2", "--out", str(tmp_path / "r"), "--no-progress"]) == 2
    assert "not divisible into --grad-accum 4 micro-batches" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
