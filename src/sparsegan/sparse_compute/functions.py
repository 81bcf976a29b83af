"""Linear, Conv2d and ConvTranspose2d computed on their active weights only, with autograd.

A Linear layer is one product ``Y = A @ X + b`` for A its weight under its pattern (:mod:`.pattern`):
the backward gives X's gradient through the transposed pattern and the weight's gradient at the
active entries only (a sampled dense-dense product). Convolutions run the direct kernels of
sparsegan/kernels/_conv.c on activations laid out (channels, height, width, batch): a weight times a
pixel is a multiply-add over the batch, and nothing is copied k x k times as im2col would (at 95 %
sparsity those copies cost several times the products). A transposed convolution is the
convolution it transposes run backwards. Weight gradients leave as tensors of the weight's shape,
0 outside the mask, so the optimizer, DDP and the masks' hooks see what the masked dense path gives
them.

What decides where the sparse path wins is what surrounds the products: the layout copies of the
activations (O(batch x features)) and, for small layers, the calls' fixed costs (:mod:`.planner`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from sparsegan.kernels import active
from sparsegan.kernels.library import Geometry
from sparsegan.sparse_compute.pattern import (
    ConvPattern,
    Pattern,
    conv_direct,
    conv_direct_weight_grad,
    conv_gather,
    conv_scatter,
    conv_weight_grad,
    direct_geometry,
    sddmm,
    spmm,
)


class _SparseLinear(torch.autograd.Function):
    """``x @ A^T + bias`` for A = weight on the pattern's entries, x (n x in) batch-major. The
    products run features-major (A @ x^T), transposed here on the way in and out so that the
    gradient handed back is contiguous as well (the elementwise backward of the activation before a
    layer runs several times slower on a transposed gradient). ``dense_grad``: the weight's gradient
    at every entry (one dense product), for an iteration whose rule ranks the inactive weights by
    it (gradient regrowth); the forward and the input gradient stay sparse."""

    @staticmethod
    def forward(ctx, weight: Tensor, x: Tensor, bias: Tensor | None, pattern: Pattern,
                dense_grad: bool = False) -> Tensor:
        values = pattern.values(weight)
        xt = active.transpose(x)
        ctx.save_for_backward(xt)
        ctx.values, ctx.pattern, ctx.weight_shape, ctx.has_bias = values, pattern, weight.shape, bias is not None
        ctx.dense_grad = dense_grad
        return active.transpose(spmm(pattern, values, xt, bias))

    @staticmethod
    @once_differentiable  # the kernels build no graph: a second derivative must fail, not come out wrong
    def backward(ctx, grad: Tensor):
        (xt,) = ctx.saved_tensors
        pattern = ctx.pattern
        grad = active.transpose(grad)  # out x n
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[1]:
            grad_x = active.transpose(spmm(pattern, ctx.values, grad, transpose=True))
        if ctx.needs_input_grad[0] and ctx.dense_grad:  # dL/dA = dL/dY X^T at every entry
            grad_w = torch.mm(grad, xt.t())
        elif ctx.needs_input_grad[0]:  # dL/dA[i, j] = sum_c dL/dY[i, c] X[j, c], active (i, j) only
            grad_w = pattern.scatter(sddmm(pattern, grad, xt), torch.empty(ctx.weight_shape, device="meta"))
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad.sum(1)
        return grad_w, grad_x, grad_b, None, None


def linear(module: nn.Linear, x: Tensor, pattern: Pattern, *, dense_grad: bool = False) -> Tensor:
    """``module(x)`` on the active weights: x (..., in) -> (..., out); ``dense_grad``: the weight's
    gradient at every entry (:class:`_SparseLinear`)."""
    lead = x.shape[:-1]
    y = _SparseLinear.apply(module.weight, x.reshape(-1, x.shape[-1]), module.bias, pattern, dense_grad)
    return y.reshape(*lead, y.shape[1])


def _chwb(x: Tensor) -> Tensor:
    """(B, C, H, W) -> (C, H, W, B), contiguous: a weight times a pixel is then a run over the batch."""
    b, c, h, w = x.shape
    return active.transpose(x.reshape(b, c * h * w), (c, h, w, b))


def _bchw(y: Tensor) -> Tensor:
    c, h, w, b = y.shape
    return active.transpose(y.reshape(c * h * w, b), (b, c, h, w))


class _SparseConv(torch.autograd.Function):
    """A Conv2d (``transposed``: a ConvTranspose2d) on its active weights, by the direct kernels of
    _conv.c: no im2col. A transposed convolution's forward is a convolution's input gradient and
    the other way round; the weight gradient is the same product with the roles of the two
    activations exchanged. ``geometry``: the convolution's view (input = the big side).
    ``dense_grad``: None, or the layer's (stride, padding, dilation, output padding) to give the
    weight's gradient at every entry by torch's own convolution backward (as for Linear)."""

    @staticmethod
    def forward(ctx, weight: Tensor, x: Tensor, bias: Tensor | None, pattern: ConvPattern, geometry,
                transposed: bool, dense_grad: tuple | None = None) -> Tensor:
        values = pattern.values(weight)
        values_in = active.gather(values, pattern.perm)
        b = None if bias is None else bias.detach().contiguous()
        xc = _chwb(x)
        if transposed:  # x: the small side; y = the convolution's input gradient for x
            y = conv_scatter(pattern, values_in, b, xc, geometry)
        else:
            y = conv_gather(pattern.by_out, values, b, xc, geometry)
        ctx.save_for_backward(xc, x if dense_grad else None, weight if dense_grad else None)
        ctx.values, ctx.values_in, ctx.pattern, ctx.geometry, ctx.transposed = values, values_in, pattern, \
            geometry, transposed
        ctx.dense_grad = dense_grad
        ctx.weight_shape, ctx.has_bias = weight.shape, bias is not None
        return _bchw(y)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):
        xc, x, weight = ctx.saved_tensors
        pattern, geometry = ctx.pattern, ctx.geometry
        gc = _chwb(grad)
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[1]:
            if ctx.transposed:
                grad_x = _bchw(conv_gather(pattern.by_out, ctx.values, None, gc, geometry))
            else:
                grad_x = _bchw(conv_scatter(pattern, ctx.values_in, None, gc, geometry))
        if ctx.needs_input_grad[0] and ctx.dense_grad:
            stride, padding, dilation, output_padding = ctx.dense_grad
            grad_w = torch.ops.aten.convolution_backward(
                grad.contiguous(), x, weight, None, stride, padding, dilation, ctx.transposed, output_padding, 1,
                [False, True, False])[1]
        elif ctx.needs_input_grad[0]:
            small, big = (xc, gc) if ctx.transposed else (gc, xc)
            active_grad = conv_weight_grad(pattern, small, big, geometry)
            grad_w = pattern.scatter(active_grad, torch.empty(ctx.weight_shape, device="meta"))
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad.sum((0, 2, 3))
        return grad_w, grad_x, grad_b, None, None, None, None


class _DirectConv(torch.autograd.Function):
    """A stride-1 Conv2d on its active weights in PyTorch's own (N, C, H, W) layout, by the direct
    kernels of _conv_direct.c (no layout copies, no im2col): the forward as the sparse runtime's;
    the input gradient the same kernel on the output's gradient with each kernel flipped and the
    channel axes exchanged (padding k - 1 - p); the weight gradient the products of the same input
    runs with the output gradient's rows, active entries only. ``dense_grad`` as for _SparseConv."""

    @staticmethod
    def forward(ctx, weight: Tensor, x: Tensor, bias: Tensor | None, pattern: ConvPattern,
                module_geometry: tuple, dense_grad: tuple | None = None) -> Tensor:
        kernel, padding = module_geometry
        values = pattern.values(weight)
        x = x.detach().contiguous()
        geometry = direct_geometry(tuple(x.shape), kernel, (1, 1), padding)
        y = conv_direct(pattern.by_out, values, None if bias is None else bias.detach().contiguous(), x, geometry)
        ctx.save_for_backward(x, weight if dense_grad else None)
        ctx.values, ctx.pattern, ctx.geometry, ctx.kernel, ctx.padding = values, pattern, geometry, kernel, padding
        ctx.dense_grad, ctx.weight_shape, ctx.has_bias = dense_grad, weight.shape, bias is not None
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):
        x, weight = ctx.saved_tensors
        pattern, geometry = ctx.pattern, ctx.geometry
        grad = grad.contiguous()
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[1]:
            (k_h, k_w), (p_h, p_w) = ctx.kernel, ctx.padding
            back = direct_geometry(tuple(grad.shape), ctx.kernel, (1, 1), (k_h - 1 - p_h, k_w - 1 - p_w))
            grad_x = conv_direct(pattern.flipped(), active.gather(ctx.values, pattern.perm), None, grad, back)
        if ctx.needs_input_grad[0] and ctx.dense_grad:
            stride, padding, dilation, output_padding = ctx.dense_grad
            grad_w = torch.ops.aten.convolution_backward(
                grad, x, weight, None, stride, padding, dilation, False, output_padding, 1, [False, True, False])[1]
        elif ctx.needs_input_grad[0]:
            grad_w = pattern.scatter(conv_direct_weight_grad(pattern, x, grad, geometry),
                                     torch.empty(ctx.weight_shape, device="meta"))
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad.sum((0, 2, 3))
        return grad_w, grad_x, grad_b, None, None, None


