import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))

FASHION = Path("/usr/share/datasets/fashion-mnist")


def has_fashion_mnist() -> bool:
    return (FASHION / "train-images-idx3-ubyte.gz").exists()


needs_fashion = pytest.mark.skipif(not has_fashion_mnist(),
                                   reason="Fashion-MNIST (dataset-fashion-mnist) not installed")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    # Never touch the user's cache (downloads, reference statistics) from tests.
    monkeypatch.setenv("SPARSEGAN_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
