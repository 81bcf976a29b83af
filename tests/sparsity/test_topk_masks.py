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
