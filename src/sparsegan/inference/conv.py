"""Sparse Conv2d layers: ``Y (C_out, N L) = A (C_out, C_in k k) @ unfold(X)``, batch-chunked; or
the direct convolution of ``_conv_direct.c`` (``direct``), without im2col.

The im2col kernels copy each input pixel k x k times and then run a CSR product over all the
copies: on a U-Net's 3 x 3 convolutions (8-64 channels, 8-32 pixels square) they lost to oneDNN's
dense convolution at 4-12 % density. ``direct`` reads the input in place, image by image in the
(N, C, H, W) layout, vectorised over the output's width with each output tile in registers across
its channel's active weights (see the C file); auto mode times it with the others per input shape.
"""

from __future__ import annotations

import ctypes

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sparsegan.inference.kernels import PARALLEL_MIN_MACS_OPENMP, Workers
from sparsegan.inference.layer import SparseLayer, channel_major
from sparsegan.kernels.library import DirectGeometry, library

UNFOLD_CHUNK = 2**24  # floats of unfolded input per chunk (64 MiB)


class SparseConv2d(SparseLayer):
    """A 1 x 1 stride-1 unpadded conv is a plain product on the channel-major input; any other
    unfolds its input in batch chunks, or (``direct``) runs without unfolding. Bias and activation
    run as the product's row epilogue."""

    def __init__(self, dense: nn.Conv2d, mode: str = "auto", workers: Workers | None = None):
        super().__init__(dense, dense.weight.detach().reshape(dense.weight.shape[0], -1), mode, workers)
        # the direct kernel's CSR: per active entry its input channel and kernel offsets (int32),
        # in the weight's own (output channel-major) order, and its value
        w = self.A.dense.view(dense.weight.shape)
        o, i, kh, kw = w.nonzero(as_tuple=True)
        self._direct_indptr = torch.zeros(w.shape[0] + 1, dtype=torch.int32)
        self._direct_indptr[1:] = torch.bincount(o, minlength=w.shape[0]).cumsum(0).to(torch.int32)
        self._direct_entries = tuple(t.to(torch.int32).contiguous() for t in (i, kh, kw))
        self._direct_values = w[o, i, kh, kw].contiguous()
        self._geometries: dict[torch.Size, tuple[DirectGeometry, int, tuple[int, ...]]] = {}

    def supports(self, x: Tensor) -> bool:
        return x.dim() == 4

    def candidates(self) -> tuple[str, ...]:
        return super().candidates() + (("direct",) if library() is not None else ())

    def sparse_forward(self, x: Tensor, name: str) -> Tensor:
        if name == "direct":
            return self._direct(x)
        m: nn.Conv2d = self.dense
        kernel = self.A.kernel(name, self.epilogue)  # bias and activation included
        n, cin, h, w = x.shape
        kh, kw = m.kernel_size
        out_h = (h + 2 * m.padding[0] - (kh - 1) - 1) // m.stride[0] + 1
        out_w = (w + 2 * m.padding[1] - (kw - 1) - 1) // m.stride[1] + 1
        cout = m.out_channels
        if (kh, kw) == (1, 1) and m.stride == (1, 1) and m.padding == (0, 0):
            out = kernel(channel_major(x)).view(cout, out_h, out_w, n)
        else:
            out = torch.empty(cout, out_h, out_w, n, dtype=x.dtype)
            chunk = max(1, UNFOLD_CHUNK // max(1, cin * kh * kw * out_h * out_w))
            for i in range(0, n, chunk):
                cols = F.unfold(x[i : i + chunk], (kh, kw), 1, m.padding, m.stride)  # (n', C k k, L)
                X = cols.permute(1, 2, 0).reshape(cols.shape[1], -1)  # (C k k, L n')
                out[..., i : i + chunk] = kernel(X).view(cout, out_h, out_w, -1)
        return out.permute(3, 0, 1, 2)

    def _geometry(self, shape: torch.Size) -> tuple[DirectGeometry, tuple[int, ...]]:
        """The direct kernel's geometry for an input shape and the output shape, computed once per shape."""
        if shape not in self._geometries:
            m: nn.Conv2d = self.dense
            n, cin, h, w = shape
            (kh, kw), (sh, sw), (ph, pw) = m.kernel_size, m.stride, m.padding
            out_h, out_w = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
            g = DirectGeometry(n, cin, h, w, out_h, out_w, kh, kw, sh, sw, ph, pw)
            self._geometries[shape] = (g, (n, m.out_channels, out_h, out_w))
        return self._geometries[shape]

    def _direct(self, x: Tensor) -> Tensor:
        """The direct kernel: (N, C, H, W) in, a new (N, C_out, H_out, W_out) tensor out, bias and
        activation fused."""
        g, out_shape = self._geometry(x.shape)
        x = x.contiguous()  # a channel-major view (another sparse layer's output) is copied here
        ep = self.epilogue
        macs = self.A.nnz * out_shape[0] * out_shape[2] * out_shape[3]
        threads = 1 if macs < PARALLEL_MIN_MACS_OPENMP else self.workers.threads()
        scratch = torch.empty(library().sg_conv_direct_scratch(ctypes.byref(g), threads))  # per thread at batch >= 2x
        y = torch.empty(out_shape)
        ch, khs, kws = self._direct_entries
        library().sg_conv_direct(self._direct_indptr.data_ptr(), ch.data_ptr(), khs.data_ptr(), kws.data_ptr(),
                                 self._direct_values.data_ptr(),
                                 ep.bias.data_ptr() if ep is not None and ep.bias is not None else None,
                                 ep.code if ep is not None else 0, ep.slope if ep is not None else 0.0,
                                 out_shape[1], x.data_ptr(), scratch.data_ptr(), y.data_ptr(), ctypes.byref(g), threads)
        return y
