"""Block masks (sparsity.blocks): every mask decision in r x c blocks of a weight's matrix view."""

import pytest
import torch
from torch import nn

from sparsegan.models import ModelSpec, build_models
from sparsegan.sparsity import (
    MaskSet,
    magnitude_prune_to,
    output_axes,
    prunable_parameters,
    prune_and_regrow,
    target_counts,
)
from sparsegan.sparsity.blocks import Blocks, select_blocks
from sparsegan.sparsity.updaters import grow_to


def test_pool_and_expand_by_hand_with_edge_blocks():
    b = Blocks(1, 2)
    w = torch.tensor([[1.0, -2.0, 3.0], [0.5, 0.0, -4.0]])  # 2 x 3: the last column is an edge block
    assert b.grid(w.shape) == (2, 2)
    # a block's score is its sum, an edge block's scaled to a full block's size (its mean times 2)
    assert b.pool(w.abs()).tolist() == [[3.0, 6.0], [0.5, 8.0]]
    assert b.sizes(w.shape).tolist() == [[2, 1], [2, 1]]
    m = b.expand(torch.tensor([[True, False], [False, True]]), w)
    assert m.tolist() == [[True, True, False], [False, False, True]]
    assert b.is_blocked(m) and not b.is_blocked(torch.tensor([[True, False, False], [False, False, True]]))
    conv = torch.zeros(4, 2, 3, 3)  # matrix view 4 x 18
    assert Blocks(4, 1).grid(conv.shape) == (1, 18) and Blocks.parse(" 4X1 ") == Blocks(4, 1)
    with pytest.raises(ValueError, match="RxC"):
        Blocks.parse("4")


def test_random_block_masks_and_a_prune_and_regrow_keep_blocks():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 10), nn.Conv2d(3, 8, 3))
    params = prunable_parameters(net)
    blocks = Blocks(1, 4)
    masks = MaskSet.random(params, 0.75, "uniform", generator=torch.Generator().manual_seed(0), blocks=blocks)
    for n, m in masks.masks.items():
        assert blocks.is_blocked(m)
        assert abs(m.float().mean().item() - 0.25) < 0.1, n
    masks.apply_()
    before = {n: m.clone() for n, m in masks.masks.items()}
    active_blocks = {n: int(blocks.pool_mask(m).sum()) for n, m in masks.masks.items()}
    grads = {n: torch.randn_like(p) for n, p in params.items()}
    changes, grown = prune_and_regrow(masks, 0.5, dense_grads=grads)
    for n, m in masks.masks.items():
        assert blocks.is_blocked(m) and int(blocks.pool_mask(m).sum()) == active_blocks[n]  # blocks conserved
        assert (params[n][~m] == 0).all() and (params[n][grown[n]] == 0).all()  # grown weights start at 0
        assert torch.equal(grown[n], m & ~before[n])
    assert any(c.grown for c in changes)
    with pytest.raises(ValueError, match="not made of 1x4 blocks"):
        masks.set_mask("0.weight", torch.rand(32, 16) < 0.5)


def test_transposed_conv_blocks_group_output_channels_by_hand():
    # A transposed conv's weight is (in, out, k, k); its blocks are made in the out x (in k k) view,
    # so a 2x1 block is two output channels at the same input channel and tap, as for a conv.
    b = Blocks(2, 1, out_axis=1)
    w = torch.arange(2 * 4 * 1 * 1, dtype=torch.float32).reshape(2, 4, 1, 1)  # in 2, out 4, 1x1 kernel
    assert b.matrix_shape(w.shape) == (4, 2) and b.grid(w.shape) == (2, 2)
    # view[o, i] = w[i, o]: w = [[0, 1, 2, 3], [4, 5, 6, 7]] -> block (0, 0) = outs 0-1 of in 0 = 0 + 1
    assert b.pool(w).tolist() == [[1.0, 9.0], [5.0, 13.0]]
    m = b.expand(torch.tensor([[True, False], [False, True]]), w)
    assert m.shape == w.shape
    assert m[:, :, 0, 0].tolist() == [[True, True, False, False], [False, False, True, True]]
    assert b.is_blocked(m) and not Blocks(2, 1).is_blocked(m)  # in the weight's own (in, out) view it is 1x2

    net = nn.Sequential(nn.ConvTranspose2d(8, 12, 4), nn.Conv2d(12, 4, 3))
    params = prunable_parameters(net)
    from sparsegan.sparsity import output_axes

    axes = output_axes(net)
    assert axes == {"0.weight": 1}
    masks = MaskSet.random(params, 0.75, "uniform", generator=torch.Generator().manual_seed(0),
                           blocks=Blocks(4, 1), out_axes=axes)
    w_t = masks.masks["0.weight"].transpose(0, 1).reshape(12, -1)  # out x (in k k)
    assert all(torch.equal(w_t[g * 4], w_t[g * 4 + r]) for g in range(3) for r in range(4))
    conv = masks.masks["1.weight"].reshape(4, -1)
    assert all(torch.equal(conv[0], conv[r]) for r in range(4))
    with pytest.raises(ValueError, match="not made of 4x1 blocks"):
        masks.set_mask("0.weight", torch.rand(8, 12, 4, 4, generator=torch.Generator().manual_seed(1)) > 0.5)


