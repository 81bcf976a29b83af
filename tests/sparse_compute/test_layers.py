"""The sparse path of each layer kind against the masked dense one: outputs, input gradients and
weight gradients (at the active entries; 0 elsewhere) to float rounding, for unstructured and
block masks, odd shapes, strides, padding and output padding, on each of a layer's sparse kernels."""

import copy

import pytest
import torch
from torch import nn

from sparsegan.sparse_compute import functions
from sparsegan.sparse_compute.pattern import (
    ConvPattern,
    Pattern,
    available,
    conv_direct_weight_grad,
    direct_geometry,
    sddmm,
    spmm,
)
from sparsegan.sparsity.blocks import Blocks

pytestmark = pytest.mark.skipif(not available(), reason="the C kernels are not built here (or no AVX2)")

LAYERS = [
    ("linear", lambda: nn.Linear(33, 20), (5, 33)),
    ("linear-3d-input-no-bias", lambda: nn.Linear(12, 9, bias=False), (3, 4, 12)),
    ("conv-stride2-pad1", lambda: nn.Conv2d(3, 8, 4, 2, 1), (4, 3, 16, 16)),
    ("conv-3x3-valid-no-bias", lambda: nn.Conv2d(6, 5, 3, 1, 0, bias=False), (2, 6, 7, 9)),
    ("conv-dilated", lambda: nn.Conv2d(4, 4, 3, 1, 2, dilation=2), (2, 4, 9, 9)),
    ("convT-from-1x1", lambda: nn.ConvTranspose2d(10, 6, 4, 1, 0, bias=False), (3, 10, 1, 1)),
    ("convT-stride2", lambda: nn.ConvTranspose2d(6, 4, 4, 2, 1), (3, 6, 5, 5)),
    ("convT-output-padding", lambda: nn.ConvTranspose2d(6, 4, 3, 2, 1, output_padding=1), (2, 6, 4, 7)),
]


def _masked(module: nn.Module, mask: torch.Tensor) -> nn.Module:
    with torch.no_grad():
        module.weight.mul_(mask)
    return module


# stride-1 Conv2d layers, which also run on the direct kernels: rows of 1-5 vectors (widths 3 to 37,
# a masked last vector), heights that leave a short last block of rows, 1x1 and 5x5 kernels, padding
# from 0 to k - 1
DIRECT = [
    ("3x3-pad1", lambda: nn.Conv2d(5, 7, 3, 1, 1), (3, 5, 9, 11)),
    ("3x3-valid-no-bias", lambda: nn.Conv2d(6, 5, 3, 1, 0, bias=False), (2, 6, 7, 9)),
    ("1x1", lambda: nn.Conv2d(12, 4, 1), (2, 12, 5, 3)),
    ("5x5-pad2-wide", lambda: nn.Conv2d(3, 4, 5, 1, 2), (2, 3, 6, 37)),
    ("3x3-pad2-one-row", lambda: nn.Conv2d(4, 3, 3, 1, 2), (2, 4, 1, 16)),
    ("3x3-rect-kernel", lambda: nn.Conv2d(4, 6, (3, 1), 1, (1, 0)), (3, 4, 13, 8)),
]


