"""Datasets (IDX: fashion-mnist, mnist), batch order and pixel conversions."""

from sparsegan.data.datasets import DATASETS, SPLITS, ImageData, load_dataset, to_model_range, to_uint8
from sparsegan.data.sampler import EpochSampler

__all__ = ["DATASETS", "SPLITS", "EpochSampler", "ImageData", "load_dataset", "to_model_range", "to_uint8"]
