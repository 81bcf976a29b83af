"""`sparsegan sample`: images from a run folder or an export file, on the sparse runtime or dense,
through the real entry point. The two runtimes draw the same images (to uint8 rounding), the seed
and not the batch size decides them, and every refusal is one line that leaves files alone."""

import re

import numpy as np
import pytest
from PIL import Image

from idx_files import write_fake_mnist
from run_checks import one_error_line
from sparsegan.cli import main
from sparsegan.commands import arg_types
from sparsegan.models import ddpm

TINY = ["--no-progress", "--model-width", "8", "--batch-size", "8", "--sparse-compute", "off",
        "--num-sample-images", "4", "--sample-every", "1000", "--checkpoint-every", "1000"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_fake_mnist(tmp_path_factory.mktemp("data"), n_train=32, n_test=8)


@pytest.fixture(scope="module")
def unet(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "dm"
    assert main(["train", "--out", str(out), "--data-root", str(data), *TINY, "--model", "unet", "--method", "stu",
                 "--sparsity-g", "0.9", "--update-interval", "2", "--steps", "4", "--sample-steps", "2"]) == 0
    return out


def _sample(source, out, capsys, *extra) -> tuple[np.ndarray, str]:
    capsys.readouterr()
    assert main(["sample", str(source), "--out", str(out), "--no-plan-cache", *extra]) == 0
    printed = capsys.readouterr().out
    return np.load(out)["arr_0"] if out.suffix == ".npz" else np.asarray(Image.open(out)), printed


def test_sparse_and_dense_runtimes_draw_the_same_images(unet, tmp_path, capsys):
    sparse, printed = _sample(unet, tmp_path / "s.npz", capsys, "--num-images", "5", "--batch-size", "2")
    dense, _ = _sample(unet, tmp_path / "d.npz", capsys, "--num-images", "5", "--runtime", "dense")
    assert sparse.shape == (5, 32, 32, 1) and sparse.dtype == np.uint8
    assert np.abs(sparse.astype(int) - dense.astype(int)).max() <= 1  # float rounding, then to uint8
    assert sparse.std() > 0  # images, not a constant
    assert "5 images of run dm (ema), model unet, G density 0.1000, sparse runtime, NFE 2" in printed
    assert re.search(r"[\d.]+ images/s \(kernels chosen first in [\d.]+ s\)", printed)


def test_the_seed_decides_the_images_not_the_batch_size(unet, tmp_path, capsys):
    a, _ = _sample(unet, tmp_path / "a.npz", capsys, "--num-images", "3", "--batch-size", "1", "--runtime", "dense")
    b, _ = _sample(unet, tmp_path / "b.npz", capsys, "--num-images", "3", "--batch-size", "3", "--runtime", "dense")
    c, _ = _sample(unet, tmp_path / "c.npz", capsys, "--num-images", "3", "--seed", "1", "--runtime", "dense")
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
    assert np.abs(a.astype(int) - c.astype(int)).max() > 10


def test_an_export_file_draws_its_runs_images_and_nfe_is_a_flag(unet, tmp_path, capsys):
    path = tmp_path / "dm.csr.safetensors"
    assert main(["export", str(unet), "--out", str(path)]) == 0
    from_run, _ = _sample(unet, tmp_path / "r.npz", capsys, "--num-images", "2", "--runtime", "dense")
    from_export, printed = _sample(path, tmp_path / "e.npz", capsys, "--num-images", "2")
    assert np.abs(from_run.astype(int) - from_export.astype(int)).max() <= 1
    assert "export dm.csr.safetensors" in printed
    three, printed = _sample(path, tmp_path / "e3.npz", capsys, "--num-images", "2", "--sample-steps", "3")
    assert "NFE 3" in printed and np.abs(three.astype(int) - from_export.astype(int)).max() > 0


def test_a_png_grid_of_the_images(unet, tmp_path, capsys):
    grid, _ = _sample(unet, tmp_path / "grid.png", capsys, "--num-images", "6", "--nrow", "3")
    assert grid.shape == (2 + 2 * 34, 2 + 3 * 34)  # 2 rows of 3 32-px images, 2 px between (grayscale)


def test_a_gan_generator_draws_too(data, tmp_path, capsys):
    gan = tmp_path / "gan"
    assert main(["train", "--out", str(gan), "--data-root", str(data), *TINY, "--model", "dcgan", "--method",
                 "static", "--sparsity-g", "0.9", "--steps", "1"]) == 0
    images, printed = _sample(gan, tmp_path / "g.npz", capsys, "--num-images", "4")
    assert images.shape[0] == 4 and "model dcgan" in printed and "NFE" not in printed
    capsys.readouterr()
    assert main(["sample", str(gan), "--out", str(tmp_path / "x.npz"), "--sample-steps", "5"]) == 2
    assert "--sample-steps applies to diffusion models" in one_error_line(capsys)


def test_refusals_are_one_line_and_keep_what_exists(unet, tmp_path, capsys):
    out = tmp_path / "kept.png"
    out.write_bytes(b"mine")
    capsys.readouterr()
    assert main(["sample", str(unet), "--out", str(out)]) == 2
    assert "exists; pass --overwrite" in one_error_line(capsys) and out.read_bytes() == b"mine"
    assert main(["sample", str(unet), "--out", str(tmp_path / "x.jpg")]) == 2
    assert "must end in .png" in one_error_line(capsys)
    assert main(["sample", str(unet), "--out", str(tmp_path / "no" / "x.png")]) == 2
    assert "does not exist" in one_error_line(capsys)
    assert main(["sample", str(unet), "--num-images", "0"]) == 2
    assert "must be positive" in one_error_line(capsys)
    assert main(["sample", str(unet), "--sample-steps", "1001"]) == 2
    assert "1..1000" in one_error_line(capsys)
    _, printed = _sample(unet, out, capsys, "--num-images", "1", "--overwrite")
    assert Image.open(out).size == (36, 36)


def test_the_commands_t_is_the_models():
    assert arg_types.TIMESTEPS == ddpm.TIMESTEPS
