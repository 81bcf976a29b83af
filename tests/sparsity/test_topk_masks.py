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


def test_bracketed_selection_is_exact_on_layer_sized_scores():
    # Above 4 x 4,096 scores the k-th value is bracketed from a strided sample first (small k from
    # above, large k from below): the set must still be exactly the stable sort's, including where
    # the sample misleads (values on the sampled stride differ from the rest: the full selection
    # takes over), with ties, -inf (a prune score outside the active weights) and +inf.
    from sparsegan.sparsity.topk import _SAMPLE, topk_indices, topk_mask

    g = torch.Generator().manual_seed(1)
    n = 6 * _SAMPLE + 7
    cases = []
    for frac_inf in (0.0, 0.9):
        for k_frac in (0.001, 0.02, 0.3, 0.97, 0.999):
            cases.append((frac_inf, k_frac, "normal"))
            cases.append((frac_inf, k_frac, "ties"))
            cases.append((frac_inf, k_frac, "misleading"))
    for frac_inf, k_frac, kind in cases:
        if kind == "ties":
            scores = torch.randint(0, 5, (n,), generator=g).float()
        else:
            scores = torch.randn(n, generator=g)
        if kind == "misleading":  # the sampled positions hold the extremes: the bracket fails
            stride = n // _SAMPLE
            scores[::stride] = torch.where(torch.rand(scores[::stride].shape, generator=g) < 0.5, 10.0, -10.0)
        scores[torch.rand(n, generator=g) < frac_inf] = float("-inf")
        scores[7] = float("inf")
        n_finite = int((scores > float("-inf")).sum())
        k = max(1, min(n, int(k_frac * n_finite)))
        expected = torch.zeros(n, dtype=torch.bool)
        expected[topk_indices(scores, k)] = True
        got = topk_mask(scores, k)
        assert torch.equal(got, expected), (frac_inf, k_frac, kind, k)


def test_topk_within_equals_the_masked_topk():
    # The weights kept at an update are selected among the active entries only: the same set as
    # the top-k of the scores with -inf outside them, including ties, and (falling back) where k
    # reaches into -inf scores or a score is NaN.
    from sparsegan.sparsity.topk import mask_of, topk_within

    def topk_mask_within(scores, where, k):
        return mask_of(topk_within(scores, where, k), scores)

    g = torch.Generator().manual_seed(2)
    for trial in range(300):
        n = int(torch.randint(1, 50, (), generator=g)) if trial < 250 else 20000
        scores = torch.randint(-2, 3, (n,), generator=g).float()
        if trial % 7 == 0:
            scores[torch.rand(n, generator=g) < 0.2] = float("-inf")
        if trial % 11 == 0:
            scores[int(torch.randint(0, n, (), generator=g))] = float("nan")
        where = torch.rand(n, generator=g) < 0.3
        k = int(torch.randint(0, int(where.sum()) + 1, (), generator=g))
        expected = topk_mask(scores.masked_fill(~where, float("-inf")), k)
        assert torch.equal(topk_mask_within(scores.view(1, n), where.view(1, n), k).view(-1), expected), trial


def test_topk_within_growth_sized_cases_match_the_masked_topk():
    # Regrowth: a few hundred of ~20,000 candidates (the bracketed path), with ties, -inf among the
    # candidates, and a sample that misleads (the exact path takes over).
    from sparsegan.sparsity.topk import _SAMPLE, mask_of, topk_within

    def topk_mask_within(scores, where, k):
        return mask_of(topk_within(scores, where, k), scores)

    g = torch.Generator().manual_seed(3)
    n = 5 * _SAMPLE + 3
    for trial in range(12):
        scores = torch.randint(0, 50, (n,), generator=g).float() if trial % 2 else torch.randn(n, generator=g)
        if trial % 3 == 0:
            scores[torch.rand(n, generator=g) < 0.5] = float("-inf")
        if trial % 4 == 1:  # the sampled positions hold the largest scores: the bracket fails
            scores[:: n // _SAMPLE] = 1e6
        where = torch.rand(n, generator=g) < 0.9
        for k in (1, 37, 400, 2000):
            expected = topk_mask(scores.masked_fill(~where, float("-inf")), k)
            assert torch.equal(topk_mask_within(scores, where, k), expected), (trial, k)


def test_windowed_kth_largest_equals_kthvalue():
    # The k-th largest value found through sampled windows (recursively) is torch.kthvalue's, for
    # every k class (the top, the middle, the bottom), heavy ties, infinities and sizes that recurse.
    from sparsegan.sparsity.topk import _SAMPLE, _kth_largest

    g = torch.Generator().manual_seed(4)
    for n in (4 * _SAMPLE + 1, 50 * _SAMPLE + 5):
        for kind in ("normal", "ties", "inf", "one-value"):
            x = torch.randn(n, generator=g)
            if kind == "ties":
                x = torch.randint(0, 7, (n,), generator=g).float()
            elif kind == "inf":
                x[torch.rand(n, generator=g) < 0.8] = float("-inf")
                x[torch.rand(n, generator=g) < 0.01] = float("inf")
            elif kind == "one-value":
                x = torch.zeros(n)
            for k in (1, 2, 100, n // 20, n // 2, n - n // 20, n - 1, n):
                assert _kth_largest(x, k) == torch.kthvalue(x, n - k + 1).values, (n, kind, k)
