"""Unpaired two-domain folders (the CycleGAN layout), the batch-time augmentation and the
Fashion-MNIST class pair writer, on tiny images written by the tests."""

import numpy as np
import pytest
import torch
from PIL import Image

from idx_files import write_fake_mnist
from sparsegan.data import load_dataset
from sparsegan.data.unpaired import FASHION_CLASSES, augment, load_unpaired, write_fashion_pair
from sparsegan.errors import UserError


def _png(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def _layout(root, size=8, n_a=3, n_b=2, rgb_b=False, seed=0):
    rng = np.random.default_rng(seed)
    for split in ("train", "test"):
        for i in range(n_a):
            _png(root / f"{split}A" / f"{i}.png", rng.integers(0, 256, (size, size), dtype=np.uint8))
        for i in range(n_b):
            shape = (size, size, 3) if rgb_b else (size, size)
            _png(root / f"{split}B" / f"{i}.png", rng.integers(0, 256, shape, dtype=np.uint8))
    return root


def test_gray_set_loads_as_one_channel_with_unequal_domains(tmp_path):
    root = _layout(tmp_path / "set")
    d = load_unpaired(root)
    assert d.a.shape == (3, 1, 8, 8) and d.b.shape == (2, 1, 8, 8) and d.a.dtype == torch.uint8
    assert (d.channels, d.resolution, d.split, d.root) == (1, 8, "train", root)
    assert (d.a[1, 0].numpy() == np.asarray(Image.open(root / "trainA" / "1.png"))).all()
    assert load_unpaired(root, "test").b.shape == (2, 1, 8, 8)
    assert load_unpaired(root, channels=3).a.shape == (3, 3, 8, 8)


def test_any_color_image_makes_the_set_rgb(tmp_path):
    root = _layout(tmp_path / "set", rgb_b=True)
    d = load_unpaired(root)
    assert d.channels == 3 and d.a.shape == (3, 3, 8, 8) and d.b.shape == (2, 3, 8, 8)
    gray = d.a[0]
    assert (gray[0] == gray[1]).all() and (gray[1] == gray[2]).all()  # gray to RGB: three equal planes
    assert load_unpaired(root, channels=1).b.shape == (2, 1, 8, 8)


def test_resolution_resizes_every_image(tmp_path):
    root = tmp_path / "set"
    _png(root / "trainA" / "x.png", np.full((6, 10), 200, np.uint8))  # not square, not the same size
    _png(root / "trainB" / "y.jpg", np.full((12, 12, 3), 50, np.uint8))
    d = load_unpaired(root, resolution=4)
    assert d.a.shape == (1, 3, 4, 4) and d.b.shape == (1, 3, 4, 4) and d.resolution == 4
    assert (d.a == 200).all()  # a flat image stays flat through the bicubic resize
    with pytest.raises(UserError, match="not square"):
        load_unpaired(root)


def test_sizes_must_agree_without_a_resolution(tmp_path):
    root = _layout(tmp_path / "set")
    _png(root / "trainB" / "big.png", np.zeros((16, 16), np.uint8))
    with pytest.raises(UserError, match=r"big.png: 16x16, but .*0.png is 8x8; give a resolution"):
        load_unpaired(root)
    assert load_unpaired(root, resolution=8).b.shape == (3, 1, 8, 8)


def _one_line(excinfo):
    assert "\n" not in str(excinfo.value)
    return str(excinfo.value)


def test_layout_errors_name_the_problem(tmp_path):
    with pytest.raises(UserError, match="not a folder") as e:
        load_unpaired(tmp_path / "missing")
    _one_line(e)
    root = _layout(tmp_path / "set")
    for name in ("trainB", "testB"):
        for f in (root / name).iterdir():
            f.unlink()
        (root / name).rmdir()
    with pytest.raises(UserError, match=r"^trainB/ not found under .*set: the CycleGAN layout is trainA/ trainB/ "
                                        r"testA/ testB/$") as e:
        load_unpaired(root)
    _one_line(e)
    (root / "trainB").mkdir()
    (root / "trainB" / "notes.txt").write_text("no images here")
    with pytest.raises(UserError, match=r"trainB: no images") as e:
        load_unpaired(root)
    _one_line(e)
    with pytest.raises(UserError, match="unknown split"):
        load_unpaired(root, "val")
    with pytest.raises(UserError, match="channels must be 1 or 3"):
        load_unpaired(root, channels=2)


def test_unreadable_image_is_named(tmp_path):
    root = _layout(tmp_path / "set")
    (root / "trainB" / "bad.png").write_bytes(b"not a png")
    with pytest.raises(UserError, match=r"bad.png: cannot read image") as e:
        load_unpaired(root)
    _one_line(e)
    good = (root / "trainB" / "0.png").read_bytes()
    (root / "trainB" / "bad.png").write_bytes(good[:len(good) // 2])  # valid header, truncated pixels
    with pytest.raises(UserError, match=r"bad.png: cannot decode image"):
        load_unpaired(root)


def _ramp(n=4, size=8):
    # A horizontal ramp: column j is 30 j everywhere, every image alike.
    return (torch.arange(size) * 30).to(torch.uint8).expand(n, 1, size, size).clone()


def test_augment_without_crop_only_flips():
    x = _ramp()
    out = augment(x, 8, 8, torch.Generator().manual_seed(0), flip=False)
    assert torch.equal(out, x.float() / 127.5 - 1)
    g = torch.Generator().manual_seed(0)
    out = augment(x, 8, 8, g)
    expected = torch.rand(4, generator=torch.Generator().manual_seed(0)) < 0.5  # the one draw: the flips
    assert expected.any() and not expected.all()
    for i, flipped in enumerate(expected.tolist()):
        assert torch.equal(out[i], (x[i].flip(-1) if flipped else x[i]).float() / 127.5 - 1)


def test_augment_crops_deterministically_in_range():
    x = torch.randint(0, 256, (6, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    a = augment(x, 10, 6, torch.Generator().manual_seed(5))
    b = augment(x, 10, 6, torch.Generator().manual_seed(5))
    assert a.shape == (6, 3, 6, 6) and torch.equal(a, b)
    assert a.min() >= -1 and a.max() <= 1
    assert not torch.equal(a, augment(x, 10, 6, torch.Generator().manual_seed(6)))
    # Without a resize, a crop is the window at the drawn offsets (documented order: tops, lefts, flips).
    rows, cols = torch.arange(8)[:, None], torch.arange(8)[None, :]
    img = (3 * rows + 30 * cols).to(torch.uint8).expand(16, 1, 8, 8)
    out = augment(img, 8, 5, torch.Generator().manual_seed(2))
    g = torch.Generator().manual_seed(2)
    tops, lefts = torch.randint(0, 4, (2, 16), generator=g).tolist()
    flips = (torch.rand(16, generator=g) < 0.5).tolist()
    assert len(set(zip(tops, lefts))) > 1 and any(flips) and not all(flips)
    for i, (t, s, f) in enumerate(zip(tops, lefts, flips)):
        window = img[i, :, t:t + 5, s:s + 5]
        assert torch.equal(out[i], (window.flip(-1) if f else window).float() / 127.5 - 1)
    with pytest.raises(UserError, match="exceeds"):
        augment(img, 4, 5, torch.Generator())


def test_write_fashion_pair_round_trips(tmp_path):
    data_root = write_fake_mnist(tmp_path / "fm", n_train=40, n_test=12)
    out = tmp_path / "pair"
    counts = write_fashion_pair(out, "sandal", "sneaker", data_root=data_root)
    for split in ("train", "test"):
        src = load_dataset("fashion-mnist", split, data_root=data_root)
        for domain, label in (("A", 5), ("B", 7)):
            indices = (src.labels == label).nonzero().flatten().tolist()
            files = sorted((out / f"{split}{domain}").iterdir())
            assert counts[f"{split}{domain}"] == len(indices) == len(files)
            assert [f.name for f in files] == [f"{i:05d}.png" for i in indices]
            for f, i in zip(files, indices):
                with Image.open(f) as img:
                    assert img.mode == "L" and img.size == (28, 28)
                    assert (np.asarray(img) == src.images[i, 0].numpy()).all()
    assert set(counts) == {"trainA", "trainB", "testA", "testB"} and counts["trainA"] > 0
    d = load_unpaired(out)
    assert d.channels == 1 and d.resolution == 28 and d.a.shape[0] == counts["trainA"]
    with pytest.raises(UserError, match="not empty"):
        write_fashion_pair(out, "sandal", "sneaker", data_root=data_root)


def test_write_fashion_pair_refuses_unknown_classes(tmp_path):
    with pytest.raises(UserError, match="unknown Fashion-MNIST class 'boot'; valid: t-shirt, trouser") as e:
        write_fashion_pair(tmp_path, "boot", "bag")
    assert all(c in str(e.value) for c in FASHION_CLASSES) and "\n" not in str(e.value)
    with pytest.raises(UserError, match="two different classes"):
        write_fashion_pair(tmp_path, "bag", "bag")
