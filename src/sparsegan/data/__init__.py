"""Datasets (IDX: fashion-mnist, mnist; cifar10 pickle batches; image-folder), batch order and pixel conversions."""

from sparsegan.data.datasets import DATASETS, SPLITS, ImageData, load_dataset, to_model_range, to_uint8
from sparsegan.data.folder import FolderData
from sparsegan.data.sampler import EpochSampler
from sparsegan.data.unpaired import UnpairedData, load_unpaired

__all__ = ["DATASETS", "FolderData", "SPLITS", "EpochSampler", "ImageData", "UnpairedData", "load_dataset",
           "load_unpaired", "to_model_range", "to_uint8"]
