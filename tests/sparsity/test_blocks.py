"""Block masks (sparsity.blocks): every mask decision in r x c blocks of a weight's matrix view."""

import pytest
import torch
from torch import nn

from sparsegan.sparsity import MaskSet, prunable_parameters, prune_and_regrow
from sparsegan.sparsity.blocks import Blocks


def test_pool_and_expand_by_hand_with_edge_blocks():
    b = Blocks(1, 2)
    w = torch.tensor([[1.0, -2.0, 3.0], [0.5, 0.0, -4.0]])  # 2 x 3: the last column is an edge block
    assert b.grid(w.shape) == (2, 2)
    assert b.pool(w.abs()).tolist() == [[3.0, 3.0], [0.5, 4.0]]
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
