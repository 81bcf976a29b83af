"""Any folder of images (ImageNet-style): class sub-folders are the labels.

``ROOT/<class>/**/*.png|jpg|...`` gives one class per sub-folder (sorted names -> 0..K-1); a
folder of images without sub-folders is one unlabelled set (unconditional). If ``ROOT/train``
exists it is the train split and ``ROOT/val`` (or ``ROOT/test``) the test split.

Images are decoded lazily, in DataLoader worker processes (see :mod:`sparsegan.training.batches`),
converted to RGB, resized so the shorter side equals the model resolution, and center-cropped
(the BigGAN-PyTorch / StyleGAN convention for ImageNet).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from sparsegan.errors import UserError

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".ppm", ".pgm", ".tif", ".tiff", ".gif")


def images_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file())


def _split_root(root: Path, split: str) -> Path:
    if (root / "train").is_dir():
        if split == "train":
            return root / "train"
        for name in ("val", "test"):
            if (root / name).is_dir():
                return root / name
        raise UserError(f"{root}: no val/ or test/ folder for the image-folder test split")
    if split != "train":
        raise UserError(f"{root}: image-folder has only a train split (add train/ and val/ folders for two)")
    return root


def center_crop_resize(img: Image.Image, size: int) -> np.ndarray:
    """RGB uint8 [3, size, size]: shorter side resized to ``size`` (bicubic), then center crop."""
    img = img.convert("RGB")
    w, h = img.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    if (nw, nh) != (w, h):
        img = img.resize((nw, nh), Image.BICUBIC)
    left, top = (nw - size) // 2, (nh - size) // 2
    img = img.crop((left, top, left + size, top + size))
    return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1).copy()


@dataclass
class FolderData:
    """A split of an image folder: file list and labels in memory, pixels decoded on demand."""

    name: str
    split: str
    files: list[Path]
    labels: Tensor
    num_classes: int
    classes: tuple[str, ...]
    resolution: int | None = None  # decode size; set to the model's resolution by the trainer

    channels = 3
    lazy = True  # decoded in worker processes, not held in memory

    def __len__(self) -> int:
        return len(self.files)

    def at_resolution(self, resolution: int) -> "FolderData":
        self.resolution = resolution
        return self

    def decode(self, index: int) -> Tensor:
        if self.resolution is None:
            raise RuntimeError("FolderData.resolution must be set before decoding")
        path = self.files[index]
        try:
            with Image.open(path) as img:
                return torch.from_numpy(center_crop_resize(img, self.resolution))
        except (OSError, UnidentifiedImageError) as e:
            raise UserError(f"{path}: cannot decode image ({e.__class__.__name__})") from None

    # A map-style dataset for torch's DataLoader: item i -> (uint8 [3, R, R], label).
    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.decode(index), self.labels[index]

    def batch(self, indices: Tensor) -> tuple[Tensor, Tensor]:
        """Decode a batch in this process (the DataLoader path decodes in workers)."""
        return torch.stack([self.decode(int(i)) for i in indices]), self.labels[indices]


def load_image_folder(split: str = "train", data_root=None, resolution: int | None = None, **_) -> FolderData:
    if data_root is None:
        raise UserError("image-folder needs --data-root DIR (a folder of images, class sub-folders as labels)")
    root = Path(data_root)
    if not root.is_dir():
        raise UserError(f"--data-root {root}: not a folder")
    folder = _split_root(root, split)
    classes = tuple(sorted(d.name for d in folder.iterdir() if d.is_dir() and images_under(d)))
    files: list[Path] = []
    labels: list[int] = []
    if classes:
        for k, c in enumerate(classes):
            found = images_under(folder / c)
            files += found
            labels += [k] * len(found)
    else:
        files = images_under(folder)
        labels = [0] * len(files)
    if not files:
        raise UserError(f"{folder}: no images ({', '.join(EXTENSIONS)}) found")
    return FolderData("image-folder", split, files, torch.tensor(labels, dtype=torch.int64),
                      num_classes=len(classes), classes=classes, resolution=resolution)
