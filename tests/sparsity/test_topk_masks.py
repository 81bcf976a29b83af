import torch
from torch import nn

from sparsegan.sparsity import MaskSet, global_topk_masks, prunable_parameters, topk_mask


def test_topk_ties_break_by_index():
    scores = torch.tensor([1.0, 3.0, 3.0, 3.0, 0.0])
    assert topk_mask(scores, 2).tolist() == [False, True, True, False, False]


def test_global_topk():
    m = global_topk_masks({"a": torch.tensor([5.0, 1.0]), "b": torch.tensor([4.0, 3.0, 0.5])}, 3)
    assert m["a"].tolist() == [True, False] and m["b"].tolist() == [True, True, False]


def _net():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.utils.parametrizations.spectral_norm(nn.Conv2d(4, 4, 3)),
        nn.Flatten(), nn.Linear(4 * 4 * 4, 8), nn.Embedding(3, 2), nn.ConvTranspose2d(2, 2, 4),
    )


def test_prunable_parameters_scopes():
    net = _net()
    names = list(prunable_parameters(net))
    assert names == ["0.weight", "2.parametrizations.weight.original", "4.weight", "6.weight"]
    assert list(prunable_parameters(net, "conv")) == ["0.weight", "2.parametrizations.weight.original", "6.weight"]


def test_random_masks_exact_counts_and_apply():
    net = _net()
    params = prunable_parameters(net)
    g = torch.Generator().manual_seed(0)
    ms = MaskSet.random(params, 0.75, "erk", generator=g)
    total = sum(p.numel() for p in params.values())
    assert ms.active() == round(0.25 * total)
    ms.apply_()
    for n, p in params.items():
        assert (p[~ms.masks[n]] == 0).all()
    # Same seed, same masks.
    ms2 = MaskSet.random(params, 0.75, "erk", generator=torch.Generator().manual_seed(0))
    assert all(torch.equal(ms.masks[n], ms2.masks[n]) for n in params)


def test_mask_grads_and_state_roundtrip():
    lin = nn.Linear(4, 4)
    params = prunable_parameters(lin)
    ms = MaskSet.random(params, 0.5, "uniform", generator=torch.Generator().manual_seed(1))
    lin(torch.randn(2, 4)).sum().backward()
    ms.mask_grads_()
    assert (lin.weight.grad[~ms.masks["weight"]] == 0).all()
    state = ms.state_dict()
    other = MaskSet.dense(params)
    other.load_state_dict(state)
    assert torch.equal(other.masks["weight"], ms.masks["weight"])
    assert other.itop_rate() == ms.itop_rate() == 0.5


def test_selection_gives_the_stable_sorts_set_with_ties_and_infinities():
    # topk_mask selects (k-th value, then ties by index) instead of sorting: the same set as the
    # stable descending sort, on scores full of ties, -inf (excluded entries) and signed zeros.
    from sparsegan.sparsity.topk import topk_indices, topk_mask

    g = torch.Generator().manual_seed(0)
    for trial in range(200):
        n = int(torch.randint(1, 60, (), generator=g))
        scores = torch.randint(-3, 4, (n,), generator=g).float()
        scores[torch.rand(n, generator=g) < (0.3 if trial % 2 else 0.9)] = float("-inf")  # 0.9: the compressed path
        scores[torch.rand(n, generator=g) < 0.1] = -0.0
        k = int(torch.randint(0, n + 1, (), generator=g))
        expected = torch.zeros(n, dtype=torch.bool)
        expected[topk_indices(scores, k)] = True
        got = topk_mask(scores, k)
        assert torch.equal(got, expected), (trial, scores.tolist(), k)
        assert int(got.sum()) == k
