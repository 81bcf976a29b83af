"""The paper models through the real loop: class labels flowing to G and D, CIFAR-10 and image
folders, and the device options' CPU paths (bf16 autocast, channels-last, torch.compile)."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from cifar_files import write_cifar
from run_checks import assert_inactive_zero
from sparsegan.training import read_records

TINY_FLAGS = ["--log-every", "1"]


def test_biggan32_conditional_stu_bf16_channels_last(tiny_run, tmp_path):
    root, _ = write_cifar(tmp_path / "data", n_per_batch=8)
    assert tiny_run(tmp_path / "run", "--dataset", "cifar10", "--model", "biggan32", "--model-width", "4",
                    "--method", "stu", "--steps", "3", "--update-interval", "2", "--batch-size", "8",
                    "--g-batch-size", "4", "--n-dis", "2", "--precision", "bf16", "--channels-last",
                    "--sample-every", "3", "--num-sample-images", "10", data=root) == 0
    run = tmp_path / "run"
    rec = read_records(run, "train")
    assert len(rec) == 3 and all(np.isfinite(r["loss_d"]) for r in rec)
    assert [r["step"] for r in read_records(run, "topology") if r["net"] == "G"] == [2]
    assert_inactive_zero(run)
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["precision"] == "bf16" and cfg["channels_last"] is True
    assert (run / "samples" / "step-00000003.png").exists()
    # The EMA generator is class-conditional: 10 classes -> per-layer class embeddings.
    ema = load_file(run / "final" / "generator_ema.safetensors")
    assert ema["blocks.0.norm1.gain.weight"].shape == (10, 16)


def test_latents_and_labels_shard_like_one_process():
    from sparsegan.data import EpochSampler
    from sparsegan.training.batches import Batches, fixed_labels
    from sparsegan.training.distributed import DistContext

    class G:
        num_classes, z_dim = 10, 3

        def sample_z(self, n, gen):
            return torch.randn(n, 3, generator=gen)

    def batches(rank, world):
        return Batches(None, EpochSampler(8, 4, 0), resolution=32, device=torch.device("cpu"),
                       dist=DistContext(rank=rank, world_size=world), noise=torch.Generator().manual_seed(5), G=G())

    z, y = batches(0, 1).latents(6)
    z0, y0 = batches(0, 2).latents(6)
    z1, y1 = batches(1, 2).latents(6)
    assert torch.equal(torch.cat([z0, z1])[[0, 3, 1, 4, 2, 5]], z)
    assert torch.equal(torch.stack([y0, y1], 1).reshape(-1), y) and y.max() < 10
    assert fixed_labels(12, 10, "cpu").tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    assert fixed_labels(4, 0, "cpu") is None


def test_sngan32_on_an_image_folder_with_workers(tiny_run, tmp_path):
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (tmp_path / "imgs" / c).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)).save(tmp_path / "imgs" / c / f"{i}.jpg")
    assert tiny_run(tmp_path / "run", "--dataset", "image-folder", "--model", "sngan32", "--model-width", "8",
                    "--method", "static", "--steps", "2", "--batch-size", "4", "--data-workers", "2",
                    "--sparsity-g", "0.8", data=tmp_path / "imgs") == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert_inactive_zero(tmp_path / "run")


def test_cuda_refused_cleanly_without_a_gpu(tiny_run, tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    root, _ = write_cifar(tmp_path / "data", n_per_batch=2)
    rc = tiny_run(tmp_path / "run", "--dataset", "cifar10", "--model", "sngan32", "--device", "cuda", data=root)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "--device cuda" in err


@pytest.mark.slow
def test_compile_on_cpu(tiny_run, tmp_path):
    root, _ = write_cifar(tmp_path / "data", n_per_batch=4)
    assert tiny_run(tmp_path / "run", "--dataset", "cifar10", "--model", "dcgan", "--model-width", "4",
                    "--method", "stu", "--steps", "2", "--update-interval", "1", "--batch-size", "4", "--compile",
                    data=root) == 0
    assert_inactive_zero(tmp_path / "run")
