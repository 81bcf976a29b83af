"""Datasets by name. Each loads to uint8 images [N, C, H, W] in memory or serves batches."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from sparsegan.data.cifar import load_cifar10
from sparsegan.data.folder import FolderData, load_image_folder
from sparsegan.data.idx import IdxSource, load_idx_split
from sparsegan.data.image_data import ImageData
from sparsegan.registry import Registry

SPLITS = ("train", "test")


DATASETS: Registry[Callable[..., ImageData]] = Registry("dataset")

FASHION_MNIST = IdxSource(
    name="fashion-mnist",
    files={
        "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
        "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
    },
    debian_dir="/usr/share/datasets/fashion-mnist",
    debian_package="dataset-fashion-mnist",
    mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    md5={
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
)

MNIST = IdxSource(
    name="mnist",
    files=FASHION_MNIST.files,
    debian_dir=None,
    debian_package=None,
    mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/",),
    md5={
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
)


def _idx_loader(source: IdxSource) -> Callable[..., ImageData]:
    def load(split: str = "train", data_root=None, **_) -> ImageData:
        images, labels = load_idx_split(source, split, data_root)
        return ImageData(source.name, split, images, labels, num_classes=10)

    return load


DATASETS.register("fashion-mnist")(_idx_loader(FASHION_MNIST))
DATASETS.register("mnist")(_idx_loader(MNIST))
DATASETS.register("cifar10")(load_cifar10)
DATASETS.register("image-folder")(load_image_folder)


def load_dataset(name: str, split: str = "train", data_root=None,
                 resolution: int | None = None) -> ImageData | FolderData:
    """A split by name; ``resolution`` is the decode size of lazily decoded sets (image-folder)."""
    from sparsegan.errors import UserError

    loader = DATASETS.get(name)
    splits = getattr(loader, "splits", SPLITS)  # a loader with splits of its own (unpaired: one per domain)
    if split not in splits:
        raise UserError(f"unknown split {split!r}; valid: {', '.join(splits)}")
    return loader(split=split, data_root=data_root, resolution=resolution)


def to_model_range(images: Tensor, resolution: int) -> Tensor:
    """uint8 [N, C, h, w] -> float [-1, 1] at ``resolution``; 28x28 is zero-padded (as -1) to
    32x32 for the conv models, larger images are resized."""
    x = images.float().div_(127.5).sub_(1.0)
    h = x.shape[-1]
    if h == resolution:
        return x
    if h < resolution and (resolution - h) % 2 == 0:
        pad = (resolution - h) // 2
        return F.pad(x, (pad, pad, pad, pad), value=-1.0)
    return F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False, antialias=True)


def to_uint8(x: Tensor) -> Tensor:
    """float [-1, 1] -> uint8 [0, 255] (the inverse of :func:`to_model_range`)."""
    return x.detach().add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8)
