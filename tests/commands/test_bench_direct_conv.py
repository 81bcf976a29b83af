"""`sparsegan bench` runs a diffusion U-Net's convolutions on the direct sparse kernel (no im2col) when
told to, and in auto mode times it against the other kernels: the sparse samples equal the dense
masked model's."""

import ast
import re

import pytest

from idx_files import write_fake_mnist
from sparsegan.cli import main
from sparsegan.inference import simd_kernel

pytestmark = pytest.mark.skipif(not simd_kernel.available(),
                                reason="the AVX2 extension is not built here or the CPU lacks AVX2/FMA")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    data = write_fake_mnist(tmp_path_factory.mktemp("data"), n_train=32, n_test=8)
    out = tmp_path_factory.mktemp("runs") / "unet"
    assert main(["train", "--out", str(out), "--data-root", str(data), "--no-progress", "--model", "unet",
                 "--model-width", "8", "--batch-size", "8", "--sparse-compute", "off", "--method", "static",
                 "--sparsity-g", "0.9", "--steps", "2", "--sample-steps", "2", "--num-sample-images", "4",
                 "--sample-every", "1000", "--checkpoint-every", "1000"]) == 0
    return out


def _bench(run, capsys, *extra):
    capsys.readouterr()
    assert main(["bench", str(run), "--batch-sizes", "1,3", "--repeats", "1", "--warmup", "1", "--threads", "1",
                 "--no-plan-cache", "--verbose", *extra]) == 0
    out = capsys.readouterr().out
    diff = float(re.search(r"max \|dense - sparse\| = (\S+)", out).group(1))
    kernels = dict(re.findall(r"^  (\S+): density .*kernel (\{.*\})$", out, re.M))
    return diff, kernels


def test_forced_direct_kernel_samples_the_dense_models_images(run, capsys):
    diff, kernels = _bench(run, capsys, "--mode", "direct")
    assert diff < 1e-4
    convs = [name for name in kernels if "conv" in name]  # conv_in, conv1 / conv2 of every block, conv_out
    assert len(convs) >= 10
    for name in convs:
        assert set(ast.literal_eval(kernels[name]).values()) == {"direct"}, name


def test_auto_mode_keeps_the_samples(run, capsys):
    diff, kernels = _bench(run, capsys)
    assert diff < 1e-4 and kernels
