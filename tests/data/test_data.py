import gzip

import numpy as np
import pytest
import torch

from conftest import needs_fashion
from idx_files import idx_bytes, write_fake_mnist
from sparsegan.data import EpochSampler, load_dataset, to_model_range, to_uint8
from sparsegan.data.idx import parse_idx
from sparsegan.errors import UserError


def test_parse_idx_roundtrip():
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    assert (parse_idx(idx_bytes(arr)) == arr).all()


def test_bad_magic_and_short_payload():
    with pytest.raises(UserError, match="magic"):
        parse_idx(b"\x01\x02\x08\x03" + b"\x00" * 20)
    raw = idx_bytes(np.zeros((2, 2, 2), np.uint8))
    with pytest.raises(UserError, match="payload"):
        parse_idx(raw[:-1])


def test_data_root_loads_and_never_falls_back(tmp_path):
    root = write_fake_mnist(tmp_path / "fm", n_train=10, n_test=4)
    d = load_dataset("fashion-mnist", "train", root)
    assert d.images.shape == (10, 1, 28, 28) and d.images.dtype == torch.uint8
    assert load_dataset("mnist", "test", root).images.shape[0] == 4
    with pytest.raises(UserError, match="not found"):
        load_dataset("fashion-mnist", "train", tmp_path / "empty")


def test_truncated_gzip(tmp_path):
    root = write_fake_mnist(tmp_path / "fm", n_train=10, n_test=4)
    f = root / "train-images-idx3-ubyte.gz"
    f.write_bytes(f.read_bytes()[:50])
    with pytest.raises(UserError, match="truncated|cannot read"):
        load_dataset("fashion-mnist", "train", root)


def test_label_count_mismatch(tmp_path):
    root = write_fake_mnist(tmp_path / "fm", n_train=10, n_test=4)
    (root / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.zeros(9, np.uint8))))
    with pytest.raises(UserError, match="labels"):
        load_dataset("fashion-mnist", "train", root)


@needs_fashion
def test_real_fashion_mnist():
    d = load_dataset("fashion-mnist", "train")
    assert d.images.shape == (60000, 1, 28, 28)
    assert sorted(d.labels.unique().tolist()) == list(range(10))
    assert load_dataset("fashion-mnist", "test").images.shape == (10000, 1, 28, 28)


def test_pixel_range_and_padding():
    x = torch.zeros(1, 1, 28, 28, dtype=torch.uint8)
    x[..., 0] = 255
    y = to_model_range(x, 32)
    assert y.shape == (1, 1, 32, 32) and y.min() == -1 and y.max() == 1
    assert torch.equal(to_uint8(to_model_range(x, 28)), x)


def test_sampler_resumes_exactly():
    a = EpochSampler(10, 4, seed=3)
    seq = [a.next().tolist() for _ in range(6)]
    b = EpochSampler(10, 4, seed=3)
    for _ in range(2):
        b.next()
    c = EpochSampler(10, 4, seed=3)
    c.load_state_dict(b.state_dict())
    assert [c.next().tolist() for _ in range(4)] == seq[2:]
    # Each epoch is a permutation.
    flat = sum(seq[:5], [])[:20]
    assert sorted(flat[:10]) == list(range(10))
