"""Sparse ConvTranspose2d layers: ``cols (C_out k k, N H W) = W^T (C_out k k, C_in) @ X (C_in, N H W)``,
then col2im, or the transposed conv split into its output phases (sub-pixel decomposition).

col2im is the k x k strided adds of the scatter (no unfold of the input at all), over contiguous
blocks of N values thanks to the batch-innermost layout (in NCHW order col2im cost several times
the product it follows). On a 1 x 1 input (DCGAN's first layer) col2im is a reshape: the layer
*is* a matmul.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor, nn

from sparsegan.inference import simd_kernel
from sparsegan.inference.kernels import Epilogue, Workers, csr_matvecs
from sparsegan.inference.layer import SparseLayer, channel_major, sparse_candidates

CHUNK_COLS = 1024  # columns per sparse product (blocks of input rows)
# ... and per dense product: a GEMM needs no cache blocking from here, and at batch 64 one input row
# is already 1,024+ columns, so 1,024-column chunks cost a Python call and k x k slice adds per row
DENSE_CHUNK_COLS = 2**16


class SparseConvTranspose2d(SparseLayer):
    """Two sparse algorithms, both timed against the dense module:

    * ``torch-csr`` / ``scipy-csr`` / ``numba-csr`` / ``simd-csr`` / ``simd-block`` / ``dense``:
      ``cols = W^T @ X`` then col2im (k x k strided adds);
    * ``scipy-phase`` / ``simd-phase`` / ``simd-block-phase`` (kernel divisible by stride, e.g.
      DCGAN's 4x4 / stride 2): the transposed conv split into its s x s output phases (sub-pixel
      decomposition). Output pixel ``o`` with ``(o + p) mod s = b`` only meets the taps ``s a + b``
      and input ``(o + p) div s - a``, so each phase is a sum of (k/s)^2 small products
      ``W[:, :, tap]^T @ shift(X)``. The shifts are free: the input is zero-padded once in
      (C, H, W, N) order and each product reads it at an offset, accumulating in place (scipy's CSR
      x dense kernel, this package's AVX2 one or its blocked one adds into its output). No cols
      buffer (k^2 x the input), no col2im adds: the accumulation stays inside the sparse product.

    The rows of ``W^T`` are (output channel, tap) pairs, so bias and activation follow col2im,
    except on a 1 x 1 input, where every row is one output pixel of one channel and they run as
    the product's epilogue (with the bias repeated over the k x k taps).
    """

    rows_are_channels = False

    def __init__(self, dense: nn.ConvTranspose2d, mode: str = "auto", workers: Workers | None = None):
        cin, cout, kh, kw = dense.weight.shape
        super().__init__(dense, dense.weight.detach().reshape(cin, cout * kh * kw).t(), mode, workers)
        self.cout, self.kh, self.kw = cout, kh, kw
        self.pixel_epilogue = self._pixel_epilogue()
        (sh, sw) = dense.stride
        self.phase_ok = kh % sh == 0 and kw % sw == 0 and csr_matvecs is not None
        self.taps: dict[tuple[int, int], sp.csr_matrix] = {}
        self._simd_taps: dict[tuple[int, int], simd_kernel.Accumulate] | None = None
        self._block_taps: dict[tuple[int, int], simd_kernel.Grouped] | None = None
        if self.phase_ok:
            w = dense.weight.detach().to(torch.float32)
            for ky in range(kh):
                for kx in range(kw):
                    tap = sp.csr_matrix(w[:, :, ky, kx].t().contiguous().numpy())  # (C_out, C_in)
                    if tap.nnz:
                        tap.sort_indices()
                        self.taps[(ky, kx)] = tap

    def _pixel_epilogue(self) -> Epilogue:
        taps = self.kh * self.kw
        bias = None if self.bias is None else self.bias.detach().repeat_interleave(taps)
        return Epilogue(bias, self.activation, rows=self.A.shape[0])

    def fuse(self, activation: nn.Module) -> None:
        super().fuse(activation)
        self.pixel_epilogue = self._pixel_epilogue()

    def supports(self, x: Tensor) -> bool:
        return x.dim() == 4

    def candidates(self) -> tuple[str, ...]:
        phase = ("scipy-phase",) + (("simd-phase",) if simd_kernel.available() else ())
        phase += ("simd-block-phase",) if self.block_taps() else ()
        return sparse_candidates() + self.block_candidates() + ("dense",) + (phase if self.phase_ok else ())

    def block_taps(self) -> dict[tuple[int, int], simd_kernel.Grouped]:
        """The taps as the blocked kernel's accumulating products, where every tap's (C_out, C_in)
        matrix is made of row groups (block masks: R output channels sharing an input); else empty."""
        if self._block_taps is None:
            self._block_taps = {}
            if self.phase_ok and simd_kernel.available() and self.taps:
                dense = {key: tap.toarray().astype(np.float32) for key, tap in self.taps.items()}
                sizes = {simd_kernel.group_size(a) for a in dense.values()}
                if None not in sizes:
                    size = min(sizes)
                    self._block_taps = {key: simd_kernel.Grouped(a, size) for key, a in dense.items()}
        return self._block_taps

    def simd_taps(self) -> dict[tuple[int, int], simd_kernel.Accumulate]:
        """The taps as this package's AVX2 accumulating products (built on first use)."""
        if self._simd_taps is None:
            self._simd_taps = {key: simd_kernel.Accumulate(tap.indptr.astype(np.int32), tap.indices.astype(np.int32),
                                                          tap.data.astype(np.float32), tap.shape[1])
                               for key, tap in self.taps.items()}
        return self._simd_taps

    def columns(self, x: Tensor) -> int:
        return min(x.numel() // max(1, x.shape[1]), max(CHUNK_COLS, x.shape[0] * x.shape[-1]))

    def run(self, x: Tensor, name: str) -> Tensor:
        if name in ("scipy-phase", "simd-phase", "simd-block-phase"):
            return self.phase_forward(x, kernel=name.removesuffix("-phase"))
        return super().run(x, name)

    def sparse_forward(self, x: Tensor, name: str) -> Tensor:
        m: nn.ConvTranspose2d = self.dense
        n, cin, h, w = x.shape
        (sh, sw), (ph, pw), (oph, opw) = m.stride, m.padding, m.output_padding
        kh, kw, cout = self.kh, self.kw, self.cout
        full_h, full_w = (h - 1) * sh + kh + oph, (w - 1) * sw + kw + opw
        if h == 1 and w == 1 and oph == 0 and opw == 0 and ph == 0 and pw == 0:
            # A transposed conv of a 1x1 input is a matmul: the columns already are the pixels,
            # and bias and activation are the product's epilogue.
            out = self.A.kernel(name, self.pixel_epilogue)(channel_major(x)).view(cout, kh, kw, n)
            return out.permute(3, 0, 1, 2)
        kernel = self.A.kernel(name)
        # cols = W^T @ X in blocks of input rows (<= CHUNK_COLS columns each: sparse kernels
        # stay in their fast regime and the block's cols stay in cache), each block's col2im
        # done at once: every kernel tap's plane added into the strided output positions, with
        # the batch innermost so each add runs over contiguous blocks of N values.
        xs = x.permute(1, 2, 3, 0)  # (C_in, H, W, N), a free view after a sparse layer
        rows = max(1, (DENSE_CHUNK_COLS if name == "dense" else CHUNK_COLS) // (w * n))
        full = torch.zeros(cout, full_h, full_w, n, dtype=x.dtype)
        for h0 in range(0, h, rows):
            h1 = min(h, h0 + rows)
            cols = kernel(xs[:, h0:h1].reshape(cin, -1)).view(cout, kh, kw, h1 - h0, w, n)
            for ky in range(kh):
                y0 = ky + h0 * sh
                for kx in range(kw):
                    full[:, y0 : y0 + (h1 - h0 - 1) * sh + 1 : sh, kx : kx + (w - 1) * sw + 1 : sw] += cols[:, ky, kx]
        out = full[:, ph : full_h - ph, pw : full_w - pw]
        if not out.is_contiguous():
            out = out.contiguous()
        if self.bias is not None:
            out += self.bias.view(cout, 1, 1, 1)
        return self.finish(out).permute(3, 0, 1, 2)

    def phase_forward(self, x: Tensor, kernel: str = "scipy") -> Tensor:
        """The transposed conv by output phases; each tap's product by ``kernel``: scipy, simd
        (the AVX2 CSR kernel) or simd-block (the blocked kernel)."""
        m: nn.ConvTranspose2d = self.dense
        n, cin, h, w = x.shape
        (sh, sw), (ph, pw), (oph, opw) = m.stride, m.padding, m.output_padding
        kh, kw, cout = self.kh, self.kw, self.cout
        mh, mw = kh // sh, kw // sw  # taps per phase and dimension
        out_h, out_w = (h - 1) * sh - 2 * ph + kh + oph, (w - 1) * sw - 2 * pw + kw + opw
        ty, tx = (out_h - 1 + ph) // sh + 1, (out_w - 1 + pw) // sw + 1  # phase-grid size
        hp, wp = max(h, ty) + mh - 1, max(w, tx) + mw - 1  # zero-padded input, (C, hp, wp, N)
        plane = hp * wp * n
        tail = ((mh - 1) * wp + (mw - 1)) * n  # the last channel's shifted reads stay in bounds
        xp = torch.zeros(cin * plane + tail, dtype=torch.float32)
        xp[: cin * plane].view(cin, hp, wp, n)[:, mh - 1 : mh - 1 + h, mw - 1 : mw - 1 + w] = x.permute(1, 2, 3, 0)
        xn = xp.numpy()
        out = torch.empty(cout, out_h, out_w, n, dtype=torch.float32)
        phases = []
        for by in range(sh):
            t0y = -((by - ph) // sh)  # first phase-grid row whose output row is >= 0
            oy0 = sh * t0y + by - ph
            for bx in range(sw):
                t0x = -((bx - pw) // sw)
                ox0 = sw * t0x + bx - pw
                if oy0 < out_h and ox0 < out_w:
                    phases.append((by, bx, t0y, oy0, t0x, ox0))

        simd_taps = {"simd": self.simd_taps, "simd-block": lambda: {k: t.accumulate for k, t in
                                                                    self.block_taps().items()}}.get(kernel, dict)()

        def phase(ph_: tuple) -> None:  # the phases write disjoint outputs: run them in parallel
            by, bx, t0y, oy0, t0x, ox0 = ph_
            cy, cx = len(range(oy0, out_h, sh)), len(range(ox0, out_w, sw))
            y = np.zeros(cout * plane, dtype=np.float32)
            for ay in range(mh):
                for ax in range(mw):
                    key = (sh * ay + by, sw * ax + bx)
                    if key in self.taps:
                        off = ((mh - 1 - ay) * wp + (mw - 1 - ax)) * n
                        if simd_taps:
                            simd_taps[key](xn, off, y, plane)
                        else:
                            tap = self.taps[key]
                            csr_matvecs(cout, cin, plane, tap.indptr, tap.indices, tap.data, xn[off:], y)
            yt = torch.from_numpy(y).view(cout, hp, wp, n)
            out[:, oy0::sh, ox0::sw] = yt[:, t0y : t0y + cy, t0x : t0x + cx]

        self.workers.map(phase, phases)
        if self.bias is not None:
            out += self.bias.view(cout, 1, 1, 1)
        return self.finish(out).permute(3, 0, 1, 2)
