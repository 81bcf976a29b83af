"""CIFAR-10 from the standard python-pickle batches (``cifar-10-batches-py``).

Each batch file is a pickled dict with ``b'data'`` (uint8 [N, 3072], the 1024 red, then green,
then blue values of a 32x32 image, row-major) and ``b'labels'`` (N ints in 0..9). The files are
unpickled with a restricted unpickler that only admits numpy arrays, so a crafted file cannot
run code. Located in ``--data-root`` only when one is given; else the cache; else the official
tar.gz is downloaded (MD5-checked) where a network exists.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile
import tempfile
import urllib.request
from pathlib import Path

import numpy as np
import torch

from sparsegan.data.image_data import ImageData
from sparsegan.errors import UserError
from sparsegan.files import default_cache_dir

FOLDER = "cifar-10-batches-py"
SPLIT_FILES = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}
URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
MD5 = "c58f30108f718f92721af3b95e74349a"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

# What a CIFAR batch pickle may reference: numpy's array reconstruction, nothing else.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),  # how Python 3 writes bytes in protocol-2 pickles
}


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        if module == "_codecs":
            import codecs

            return codecs.encode
        if module.endswith("multiarray"):
            try:  # numpy >= 2 moved numpy.core to numpy._core
                from numpy._core import multiarray
            except ImportError:  # pragma: no cover
                from numpy.core import multiarray
            return getattr(multiarray, name)
        return getattr(np, name)


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images [N, 3, 32, 32] and int64 labels [N] of one batch file."""
    try:
        with open(path, "rb") as f:
            obj = _ArraysOnly(f, encoding="bytes").load()
    except (OSError, EOFError, pickle.UnpicklingError, ValueError) as e:
        raise UserError(f"{path}: not a CIFAR-10 batch ({e.__class__.__name__}: {e})") from None
    if not isinstance(obj, dict) or b"data" not in obj or b"labels" not in obj:
        raise UserError(f"{path}: not a CIFAR-10 batch (needs b'data' and b'labels')")
    data = np.asarray(obj[b"data"])
    labels = np.asarray(obj[b"labels"], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise UserError(f"{path}: b'data' must be uint8 [N, 3072], got {data.dtype} {list(data.shape)}")
    if labels.shape != (data.shape[0],) or (labels.size and not 0 <= labels.min() <= labels.max() < 10):
        raise UserError(f"{path}: b'labels' must hold {data.shape[0]} labels in 0..9")
    return data.reshape(-1, 3, 32, 32), labels


def _folder_in(root: Path) -> Path | None:
    for cand in (root / FOLDER, root):
        if (cand / "data_batch_1").is_file() or (cand / "test_batch").is_file():
            return cand
    return None


def _download(cache: Path) -> Path:
    cache.mkdir(parents=True, exist_ok=True)
    try:
        with urllib.request.urlopen(URL, timeout=60) as r:
            blob = r.read()
    except Exception as e:  # no network
        raise UserError(
            f"cifar10 not found in {cache} and the download failed ({e.__class__.__name__}); "
            f"pass --data-root DIR with {FOLDER}/"
        ) from None
    got = hashlib.md5(blob).hexdigest()
    if got != MD5:
        raise UserError(f"download of {URL} failed its checksum (md5 {got}, expected {MD5})")
    tmp = Path(tempfile.mkdtemp(dir=cache, prefix=".part-"))
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        members = tar.getmembers()
        if any(m.name.startswith("/") or ".." in Path(m.name).parts or not (m.isfile() or m.isdir())
               for m in members):
            raise UserError(f"{URL}: unexpected member in the archive")
        tar.extractall(tmp, members=members)
    os.replace(tmp / FOLDER, cache / FOLDER)
    tmp.rmdir()
    return cache / FOLDER


def locate(data_root) -> Path:
    if data_root is not None:
        found = _folder_in(Path(data_root))
        if found is None:
            raise UserError(f"--data-root {data_root}: {FOLDER}/data_batch_1..5, test_batch not found for cifar10")
        return found
    cache = default_cache_dir() / "cifar10"
    return _folder_in(cache) or _download(cache)


def load_cifar10(split: str = "train", data_root=None, **_) -> ImageData:

    folder = locate(data_root)
    images, labels = [], []
    for name in SPLIT_FILES[split]:
        path = folder / name
        if not path.is_file():
            raise UserError(f"{folder}: {name} missing for the cifar10 {split} split")
        x, y = read_batch(path)
        images.append(x)
        labels.append(y)
    return ImageData("cifar10", split, torch.from_numpy(np.concatenate(images)),
                     torch.from_numpy(np.concatenate(labels)), num_classes=10)
