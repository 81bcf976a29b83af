"""A dataset split held in memory (the IDX and CIFAR-10 loaders return one)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor


@dataclass
class ImageData:
    """A split held in memory: uint8 images [N, C, H, W], int64 labels [N]."""

    name: str
    split: str
    images: Tensor
    labels: Tensor
    num_classes: int

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def channels(self) -> int:
        return self.images.shape[1]

    @property
    def resolution(self) -> int:
        return self.images.shape[-1]

    def batch(self, indices: Tensor) -> tuple[Tensor, Tensor]:
        return self.images[indices], self.labels[indices]
