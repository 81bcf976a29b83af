"""Datasets (IDX: fashion-mnist, mnist; cifar10 pickle batches; image-folder), batch order and pixel conversions."""

from sparsegan.data.datasets import DATASETS, SPLITS, ImageData, load_dataset, to_model_range, to_uint8
from sparsegan.data.folder import FolderData
from sparsegan.data.sampler import EpochSampler

__all__ = ["DATASETS", "FolderData", "SPLITS", "EpochSampler", "ImageData", "load_dataset", "to_model_range",
           "to_uint8"]
