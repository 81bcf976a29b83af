"""CIFAR-10 pickle batches in the official format, written by the tests that need them (the data
loader's tests and the paper recipes' training tests), importable from any test folder."""

import pickle

import numpy as np


def write_cifar(root, n_per_batch=6, seed=0):
    """cifar-10-batches-py/ with data_batch_1..5 and test_batch, as the official pickles."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, n_per_batch)]
        with open(folder / name, "wb") as f:
            pickle.dump({b"batch_label": name.encode(), b"labels": labels, b"data": data,
                         b"filenames": [b"x.png"] * n_per_batch}, f, protocol=2)
        batches[name] = (data, labels)
    return root, batches
