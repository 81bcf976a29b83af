"""Linear, Conv2d and ConvTranspose2d computed on their active weights only, with autograd.

One autograd function does the work: ``Y = A @ X + b`` (or ``A^T @ X + b``) for A a layer's
weight as a matrix under its pattern (:mod:`.pattern`), X and Y with the features as rows. Its
backward gives X's gradient through the other order of the pattern and the weight's gradient at the
active entries only (a sampled dense-dense product); the weight's gradient leaves as a tensor of
the weight's shape, 0 outside the mask, so the optimizer, DDP and the masks' hooks see what the
masked dense path gives them. Each layer kind is a few layout operations around it (transposes,
``unfold`` / ``fold`` for the convolutions), which autograd differentiates itself.

The sparse path does 1 - density of a dense layer's multiply-adds forward, and as much again for
each of the two gradients; the layout operations copy activations (O(batch x features)), which is
what decides where it wins (:mod:`.planner`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sparsegan.sparse_compute.pattern import Pattern, sddmm, spmm


class _SparseProduct(torch.autograd.Function):
    """``A @ x + bias`` (``transpose``: ``A^T @ x + bias``); A = weight.reshape(rows, -1) on the
    pattern's entries. x: (A's columns, or rows) x n, features as rows. ``rows_out``: x arrives and
    the result leaves as n x features instead (a Linear layer's batch-major layout), transposed
    here so that the gradient handed back is contiguous as well (the elementwise backward of the
    activation before a layer runs several times slower on a transposed gradient)."""

    @staticmethod
    def forward(ctx, weight: Tensor, x: Tensor, bias: Tensor | None, pattern: Pattern, transpose: bool,
                rows_out: bool) -> Tensor:
        values = pattern.values(weight)
        xt = x.t().contiguous() if rows_out else x.contiguous()
        ctx.save_for_backward(xt)
        ctx.values, ctx.pattern, ctx.transpose, ctx.rows_out = values, pattern, transpose, rows_out
        ctx.weight_shape, ctx.has_bias = weight.shape, bias is not None
        y = spmm(pattern, values, xt, bias, transpose=transpose)
        return y.t().contiguous() if rows_out else y

    @staticmethod
    def backward(ctx, grad: Tensor):
        (x,) = ctx.saved_tensors
        pattern, values, transpose = ctx.pattern, ctx.values, ctx.transpose
        grad = grad.t().contiguous() if ctx.rows_out else grad.contiguous()
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[1]:
            grad_x = spmm(pattern, values, grad, transpose=not transpose)
            if ctx.rows_out:
                grad_x = grad_x.t().contiguous()
        if ctx.needs_input_grad[0]:
            # dL/dA[i, j] = sum_c dL/dY[i, c] X[j, c] (forward A X), or X[i, c] dL/dY[j, c] (forward A^T X)
            active = sddmm(pattern, x, grad) if transpose else sddmm(pattern, grad, x)
            grad_w = pattern.scatter(active, torch.empty(ctx.weight_shape, device="meta"))
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad.sum(1)
        return grad_w, grad_x, grad_b, None, None, None


def product(weight: Tensor, x: Tensor, bias: Tensor | None, pattern: Pattern, *, transpose: bool = False,
            rows_out: bool = False) -> Tensor:
    return _SparseProduct.apply(weight, x, bias, pattern, transpose, rows_out)


def linear(module: nn.Linear, x: Tensor, pattern: Pattern) -> Tensor:
    """``module(x)`` on the active weights: x (..., in) -> (..., out)."""
    lead = x.shape[:-1]
    y = product(module.weight, x.reshape(-1, x.shape[-1]), module.bias, pattern, rows_out=True)
    return y.reshape(*lead, y.shape[1])


def conv2d(module: nn.Conv2d, x: Tensor, pattern: Pattern) -> Tensor:
    """``module(x)`` on the active weights (groups 1, zero padding): im2col, then the product."""
    batch = x.shape[0]
    out_h, out_w = _conv_out(x.shape[-2:], module.kernel_size, module.stride, module.padding, module.dilation)
    cols = F.unfold(x, module.kernel_size, module.dilation, module.padding, module.stride)  # B x C k k x L
    xt = cols.transpose(0, 1).reshape(cols.shape[1], -1)
    yt = product(module.weight, xt, module.bias, pattern)  # out x B L
    return yt.reshape(yt.shape[0], batch, out_h, out_w).transpose(0, 1).contiguous()


def conv_transpose2d(module: nn.ConvTranspose2d, x: Tensor, pattern: Pattern,
                     output_size: list[int] | None = None) -> Tensor:
    """``module(x)`` on the active weights (groups 1, zero padding): the product with A^T gives each
    input pixel's k x k contributions, which ``fold`` sums into the output (col2im)."""
    batch, cin, h, w = x.shape
    pad = module._output_padding(x, output_size, module.stride, module.padding, module.kernel_size, 2,
                                 module.dilation)
    size = [(n - 1) * s - 2 * p + d * (k - 1) + op + 1 for n, s, p, d, k, op in
            zip((h, w), module.stride, module.padding, module.dilation, module.kernel_size, pad)]
    xt = x.transpose(0, 1).reshape(cin, batch * h * w)
    cols = product(module.weight, xt, None, pattern, transpose=True)  # out k k x B L
    cols = cols.reshape(cols.shape[0], batch, h * w).transpose(0, 1)
    y = F.fold(cols, size, module.kernel_size, module.dilation, module.padding, module.stride)
    return y if module.bias is None else y + module.bias.view(1, -1, 1, 1)


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


def forward(module: nn.Module, x: Tensor, pattern: Pattern, *args) -> Tensor:
    """The sparse path of a supported module (:func:`supports`)."""
    if isinstance(module, nn.Linear):
        return linear(module, x, pattern)
    if isinstance(module, nn.ConvTranspose2d):
        return conv_transpose2d(module, x, pattern, *args)
    return conv2d(module, x, pattern)
