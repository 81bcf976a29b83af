"""cifar10 from pickle batches in the real format, and image folders, written by the tests."""

import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from cifar_files import write_cifar
from sparsegan.data import EpochSampler, load_dataset
from sparsegan.errors import UserError


def test_cifar10_loads_real_format(tmp_path):
    root, batches = write_cifar(tmp_path)
    train = load_dataset("cifar10", "train", str(root))
    assert train.images.shape == (30, 3, 32, 32) and train.images.dtype == torch.uint8
    assert train.num_classes == 10 and train.channels == 3
    data, labels = batches["data_batch_2"]
    # Row layout: 1024 red values, then green, then blue, each row-major 32x32.
    img = train.images[6 + 1]
    assert img[0, 0, 5] == data[1, 5] and img[1, 0, 0] == data[1, 1024] and img[2, 31, 31] == data[1, 3071]
    assert train.labels[6:12].tolist() == labels
    test = load_dataset("cifar10", "test", str(root / "cifar-10-batches-py"))  # the folder itself works too
    assert len(test) == 6


def test_cifar10_refuses_code_and_missing_files(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_dataset("cifar10", "train", str(tmp_path))
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with open(folder / "data_batch_1", "wb") as f:
        pickle.dump({b"data": Evil(), b"labels": []}, f)
    with pytest.raises(UserError, match="refusing"):
        load_dataset("cifar10", "train", str(tmp_path))


def _write_folder(root, classes=("cat", "dog"), n=3, size=(40, 24)):
    for k, c in enumerate(classes):
        (root / c).mkdir(parents=True)
        for i in range(n):
            arr = np.full((size[1], size[0], 3), 40 * k + i, dtype=np.uint8)
            arr[:, : size[0] // 2, 0] = 255  # left half red: the crop keeps the center
            Image.fromarray(arr).save(root / c / f"{i}.png")
    return root


def test_image_folder_labels_resize_and_crop(tmp_path):
    root = _write_folder(tmp_path / "imgs")
    data = load_dataset("image-folder", "train", str(root), resolution=16)
    assert len(data) == 6 and data.num_classes == 2 and data.classes == ("cat", "dog")
    x, y = data.batch(torch.tensor([0, 4]))
    assert x.shape == (2, 3, 16, 16) and x.dtype == torch.uint8
    assert y.tolist() == [0, 1]
    # 40x24 -> shorter side 16 (27x16), center crop 16 wide: left half red, right half not.
    assert x[0, 0, 8, 0] == 255 and x[0, 0, 8, 15] == 0
    with pytest.raises(UserError, match="only a train split"):
        load_dataset("image-folder", "test", str(root), resolution=16)


def test_image_folder_decodes_in_workers_with_exact_resume(tmp_path):
    from sparsegan.training.batches import Batches
    from sparsegan.training.distributed import DistContext

    root = _write_folder(tmp_path / "imgs", n=5)
    data = load_dataset("image-folder", "train", str(root), resolution=8)

    class _G:
        num_classes, z_dim = 0, 4

        def sample_z(self, n, gen):
            return torch.randn(n, 4, generator=gen)

    def make():
        return Batches(data, EpochSampler(len(data), 4, seed=3), resolution=8, device=torch.device("cpu"),
                       dist=DistContext(), noise=torch.Generator().manual_seed(0), G=_G(), workers=2)

    straight = make()
    ref = [straight.real() for _ in range(7)]
    first = make()
    for _ in range(3):
        first.real()
    state = first.state_dict()  # the workers have prefetched further; the state has not moved
    assert state == EpochSampler(len(data), 4, seed=3).state_dict() | {"pos": 2, "epoch": 1}
    resumed = make()
    resumed.load_state_dict(state)
    for i in range(3, 7):
        x, y = resumed.real()
        assert torch.equal(x, ref[i][0]) and torch.equal(y, ref[i][1])
