"""Unpaired two-domain images in the CycleGAN layout: ``ROOT/trainA trainB testA testB``.

The two domains need not have the same number of images, nor any correspondence between them:
CycleGAN draws a batch of each independently. Both are decoded once into memory as uint8
tensors at one resolution, so a set needs N x C x H x W bytes of RAM per domain (Fashion-MNIST's
6,000 28x28 gray images of a class: 4.7 MB; 1,000 RGB images at 256 px: 197 MB).

The reference's training transform ("resize to load size, random crop, random flip") is applied
per batch by :func:`augment`, from a seeded generator, so a run is reproducible. :func:`write_fashion_pair`
writes two Fashion-MNIST classes in this layout, a small translation task that trains on a CPU.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from sparsegan.data.datasets import DATASETS, load_dataset
from sparsegan.data.folder import EXTENSIONS, images_under
from sparsegan.data.image_data import ImageData
from sparsegan.errors import UserError

LAYOUT = "the CycleGAN layout is trainA/ trainB/ testA/ testB/"
GRAY_MODES = ("L", "1")  # 8-bit and 1-bit grayscale: a set of only these loads as 1 channel
FASHION_CLASSES = ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
                   "ankle-boot")  # Fashion-MNIST's labels 0..9


@dataclass
class UnpairedData:
    """One split of both domains, in memory: uint8 images [N, C, R, R] (N may differ between a and b)."""

    a: Tensor
    b: Tensor
    root: Path
    split: str
    channels: int
    resolution: int


DOMAIN_SPLITS = ("trainA", "trainB", "testA", "testB")
SOURCE_FILE = "dataset.json"  # written by write_fashion_pair: where the images come from


@DATASETS.register("unpaired")
def load_domain(split: str = "train", data_root=None, resolution: int | None = None, **_) -> ImageData:
    """One domain of an unpaired set as a dataset split ("testB": domain B's test images), e.g. the
    reference images a translation to B is measured against. The training set-up loads both
    domains with :func:`load_unpaired`; "train" / "test" alone are not one set of images."""
    if split not in DOMAIN_SPLITS:
        raise UserError("--dataset unpaired holds two domains (trainA/ trainB/ testA/ testB/): train it with a "
                        f"translation model (--model cyclegan); its splits are {', '.join(DOMAIN_SPLITS)}")
    if data_root is None:
        raise UserError("--dataset unpaired needs --data-root DIR: the folder with trainA/ trainB/ testA/ testB/")
    data = load_unpaired(data_root, split[:-1], resolution=resolution)
    images = data.a if split.endswith("A") else data.b
    return ImageData("unpaired", split, images, torch.zeros(len(images), dtype=torch.long), 0)


load_domain.splits = ("train", "test", *DOMAIN_SPLITS)  # train / test: refused with the layout explained


def source_dataset(root) -> str | None:
    """The dataset an unpaired set was cut from (its dataset.json), e.g. "fashion-mnist": its domain
    classifier then measures fid_domain of translations. None when unknown."""
    try:
        return str(json.loads((Path(root) / SOURCE_FILE).read_text())["source"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _domain_files(root: Path, folder_name: str) -> list[Path]:
    folder = root / folder_name
    if not folder.is_dir():
        raise UserError(f"{folder_name}/ not found under {root}: {LAYOUT}")
    files = images_under(folder)
    if not files:
        raise UserError(f"{folder}: no images ({' '.join(EXTENSIONS)})")
    return files


def _header(path: Path) -> tuple[str, tuple[int, int]]:
    """Mode and size, read from the file's header only (decoding comes later)."""
    try:
        with Image.open(path) as img:
            return img.mode, img.size
    except (OSError, UnidentifiedImageError) as e:
        raise UserError(f"{path}: cannot read image ({e.__class__.__name__})") from None


def _decode(path: Path, mode: str, resolution: int) -> np.ndarray:
    """uint8 [C, R, R] in ``mode`` ("L" or "RGB"), resized to R x R (bicubic) if it is not already."""
    try:
        with Image.open(path) as img:
            img = img.convert(mode)
            if img.size != (resolution, resolution):
                img = img.resize((resolution, resolution), Image.BICUBIC)
            arr = np.asarray(img, dtype=np.uint8)
    except (OSError, UnidentifiedImageError) as e:  # a truncated file fails here, after a valid header
        raise UserError(f"{path}: cannot decode image ({e.__class__.__name__})") from None
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def load_unpaired(root, split: str = "train", resolution: int | None = None,
                  channels: int | None = None) -> UnpairedData:
    """Decode every image of ``{split}A/`` and ``{split}B/`` (sub-folders included, sorted by path).

    Channels: 1 if every image of both domains is grayscale, else 3 (RGB); ``channels`` forces 1 or 3.
    Size: ``resolution`` x ``resolution`` (bicubic, aspect ratio not kept, as the reference's resize);
    without it, the first image's size, which must be square and shared by every image.
    """
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: not a folder ({LAYOUT})")
    if split not in ("train", "test"):
        raise UserError(f"unknown split {split!r}; valid: train, test")
    if channels not in (None, 1, 3):
        raise UserError(f"channels must be 1 or 3, not {channels}")
    files = {d: _domain_files(root, f"{split}{d.upper()}") for d in ("a", "b")}
    headers = {p: _header(p) for d in ("a", "b") for p in files[d]}
    if channels is None:
        channels = 1 if all(mode in GRAY_MODES for mode, _ in headers.values()) else 3
    if resolution is None:
        first = files["a"][0]
        (w, h) = headers[first][1]
        if w != h:
            raise UserError(f"{first}: {w}x{h} is not square; give a resolution to resize every image to")
        for p, (_, size) in headers.items():
            if size != (w, h):
                raise UserError(f"{p}: {size[0]}x{size[1]}, but {first} is {w}x{h}; "
                                f"give a resolution to resize every image to")
        resolution = w
    mode = "L" if channels == 1 else "RGB"
    a, b = (torch.from_numpy(np.stack([_decode(p, mode, resolution) for p in files[d]])) for d in ("a", "b"))
    return UnpairedData(a, b, root, split, channels, resolution)


def augment(images_uint8: Tensor, load_size: int, crop_size: int, generator: torch.Generator,
            flip: bool = True) -> Tensor:
    """The reference's training transform on a batch: resize to ``load_size`` (bilinear), a random
    ``crop_size`` crop per image (none when the sizes are equal), a random horizontal flip per image.

    Float images in [-1, 1]. The draws (crop offsets, then flips) all come from ``generator``, on
    the CPU, so a batch depends only on the generator's state.
    """
    if crop_size > load_size:
        raise UserError(f"crop size {crop_size} exceeds load size {load_size}")
    x = images_uint8.float().div(127.5).sub(1.0)
    n = x.shape[0]
    if x.shape[-2:] != (load_size, load_size):
        # antialias matters only when shrinking; bilinear weights are convex, so the range stays [-1, 1].
        x = F.interpolate(x, size=(load_size, load_size), mode="bilinear", align_corners=False, antialias=True)
    if crop_size < load_size:
        top, left = torch.randint(0, load_size - crop_size + 1, (2, n), generator=generator).tolist()
        x = torch.stack([x[i, :, t:t + crop_size, s:s + crop_size] for i, (t, s) in enumerate(zip(top, left))])
    if flip:
        mirrored = torch.rand(n, generator=generator) < 0.5
        x = torch.where(mirrored.to(x.device)[:, None, None, None], x.flip(-1), x)
    return x


def write_fashion_pair(out: Path, class_a: str, class_b: str, data_root=None) -> dict[str, int]:
    """Two Fashion-MNIST classes as an unpaired set: ``out/trainA`` holds ``class_a``'s train images,
    ``out/testB`` ``class_b``'s test images, and so on; 28x28 gray PNGs named by their index in the
    Fashion-MNIST split (``01234.png``), so each file traces back to its source. Folders must be new
    or empty (no stale images of another pair). Returns the number of images per folder."""
    labels = {}
    for name in (class_a, class_b):
        if name not in FASHION_CLASSES:
            raise UserError(f"unknown Fashion-MNIST class {name!r}; valid: {', '.join(FASHION_CLASSES)}")
        labels[name] = FASHION_CLASSES.index(name)
    if class_a == class_b:
        raise UserError(f"the two domains need two different classes, not {class_a!r} twice")
    out = Path(out)
    for name in ("trainA", "trainB", "testA", "testB"):
        if (out / name).is_dir() and any((out / name).iterdir()):
            raise UserError(f"{out / name}: not empty; write the pair to a new folder")
    counts = {}
    for split in ("train", "test"):
        data = load_dataset("fashion-mnist", split, data_root=data_root)
        for domain, cls in (("A", class_a), ("B", class_b)):
            folder = out / f"{split}{domain}"
            folder.mkdir(parents=True, exist_ok=True)
            indices = (data.labels == labels[cls]).nonzero().flatten().tolist()
            for i in indices:
                Image.fromarray(data.images[i, 0].numpy()).save(folder / f"{i:05d}.png")  # uint8 2-D: mode "L"
            counts[folder.name] = len(indices)
    (out / SOURCE_FILE).write_text(json.dumps({"source": "fashion-mnist", "classes": {"A": class_a, "B": class_b}},
                                              indent=1) + "\n")
    return counts