@pytest.mark.parametrize("shape", ["4x1", "8x1", "1x4"])
def test_block_counts_match_the_unstructured_distribution_on_the_study_dcgan(shape):
    # The study's DCGAN (width 16, one channel) at s_G 95 % / s_D 70 % under ERK: G's output layer
    # (one output channel: every 4x1 block is a 1-weight edge block) is dense at 256 weights, and D's
    # last layer (one output) keeps its 1x1 count; counts were rounded as if every block were full
    # (64 of 256 at 4x1) before edge blocks were counted.
    G, D = build_models("dcgan", ModelSpec(channels=1, width=16))
    for net, s in ((G, 0.95), (D, 0.7)):
        params, axes = prunable_parameters(net), output_axes(net)
        want = target_counts(params, s, "erk")
        blocks = Blocks.parse(shape)
        masks = MaskSet.random(params, s, "erk", generator=torch.Generator().manual_seed(0), blocks=blocks,
                               out_axes=axes)
        for n, m in masks.masks.items():
            biggest = int(masks.blocks_of(n).sizes(m.shape).max())
            assert abs(int(m.sum()) - want[n]) <= biggest, (n, int(m.sum()), want[n])
        got = masks.active() / masks.numel()
        assert abs(got - (1 - s)) < 0.002, got
    g_params = prunable_parameters(G)
    out_layer = list(g_params)[-1]
    assert target_counts(g_params, 0.95, "erk")[out_layer] == g_params[out_layer].numel() == 256


def test_an_edge_block_competes_on_its_mean_and_counts_are_met_in_weights():
    # 1 x 10 weights in 1x4 blocks: sizes 4, 4, 2. The edge block's two weights are the largest:
    # it wins the ranking (its mean, 5, beats the others' 1 and 2), and 6 weights are kept: the edge
    # block and one full block, not one and a half full blocks rounded.
    w = torch.tensor([[1.0, 1, 1, 1, 2, 2, 2, 2, 5, 5]])
    b = Blocks(1, 4)
    assert b.sizes(w.shape).tolist() == [[4, 4, 2]]
    chosen = select_blocks({"w": b.pool(w)}, {"w": b.sizes(w.shape)}, 6)["w"]
    assert chosen.tolist() == [[False, True, True]]
    assert select_blocks({"w": b.pool(w)}, {"w": b.sizes(w.shape)}, 2)["w"].tolist() == [[False, False, True]]
    # the nearest whole number of blocks: 7 weights -> 6 (edge + full) is nearer than 10
    assert int(b.expand(select_blocks({"w": b.pool(w)}, {"w": b.sizes(w.shape)}, 7)["w"], w).sum()) == 6

    params = {"w": nn.Parameter(w.clone())}
    masks = MaskSet.dense(params, blocks=b)
    magnitude_prune_to(masks, {"w": 6})
    assert masks.masks["w"].tolist() == [[False] * 4 + [True] * 6]
    masks = MaskSet(params, {"w": torch.zeros_like(w, dtype=torch.bool)}, blocks=b)
    grown = grow_to(masks, {"w": 2}, {"w": w.abs()})
    assert grown["w"].tolist() == [[False] * 8 + [True] * 2]


@pytest.mark.parametrize("ranking", ["layer", "global"])
def test_prune_and_regrow_keeps_exact_counts_with_edge_blocks(ranking):
    # 10 outputs in 4x1 blocks: rows 4, 4, 2. Regrowth swaps blocks of the same size, so every
    # layer's (global: the net's) active count is the same after each update.
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(12, 10), nn.Linear(10, 6))
    params = prunable_parameters(net)
    masks = MaskSet.random(params, 0.6, "uniform", generator=torch.Generator().manual_seed(0), blocks=Blocks(4, 1))
    masks.apply_()
    before = masks.layer_active()
    for step in range(5):
        grads = {n: torch.randn_like(p) for n, p in params.items()}
        prune_and_regrow(masks, 0.5, dense_grads=grads, ranking=ranking)
        after = masks.layer_active()
        if ranking == "layer":
            assert after == before
        assert sum(after.values()) == sum(before.values())
        assert all(Blocks(4, 1).is_blocked(m) for m in masks.masks.values())
