"""Sparse Conv2d layers: ``Y (C_out, N L) = A (C_out, C_in k k) @ unfold(X)``, batch-chunked."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sparsegan.inference.kernels import Workers
from sparsegan.inference.layer import SparseLayer, channel_major

UNFOLD_CHUNK = 2**24  # floats of unfolded input per chunk (64 MiB)


class SparseConv2d(SparseLayer):
    """A 1 x 1 stride-1 unpadded conv is a plain product on the channel-major input; any other
    unfolds its input in batch chunks. Bias and activation run as the product's row epilogue."""

    def __init__(self, dense: nn.Conv2d, mode: str = "auto", workers: Workers | None = None):
        super().__init__(dense, dense.weight.detach().reshape(dense.weight.shape[0], -1), mode, workers)

    def supports(self, x: Tensor) -> bool:
        return x.dim() == 4

    def sparse_forward(self, x: Tensor, name: str) -> Tensor:
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