def direct_supports(module: nn.Module) -> bool:
    """Whether ``module`` (a layer :func:`supports`) can take the direct kernels: a Conv2d of
    stride 1 and dilation 1 whose padding is at most k - 1 (the input gradient's padding k - 1 - p)."""
    if not isinstance(module, nn.Conv2d) or supports(module) is not None:
        return False
    padding_fits = all(0 <= p <= k - 1 for p, k in zip(module.padding, module.kernel_size))
    return tuple(module.stride) == (1, 1) and tuple(module.dilation) == (1, 1) and padding_fits


def _geometry(batch: int, big: tuple[int, int], small: tuple[int, int], module: nn.Module) -> Geometry:
    return Geometry(batch, big[0], big[1], small[0], small[1], *module.stride, *module.padding, *module.dilation)


def conv2d(module: nn.Conv2d, x: Tensor, pattern: ConvPattern, *, dense_grad: bool = False,
           kernel: str = "sparse") -> Tensor:
    """``module(x)`` on the active weights (groups 1, zero padding); ``kernel``: "sparse" (the
    batch-innermost kernels of _conv.c) or "direct" (:class:`_DirectConv`, where :func:`direct_supports`)."""
    if kernel == "direct":
        dense = (module.stride, module.padding, module.dilation, (0, 0)) if dense_grad else None
        return _DirectConv.apply(module.weight, x, module.bias, pattern,
                                 (tuple(module.kernel_size), tuple(module.padding)), dense)
    out = _conv_out(x.shape[-2:], module.kernel_size, module.stride, module.padding, module.dilation)
    geometry = _geometry(x.shape[0], tuple(x.shape[-2:]), out, module)
    dense = (module.stride, module.padding, module.dilation, (0, 0)) if dense_grad else None
    return _SparseConv.apply(module.weight, x, module.bias, pattern, geometry, False, dense)