def _compare(module, mask, shape, seed=0, dense_grad=False, kernel="sparse"):
    torch.manual_seed(seed)
    x = torch.randn(shape, requires_grad=True)
    params = [x, module.weight] + ([module.bias] if module.bias is not None else [])
    y_dense = module(x)
    g = torch.randn_like(y_dense)
    dense = torch.autograd.grad(y_dense, params, g)
    y_sparse = functions.forward(module, x, functions.pattern_for(module, mask), dense_grad=dense_grad, kernel=kernel)
    sparse = torch.autograd.grad(y_sparse, params, g)
    assert y_sparse.shape == y_dense.shape
    torch.testing.assert_close(y_sparse, y_dense, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(sparse[0], dense[0], rtol=1e-5, atol=1e-6)
    if dense_grad:  # the masked path's gradient at every entry, inactive ones included
        torch.testing.assert_close(sparse[1], dense[1], rtol=1e-5, atol=1e-5)
        assert dense[1][~mask].abs().sum() > 0
    else:  # the masked one at the active entries, exactly 0 elsewhere
        torch.testing.assert_close(sparse[1], dense[1] * mask, rtol=1e-5, atol=1e-5)
        assert not sparse[1][~mask].any()
    for a, b in zip(sparse[2:], dense[2:]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("density", [0.05, 0.3, 1.0])
@pytest.mark.parametrize("name,make,shape", LAYERS, ids=[c[0] for c in LAYERS])
def test_each_layer_kind_matches_the_masked_dense_path(name, make, shape, density):
    torch.manual_seed(1)
    module = make()
    mask = torch.rand(module.weight.shape) < density
    _compare(_masked(module, mask), mask, shape)


@pytest.mark.parametrize("name,make,shape", LAYERS, ids=[c[0] for c in LAYERS])
def test_the_dense_weight_gradient_of_an_update_step_is_the_masked_paths(name, make, shape):
    # gradient regrowth ranks inactive weights by their gradient: at such a step the sparse path
    # runs its forward and input gradient sparse and gives the weight's gradient at every entry
    torch.manual_seed(3)
    module = make()
    mask = torch.rand(module.weight.shape) < 0.2
    _compare(_masked(module, mask), mask, shape, dense_grad=True)


@pytest.mark.parametrize("dense_grad", [False, True])
@pytest.mark.parametrize("density", [0.05, 0.3, 1.0])
@pytest.mark.parametrize("name,make,shape", DIRECT, ids=[c[0] for c in DIRECT])
def test_the_direct_kernels_match_the_masked_dense_path(name, make, shape, density, dense_grad):
    torch.manual_seed(6)
    module = make()
    assert functions.kernels(module) == ("sparse", "direct")
    mask = torch.rand(module.weight.shape) < density
    mask[0] = False  # an output channel with no active weight: its output is the bias, its gradients 0
    _compare(_masked(module, mask), mask, shape, dense_grad=dense_grad, kernel="direct")


def test_layers_without_direct_kernels_refuse_them_by_name():
    for module in (nn.Conv2d(3, 4, 3, 2, 1), nn.Conv2d(3, 4, 3, 1, 2, dilation=2), nn.Conv2d(3, 4, 3, 1, 3),
                   nn.ConvTranspose2d(3, 4, 3, 1, 1), nn.Linear(3, 4)):
        assert functions.kernels(module) == ("sparse",)
        mask = torch.ones(module.weight.shape, dtype=torch.bool)
        with pytest.raises(ValueError, match="has no 'direct' sparse kernel; it has sparse"):
            functions.forward(module, torch.randn(1, 3, 5, 5), functions.pattern_for(module, mask), kernel="direct")


def test_direct_weight_gradient_on_hand_checkable_numbers():
    # one input and one output channel, 3x3 kernel, padding 1, on the 2x2 image X = [[1, 2], [3, 4]]
    # with dL/dY = [[1, 0], [0, 2]]; an active weight at (kh, kw) reads X shifted by (kh - 1, kw - 1):
    # centre (1, 1): 1*1 + 2*4 = 9; (1, 2) reads X[., w+1]: 1*2 + 2*0 = 2; (0, 0) reads X[h-1, w-1]: 2*1 = 2
    mask = torch.zeros(1, 1, 3, 3, dtype=torch.bool)
    mask[0, 0, 1, 1] = mask[0, 0, 1, 2] = mask[0, 0, 0, 0] = True
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    g = torch.tensor([[[[1.0, 0.0], [0.0, 2.0]]]])
    pattern = ConvPattern(mask)
    grad = conv_direct_weight_grad(pattern, x, g, direct_geometry((1, 1, 2, 2), (3, 3), (1, 1), (1, 1)))
    assert pattern.scatter(grad, mask).tolist() == [[[[2.0, 0.0, 0.0], [0.0, 9.0, 2.0], [0.0, 0.0, 0.0]]]]
    # and through autograd, with the input gradient: W = the three weights 1, 10, 100 as above
    conv = nn.Conv2d(1, 1, 3, 1, 1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.zeros(1, 1, 3, 3).index_put_((torch.tensor([0, 0, 0]),) * 2 + (
            torch.tensor([0, 1, 1]), torch.tensor([0, 1, 2])), torch.tensor([1.0, 10.0, 100.0])))
    xr = x.clone().requires_grad_(True)
    y = functions.forward(conv, xr, functions.pattern_for(conv, mask), kernel="direct")
    # Y[h, w] = 10 X[h, w] + 100 X[h, w + 1] + X[h - 1, w - 1]: [[10 + 200, 20], [30 + 400, 40 + 1]]
    assert y.detach().flatten().tolist() == [210.0, 20.0, 430.0, 41.0]
    (gx, gw) = torch.autograd.grad(y, [xr, conv.weight], g)
    # dL/dX[h, w] = 10 G[h, w] + 100 G[h, w - 1] + G[h + 1, w + 1]: [[10 + 2, 100 * 1], [0, 20]]
    assert gx.flatten().tolist() == [12.0, 100.0, 0.0, 20.0]
    assert gw.flatten().tolist() == [2.0, 0.0, 0.0, 0.0, 9.0, 2.0, 0.0, 0.0, 0.0]


@pytest.mark.parametrize("block", ["4x1", "8x1", "1x4"])
@pytest.mark.parametrize("name,make,shape", [LAYERS[0], LAYERS[2], LAYERS[6]], ids=["linear", "conv", "convT"])
def test_block_masks_match_the_masked_dense_path(name, make, shape, block):
    torch.manual_seed(2)
    module = make()
    out_axis = 1 if isinstance(module, nn.ConvTranspose2d) else 0
    blocks = Blocks.parse(block).along(out_axis)
    # a block mask: random block scores, expanded to weights in the layer's out x in view
    mask = blocks.expand(blocks.pool(torch.rand(module.weight.shape)) < 0.3 * blocks.rows * blocks.cols,
                         module.weight)
    assert 0 < mask.float().mean() < 1 and blocks.is_blocked(mask)
    _compare(_masked(module, mask), mask, shape)


def test_an_empty_row_and_an_empty_mask_give_zeros_not_garbage():
    module = nn.Linear(6, 4, bias=False)
    mask = torch.zeros(4, 6, dtype=torch.bool)
    mask[1, 2] = True
    _compare(_masked(module, mask), mask, (3, 6))
    empty = torch.zeros(4, 6, dtype=torch.bool)
    _compare(_masked(nn.Linear(6, 4), empty), empty, (3, 6))


def test_kernels_on_hand_checkable_numbers():
    # A = [[1, 0, 2], [0, 3, 0]], X = [[1, 2], [3, 4], [5, 6]]: A X = [[11, 14], [9, 12]]
    mask = torch.tensor([[True, False, True], [False, True, False]])
    pattern = Pattern(mask)
    values = pattern.values(torch.tensor([[1.0, 9.0, 2.0], [9.0, 3.0, 9.0]]))
    assert values.tolist() == [1.0, 2.0, 3.0]
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    assert spmm(pattern, values, x).tolist() == [[11.0, 14.0], [9.0, 12.0]]
    assert spmm(pattern, values, x, torch.tensor([1.0, -1.0])).tolist() == [[12.0, 15.0], [8.0, 11.0]]
    # A^T G for G = [[1, 1], [2, 0]]: [[1, 1], [6, 0], [2, 2]]
    g = torch.tensor([[1.0, 1.0], [2.0, 0.0]])
    assert spmm(pattern, values, g, transpose=True).tolist() == [[1.0, 1.0], [6.0, 0.0], [2.0, 2.0]]
    # (G X^T) at the active entries (0,0), (0,2), (1,1): 1+2, 5+6, 2*3
    assert sddmm(pattern, g, x).tolist() == [3.0, 11.0, 6.0]


def test_long_rows_and_many_columns_use_every_code_path():
    # rows of 4k+1..3 entries (the four-at-a-time loop and its tail), 1030 columns (blocks and a tail)
    torch.manual_seed(3)
    mask = torch.rand(37, 53) < 0.6
    pattern = Pattern(mask)
    w = torch.randn(37, 53) * mask
    g, x = torch.randn(37, 1030), torch.randn(53, 1030)
    torch.testing.assert_close(pattern.scatter(sddmm(pattern, g, x), w), (g @ x.t()) * mask, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(spmm(pattern, pattern.values(w), x), w @ x, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("threads", [1, 2])
def test_results_do_not_depend_on_the_thread_count(threads):
    torch.manual_seed(4)
    mask = torch.rand(64, 48) < 0.2
    pattern, w = Pattern(mask), torch.randn(64, 48) * mask
    g, x = torch.randn(64, 40), torch.randn(48, 40)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = (spmm(pattern, pattern.values(w), x), sddmm(pattern, g, x))
        torch.set_num_threads(threads)
        many = (spmm(pattern, pattern.values(w), x), sddmm(pattern, g, x))
    finally:
        torch.set_num_threads(before)
    assert all(torch.equal(a, b) for a, b in zip(one, many))  # each row is summed by one thread, in order


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("batch", [3, 9, 20])
def test_the_direct_kernels_do_not_depend_on_the_thread_count(threads, batch):
    # batch 3: each image's channels shared out; 20: the images (the weight gradient by blocks of 8, the
    # last one partial); 9 at 3 threads: the forward's images shared out, the weight gradient's channels
    torch.manual_seed(7)
    conv = nn.Conv2d(8, 12, 3, 1, 1)
    mask = torch.rand(conv.weight.shape) < 0.2
    pattern = functions.pattern_for(_masked(conv, mask), mask)
    x = torch.randn(batch, 8, 10, 19, requires_grad=True)
    g = torch.randn(batch, 12, 10, 19)

    def run():
        y = functions.forward(conv, x, pattern, kernel="direct")
        return (y, *torch.autograd.grad(y, [x, conv.weight], g))

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = run()
        torch.set_num_threads(threads)
        many = run()
    finally:
        torch.set_num_threads(before)
    assert all(torch.equal(a, b) for a, b in zip(one, many))  # each output value, each block's sums in order


def test_unsupported_layers_say_why():
    assert functions.supports(nn.Linear(3, 2)) is None
    assert functions.supports(nn.Conv2d(4, 4, 3, groups=2)) == "grouped convolution"
    assert functions.supports(nn.Conv2d(4, 4, 3, padding=1, padding_mode="reflect")) == "padding mode 'reflect'"
    assert functions.supports(nn.utils.parametrizations.spectral_norm(nn.Linear(3, 2))) is not None
    assert "Conv1d" in functions.supports(nn.Conv1d(2, 2, 3))


def test_a_deep_copy_of_an_attached_layer_runs_its_own_weights():
    # the sparse EMA copies G: the copy must compute with its own weights, on the dense path
    from sparsegan import SparseTraining

    torch.manual_seed(5)
    net = nn.Sequential(nn.Linear(8, 16))
    sparse = SparseTraining({"G": net}, {"G": torch.optim.SGD(net.parameters(), 0.1)}, "static",
                            sparsity={"G": 0.9}, steps=10, sparse_compute="on")
    twin = copy.deepcopy(net)
    with torch.no_grad():
        twin[0].weight.mul_(2)
    x = torch.randn(4, 8)
    torch.testing.assert_close(twin(x), nn.functional.linear(x, twin[0].weight, twin[0].bias))
    calls = dict(sparse.compute.calls)
    net(x)
    assert sparse.compute.calls["sparse"] == calls["sparse"] + 1
    sparse.close()
    assert "forward" not in net[0].__dict__
