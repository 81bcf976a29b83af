import math

import pytest

from sparsegan.sparsity import allocate_active_counts, er, erk, uniform


def test_erk_hand_computed_two_layers():
    # Layer a (4x4): raw = 8/16 = 0.5; layer b (2x8): raw = 10/16 = 0.625. Target density 0.5 of
    # 32 weights = 16 active: eps * (0.5*16 + 0.625*16) = 16 -> eps = 16/18.
    out = erk({"a": (4, 4), "b": (2, 8)}, 0.5)
    eps = 16 / 18
    assert out["a"] == pytest.approx(1 - eps * 0.5)
    assert out["b"] == pytest.approx(1 - eps * 0.625)


def test_erk_kernel_dims_and_dense_promotion():
    # A tiny first layer gets density > 1 and is made dense; the rest absorbs the budget.
    shapes = {"first": (8, 1, 3, 3), "big": (64, 64, 3, 3), "last": (1, 64, 3, 3)}
    out = erk(shapes, 0.9)
    assert out["first"] == 0.0
    numel = {n: math.prod(s) for n, s in shapes.items()}
    active = sum(numel[n] * (1 - s) for n, s in out.items())
    assert active == pytest.approx(0.1 * sum(numel.values()))


def test_er_drops_kernel_dims():
    conv = er({"c": (4, 4, 3, 3), "l": (4, 4)}, 0.5)
    # Same fan-in/fan-out => same ER score, so the same sparsity for both.
    assert conv["c"] == pytest.approx(conv["l"])
    assert erk({"c": (4, 4, 3, 3), "l": (4, 4)}, 0.5)["c"] != pytest.approx(conv["c"])


def test_power_scale_softens():
    shapes = {"a": (64, 64), "b": (256, 256)}
    hard, soft = erk(shapes, 0.95), erk(shapes, 0.95, power_scale=0.5)
    assert 0 < hard["a"] < hard["b"] and 0 < soft["a"] < soft["b"]
    assert abs(hard["a"] - hard["b"]) > abs(soft["a"] - soft["b"])


def test_uniform():
    assert uniform({"a": (3, 3), "b": (5,)}, 0.3) == {"a": 0.3, "b": 0.3}


@pytest.mark.parametrize("fn", [uniform, er, erk])
@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5])
def test_bad_sparsity(fn, bad):
    with pytest.raises(ValueError):
        fn({"a": (4, 4)}, bad)


@pytest.mark.parametrize("fn", [uniform, er, erk])
def test_empty_shapes(fn):
    with pytest.raises(ValueError):
        fn({}, 0.5)


def test_zero_sparsity_is_dense():
    assert erk({"a": (4, 4), "b": (2, 8)}, 0.0) == {"a": 0.0, "b": 0.0}


def test_allocate_counts_exact_total():
    numels = {"a": 10, "b": 10, "c": 10}
    counts = allocate_active_counts(numels, {"a": 0.55, "b": 0.55, "c": 0.55}, 14)
    assert sum(counts.values()) == 14
    assert all(4 <= c <= 5 for c in counts.values())
