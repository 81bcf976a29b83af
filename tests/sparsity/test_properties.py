"""Property-based tests of the engine's invariants over random shapes, sparsities and seeds."""

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from sparsegan.sparsity import MaskSet, SparseEMA, erk, prune_and_regrow, target_counts

shapes = st.lists(
    st.one_of(
        st.tuples(st.integers(1, 12), st.integers(1, 12)),
        st.tuples(st.integers(1, 6), st.integers(1, 6), st.integers(1, 3), st.integers(1, 3)),
    ),
    min_size=1, max_size=4,
)


def _params(layer_shapes, seed):
    g = torch.Generator().manual_seed(seed)
    return {f"l{i}": nn.Parameter(torch.randn(s, generator=g)) for i, s in enumerate(layer_shapes)}


@settings(max_examples=60, deadline=None)
@given(shapes, st.floats(0.0, 0.99), st.sampled_from(["erk", "er", "uniform"]), st.integers(0, 10_000))
def test_exact_counts_and_zero_inactive(layer_shapes, sparsity, dist, seed):
    params = _params(layer_shapes, seed)
    counts = target_counts(params, sparsity, dist)
    total = sum(p.numel() for p in params.values())
    assert sum(counts.values()) == round((1 - sparsity) * total)
    assert all(0 <= counts[n] <= params[n].numel() for n in params)
    ms = MaskSet.random(params, sparsity, dist, generator=torch.Generator().manual_seed(seed))
    assert ms.layer_active() == counts
    ms.apply_()
    for n, p in params.items():
        assert (p.detach()[~ms.masks[n]] == 0).all()


@settings(max_examples=60, deadline=None)
@given(shapes, st.floats(0.01, 0.99), st.floats(0.05, 2.0))
def test_erk_sums_to_target(layer_shapes, sparsity, power):
    named = {f"l{i}": s for i, s in enumerate(layer_shapes)}
    out = erk(named, sparsity, power_scale=power)
    numel = {n: math.prod(s) for n, s in named.items()}
    active = sum(numel[n] * (1 - out[n]) for n in named)
    assert abs(active - (1 - sparsity) * sum(numel.values())) < 1e-6 * sum(numel.values()) + 1e-9
    assert all(0.0 <= v <= 1.0 for v in out.values())


@settings(max_examples=40, deadline=None)
@given(shapes, st.floats(0.1, 0.9), st.floats(0.0, 1.0), st.integers(0, 10_000),
       st.sampled_from(["gradient", "random", "momentum"]))
def test_prune_regrow_invariants(layer_shapes, sparsity, fraction, seed, grow):
    params = _params(layer_shapes, seed)
    ms = MaskSet.random(params, sparsity, "erk", generator=torch.Generator().manual_seed(seed))
    ms.apply_()
    opt = torch.optim.Adam(params.values())
    for p in params.values():
        p.grad = torch.randn_like(p)
    opt.step()
    ms.apply_()
    before = ms.layer_active()
    ema_model = nn.Module()
    for n, p in params.items():
        ema_model.register_parameter(n, p)
    ema = SparseEMA(ema_model, 0.9)
    grads = {n: torch.randn(p.shape, generator=torch.Generator().manual_seed(seed + 1)) for n, p in params.items()}
    old_masks = {n: m.clone() for n, m in ms.masks.items()}
    floors = {n: opt.state[p]["exp_avg_sq"][old_masks[n]].mean() for n, p in params.items()}
    changes, grown = prune_and_regrow(ms, fraction, grow=grow, dense_grads=grads, optimizer=opt,
                                      generator=torch.Generator().manual_seed(seed))
    ema.on_topology_change(ms, grown, step=1)
    assert ms.layer_active() == before  # counts never change
    for n, p in params.items():
        m, g = ms.masks[n], grown[n]
        assert (p.detach()[~m] == 0).all()
        assert (p.detach()[g] == 0).all()  # regrown weights start at 0
        st_ = opt.state[p]
        # Regrown: the bias-corrected moments of a fresh weight's first step (t = 1 here); the
        # second moment floored at the layer's mean over the weights active before.
        torch.testing.assert_close(st_["exp_avg"][g], grads[n][g] * (1 - 0.9))
        torch.testing.assert_close(st_["exp_avg_sq"][g], torch.clamp(grads[n][g] ** 2 * (1 - 0.999), min=floors[n]))
        assert (ema.model.get_parameter(n).detach()[~m] == 0).all()  # EMA zero outside the masks
        assert not (g & ~m).any()
    # One more optimizer step and EMA update keep everything inside the masks.
    for p in params.values():
        p.grad = torch.randn_like(p)
    ms.mask_grads_()
    opt.step()
    ms.apply_()
    ema.update(ema_model, step=1, masks=ms)
    for n in params:
        assert (ema.model.get_parameter(n).detach()[~ms.masks[n]] == 0).all()
    assert ms.itop_rate() >= ms.density()