def conv_transpose2d(module: nn.ConvTranspose2d, x: Tensor, pattern: ConvPattern,
                     output_size: list[int] | None = None, *, dense_grad: bool = False) -> Tensor:
    """``module(x)`` on the active weights (groups 1, zero padding): the input gradient of the
    convolution it transposes."""
    h, w = x.shape[-2:]
    pad = module._output_padding(x, output_size, module.stride, module.padding, module.kernel_size, 2,
                                 module.dilation)
    size = tuple((n - 1) * s - 2 * p + d * (k - 1) + op + 1 for n, s, p, d, k, op in
                 zip((h, w), module.stride, module.padding, module.dilation, module.kernel_size, pad))
    geometry = _geometry(x.shape[0], size, (h, w), module)
    dense = (module.stride, module.padding, module.dilation, tuple(pad)) if dense_grad else None
    return _SparseConv.apply(module.weight, x, module.bias, pattern, geometry, True, dense)


def _conv_out(size, kernel, stride, padding, dilation) -> tuple[int, int]:
    dims = zip(size, kernel, stride, padding, dilation)
    return tuple((n + 2 * p - d * (k - 1) - 1) // s + 1 for n, k, s, p, d in dims)


def supports(module: nn.Module) -> str | None:
    """Why ``module`` cannot run on the sparse path (None: it can): the layer kinds and options
    implemented above."""
    if isinstance(module, nn.Linear):
        kind = None
    elif isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        if module.groups != 1:
            return "grouped convolution"
        if module.padding_mode != "zeros":
            return f"padding mode {module.padding_mode!r}"
        if isinstance(module.padding, str):
            return f"padding {module.padding!r}"
        kind = None
    else:
        return f"{type(module).__name__} layers"
    if torch.nn.utils.parametrize.is_parametrized(module) or hasattr(module, "weight_orig"):
        return "a reparametrised weight (spectral norm)"
    return kind


def pattern_for(module: nn.Module, mask: Tensor) -> Pattern | ConvPattern:
    """The index structure the module's sparse path reads."""
    if isinstance(module, nn.Linear):
        return Pattern(mask)
    return ConvPattern(mask, module.stride, module.dilation)


def kernels(module: nn.Module) -> tuple[str, ...]:
    """The sparse kernels a supported module can run on, the first the default ("sparse": the
    kernels of _conv.c and _simd_csr.c; "direct": :class:`_DirectConv`)."""
    return ("sparse", "direct") if direct_supports(module) else ("sparse",)


def forward(module: nn.Module, x: Tensor, pattern: Pattern | ConvPattern, *args, dense_grad: bool = False,
            kernel: str = "sparse") -> Tensor:
    """The sparse path of a supported module (:func:`supports`), with its :func:`pattern_for`, on
    one of its :func:`kernels`; ``dense_grad``: the weight's gradient at every entry, as the masked
    dense path gives it."""
    if kernel not in kernels(module):
        have = ", ".join(kernels(module))
        raise ValueError(f"{type(module).__name__} has no {kernel!r} sparse kernel; it has {have}")
    if isinstance(module, nn.Linear):
        return linear(module, x, pattern, dense_grad=dense_grad)
    if isinstance(module, nn.ConvTranspose2d):
        return conv_transpose2d(module, x, pattern, *args, dense_grad=dense_grad)
    return conv2d(module, x, pattern, dense_grad=dense_grad, kernel=kernel)
