"""The active-entries kernels of ``_active.c`` on torch tensors, with torch's index operations as
the fallback where the library is not built. Every tensor: float32 (int64 indices), contiguous, on
the CPU; the caller checks (these write through raw pointers)."""

from __future__ import annotations

import torch
from torch import Tensor

from sparsegan.kernels.library import library


def _threads() -> int:
    return torch.get_num_threads()


def gather(src: Tensor, index: Tensor) -> Tensor:
    """``src.reshape(-1)[index]`` as a new tensor."""
    lib = library()
    if lib is None:
        return src.reshape(-1).index_select(0, index)
    out = torch.empty(index.numel(), dtype=src.dtype)
    lib.sg_gather(src.data_ptr(), index.data_ptr(), index.numel(), out.data_ptr(), _threads())
    return out


def scatter_zero(values: Tensor, index: Tensor, shape: torch.Size) -> Tensor:
    """A new tensor of ``shape``: ``values`` at the flat ``index``, 0 elsewhere."""
    lib = library()
    if lib is None:
        return torch.zeros(shape, dtype=values.dtype).view(-1).index_copy_(0, index, values).view(shape)
    out = torch.empty(shape, dtype=values.dtype)
    lib.sg_scatter_zero(values.data_ptr(), index.data_ptr(), index.numel(), out.data_ptr(), out.numel())
    return out


def lerp_(ema: Tensor, src: Tensor, index: Tensor, weight: float) -> None:
    """``ema[index] = lerp(ema[index], src[index], weight)`` in place (flat indices)."""
    lib = library()
    if lib is None:
        flat = ema.view(-1)
        flat.index_copy_(0, index, flat.index_select(0, index).lerp_(src.reshape(-1).index_select(0, index), weight))
        return
    lib.sg_lerp_active(ema.data_ptr(), src.data_ptr(), index.data_ptr(), index.numel(), weight, _threads())


def adam_(p: Tensor, grad: Tensor, exp_avg: Tensor, exp_avg_sq: Tensor, index: Tensor, *, lr: float, beta1: float,
          beta2: float, eps: float, weight_decay: float, decoupled: bool, maximize: bool, step: float) -> bool:
    """One Adam (AdamW: ``decoupled``) step of the entries ``index``, in place; False where the
    library is not built (the caller steps with torch's operations)."""
    lib = library()
    if lib is None:
        return False
    lib.sg_adam_active(p.data_ptr(), grad.data_ptr(), exp_avg.data_ptr(), exp_avg_sq.data_ptr(), index.data_ptr(),
                       index.numel(), lr, beta1, beta2, eps, weight_decay, int(decoupled), int(maximize),
                       lr / (1 - beta1 ** step), (1 - beta2 ** step) ** 0.5, _threads())
    return True


def sgd_(p: Tensor, grad: Tensor, buf: Tensor | None, index: Tensor, *, lr: float, momentum: float, dampening: float,
         weight_decay: float, nesterov: bool, maximize: bool, first: bool) -> bool:
    """One SGD step of the entries ``index`` (``buf``: the momentum buffer, ``first``: new), in place;
    False where the library is not built."""
    lib = library()
    if lib is None:
        return False
    lib.sg_sgd_active(p.data_ptr(), grad.data_ptr(), 0 if buf is None else buf.data_ptr(), index.data_ptr(),
                      index.numel(), lr, momentum, dampening, weight_decay, int(nesterov), int(maximize), int(first),
                      _threads())
    return True


def transpose(x: Tensor, shape: tuple[int, ...] | None = None) -> Tensor:
    """``x.t().contiguous()`` for a float32 CPU matrix, several times faster at the sizes of a layer's
    activations (8 x 8 blocks through AVX registers); ``shape``: the result's shape when not the
    transpose's own (the same elements: a new tensor, not a view of one)."""
    lib = library()
    if lib is None or x.dtype != torch.float32 or x.device.type != "cpu" or x.dim() != 2:
        out = x.t().contiguous()
        return out if shape is None else out.reshape(shape).clone()
    x = x.contiguous()
    out = torch.empty(shape if shape is not None else (x.shape[1], x.shape[0]))
    lib.sg_transpose(x.data_ptr(), x.shape[0], x.shape[1], out.data_ptr())
    return out
