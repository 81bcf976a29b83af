"""A layer's active weights as index structures for the training kernels.

A weight of any of the supported layers is a matrix A = weight.reshape(rows, -1): (out x in) for a
Linear layer, (out x in k k) for a convolution, (in x out k k) for a transposed one. Its mask gives
A's pattern in two orders: CSR (row by row, for A @ X and for the weight gradient) and the CSR of
A's transpose (for A^T @ X, the input gradient of a Linear layer or a convolution, the forward
of a transposed one). Both are built once per topology; a step gathers A's active values
(O(active weights)) and nothing else.
"""

from __future__ import annotations

import ctypes

import torch
from torch import Tensor

from sparsegan.kernels import active, library
from sparsegan.kernels.library import DirectGeometry


def available() -> bool:
    """Whether the training kernels can run here (the C extension built, AVX2 and FMA)."""
    return library() is not None


def _cuts(indptr: Tensor, blocks: int) -> Tensor:
    """Row cuts (int64, 0 .. rows, non-decreasing) of ``blocks`` row blocks with about equal active
    counts: balanced work per thread."""
    rows = indptr.numel() - 1
    nnz = int(indptr[-1])
    targets = torch.linspace(0, nnz, blocks + 1, dtype=torch.float64)
    cuts = torch.searchsorted(indptr.to(torch.float64), targets).clamp_(0, rows)
    cuts[0], cuts[-1] = 0, rows
    return torch.cummax(cuts, 0).values.contiguous()


def _indptr(keys: Tensor, n: int) -> Tensor:
    """int32 offsets (n + 1) of entries grouped by ``keys`` (0 .. n - 1), ascending."""
    indptr = torch.zeros(n + 1, dtype=torch.int32)
    indptr[1:] = torch.bincount(keys, minlength=n).cumsum(0).to(torch.int32)
    return indptr


class _Rows:
    """Entries grouped by row: ``indptr`` over ``nrows`` rows, and row cuts of balanced work per
    block count, kept."""

    def __init__(self, rows: Tensor, nrows: int):
        self.nrows = nrows
        self.indptr = _indptr(rows, nrows)
        self._cuts: dict[int, Tensor] = {}

    def cuts(self, blocks: int) -> Tensor:
        if blocks not in self._cuts:
            self._cuts[blocks] = _cuts(self.indptr, blocks)
        return self._cuts[blocks]


class _Csr(_Rows):
    """One order of a matrix pattern: indptr / indices (int32)."""

    def __init__(self, rows: Tensor, cols: Tensor, nrows: int):
        super().__init__(rows, nrows)
        self.indices = cols.to(torch.int32).contiguous()
        self.zeros = torch.zeros(nrows)  # the bias of a product without one


class Pattern:
    """The active entries of a (rows x cols) mask in CSR order and in the CSR order of its transpose.

    ``flat``: each active entry's index into the flattened weight, in CSR order (``values(weight)``
    gathers them); ``perm``: the CSR-order position of each entry of the transpose."""

    def __init__(self, mask: Tensor):
        if mask.dim() < 2:
            raise ValueError(f"a pattern needs a matrix mask, got shape {tuple(mask.shape)}")
        m = mask.detach().reshape(mask.shape[0], -1).cpu()
        self.shape = (m.shape[0], m.shape[1])
        rows, cols = m.nonzero(as_tuple=True)  # row-major: CSR order
        self.nnz = rows.numel()
        self.flat = (rows * self.shape[1] + cols).contiguous()
        self.csr = _Csr(rows, cols, self.shape[0])
        order = torch.argsort(cols * self.shape[0] + rows)  # column-major: CSR of the transpose
        self.perm = order.contiguous()
        self.csr_t = _Csr(cols[order], rows[order], self.shape[1])

    @property
    def density(self) -> float:
        return self.nnz / max(1, self.shape[0] * self.shape[1])

    def values(self, weight: Tensor) -> Tensor:
        """The active values of ``weight`` in CSR order (a copy)."""
        return active.gather(weight.detach().contiguous(), self.flat)

    def scatter(self, values: Tensor, like: Tensor) -> Tensor:
        """A tensor shaped as ``like``: ``values`` (CSR order) at the active entries, 0 elsewhere."""
        return active.scatter_zero(values.contiguous(), self.flat, like.shape)


def _threads() -> tuple[int, int]:
    threads = torch.get_num_threads()
    return threads, 4 * threads if threads > 1 else 1


def _dense_input(x: Tensor, rows: int) -> Tensor:
    if x.dtype != torch.float32 or x.device.type != "cpu" or x.dim() != 2 or x.shape[0] != rows:
        raise ValueError(f"expected a float32 CPU matrix of {rows} rows, got {x.dtype} {tuple(x.shape)} on {x.device}")
    return x.contiguous()


def spmm(pattern: Pattern, values: Tensor, x: Tensor, bias: Tensor | None = None, *,
         transpose: bool = False) -> Tensor:
    """``A @ x + bias`` (or ``A^T @ x + bias``) for A the pattern's matrix holding ``values`` (CSR
    order), x a float32 CPU matrix (A's columns, or rows, x n): a new (A's rows, or columns, x n)
    matrix. Multi-threaded over the output rows (torch's thread count)."""
    lib = library()
    csr = pattern.csr_t if transpose else pattern.csr
    data = active.gather(values, pattern.perm) if transpose else values.contiguous()
    k = pattern.shape[0] if transpose else pattern.shape[1]
    x = _dense_input(x, k)
    b = csr.zeros if bias is None else bias.detach().contiguous()
    y = torch.empty(csr.nrows, x.shape[1])
    threads, blocks = _threads()
    cuts = csr.cuts(blocks)
    lib.sg_csr_mm_parallel(csr.indptr.data_ptr(), csr.indices.data_ptr(), data.data_ptr(), b.data_ptr(), 0, 0.0,
                           x.data_ptr(), y.data_ptr(), x.shape[1], cuts.data_ptr(), blocks, threads)
    return y


def sddmm(pattern: Pattern, g: Tensor, x: Tensor) -> Tensor:
    """Per active entry (i, j) of the pattern, in CSR order: ``sum_c g[i, c] * x[j, c]``, the
    gradient of A's active weights for ``g`` = dL/d(A @ x). Only the active entries are computed."""
    lib = library()
    g = _dense_input(g, pattern.shape[0])
    x = _dense_input(x, pattern.shape[1])
    if g.shape[1] != x.shape[1]:
        raise ValueError(f"g and x differ in columns: {g.shape[1]} and {x.shape[1]}")
    out = torch.empty(pattern.nnz)
    threads, blocks = _threads()
    cuts = pattern.csr.cuts(blocks)
    lib.sg_sddmm_parallel(pattern.csr.indptr.data_ptr(), pattern.csr.indices.data_ptr(), g.data_ptr(), x.data_ptr(),
                          out.data_ptr(), g.shape[1], cuts.data_ptr(), blocks, threads)
    return out


class _ConvOrder(_Rows):
    """A convolution weight's active entries grouped by one of its two channel axes: ``indptr`` over
    that axis, and per entry the other channel (``ch``) and the kernel offsets (``khs``, ``kws``)."""

    def __init__(self, rows: Tensor, ch: Tensor, kh: Tensor, kw: Tensor, nrows: int):
        super().__init__(rows, nrows)
        self.ch, self.khs, self.kws = (t.to(torch.int32).contiguous() for t in (ch, kh, kw))


class ConvPattern:
    """The active entries of a (O, I, kh, kw) convolution mask (a transposed convolution's weight
    (in, out, kh, kw) is read the same way, its input channels as O) for the direct kernels of
    ``_conv.c``: grouped by O in the weight's own order (``by_out``; the values' order, ``flat``
    into the weight), and by I (``by_in``, the entries of the values' order at ``perm``), within
    each I by stride phase, (kh dilation mod stride, kw dilation mod stride): ``phase_ptr``."""

    def __init__(self, mask: Tensor, stride: tuple[int, int] = (1, 1), dilation: tuple[int, int] = (1, 1)):
        if mask.dim() != 4:
            raise ValueError(f"a convolution pattern needs a 4-d mask, got shape {tuple(mask.shape)}")
        m = mask.detach().cpu()
        self.shape = tuple(m.shape)
        self.stride = tuple(int(v) for v in stride)
        n_out, n_in, k_h, k_w = self.shape
        o, i, kh, kw = m.nonzero(as_tuple=True)  # row-major: grouped by o, the weight's order
        self.nnz = o.numel()
        self.flat = (((o * n_in + i) * k_h + kh) * k_w + kw).contiguous()
        self.by_out = _ConvOrder(o, i, kh, kw, n_out)
        phases = self.stride[0] * self.stride[1]
        phase = (kh * dilation[0]) % self.stride[0] * self.stride[1] + (kw * dilation[1]) % self.stride[1]
        order = torch.argsort((i * phases + phase) * (n_out * k_h * k_w) + (o * k_h + kh) * k_w + kw)
        self.perm = order.contiguous()
        self.by_in = _ConvOrder(i[order], o[order], kh[order], kw[order], n_in)
        self.phase_ptr = _indptr(i * phases + phase, n_in * phases)
        self._flipped: _ConvOrder | None = None

    @property
    def density(self) -> float:
        n_out, n_in, k_h, k_w = self.shape
        return self.nnz / max(1, n_out * n_in * k_h * k_w)

    def values(self, weight: Tensor) -> Tensor:
        return active.gather(weight.detach().contiguous(), self.flat)

    def scatter(self, values: Tensor, like: Tensor) -> Tensor:
        return active.scatter_zero(values.contiguous(), self.flat, like.shape)

    def flipped(self) -> _ConvOrder:
        """``by_in`` with each kernel flipped (kh -> k_h - 1 - kh, kw likewise): at stride 1 the
        CSR of the convolution that gives the input gradient (output channels as its inputs), for
        the direct kernel. Built on first use."""
        if self._flipped is None:
            if self.stride != (1, 1):
                raise ValueError(f"the flipped kernel is the input gradient at stride 1, not {self.stride}")
            n_in, (k_h, k_w) = self.shape[1], self.shape[2:]
            order = self.by_in
            rows = torch.repeat_interleave(torch.arange(n_in), (order.indptr[1:] - order.indptr[:-1]).long())
            self._flipped = _ConvOrder(rows, order.ch, k_h - 1 - order.khs, k_w - 1 - order.kws, n_in)
        return self._flipped


def conv_gather(order: _ConvOrder, values: Tensor, bias: Tensor | None, x: Tensor, geometry) -> Tensor:
    """A convolution's forward in CHWB layout: x (C_in, H, W, B) -> (rows, Ho, Wo, B) (_conv.c)."""
    y = torch.empty(order.nrows, geometry.out_h, geometry.out_w, geometry.batch)
    library().sg_conv_gather(order.indptr.data_ptr(), order.ch.data_ptr(), order.khs.data_ptr(),
                             order.kws.data_ptr(), values.data_ptr(), 0 if bias is None else bias.data_ptr(),
                             order.nrows, x.data_ptr(), y.data_ptr(), ctypes.byref(geometry), _threads()[0])
    return y


def conv_scatter(pattern: ConvPattern, values: Tensor, bias: Tensor | None, g: Tensor, geometry) -> Tensor:
    """A convolution's input gradient in CHWB layout: g (C_out, Ho, Wo, B) -> (C_in, H, W, B), through
    the entries grouped by input channel and stride phase (``values`` in that order)."""
    order = pattern.by_in
    if (geometry.stride_h, geometry.stride_w) != pattern.stride:
        raise ValueError(f"the pattern's phases are for stride {pattern.stride}, not "
                         f"{(geometry.stride_h, geometry.stride_w)}")
    x = torch.empty(order.nrows, geometry.in_h, geometry.in_w, geometry.batch)
    library().sg_conv_scatter(pattern.phase_ptr.data_ptr(), order.ch.data_ptr(), order.khs.data_ptr(),
                              order.kws.data_ptr(), values.data_ptr(), 0 if bias is None else bias.data_ptr(),
                              order.nrows, g.data_ptr(), x.data_ptr(), ctypes.byref(geometry), _threads()[0])
    return x


def conv_weight_grad(pattern: ConvPattern, g: Tensor, x: Tensor, geometry) -> Tensor:
    """The gradient of the active weights (values' order) from g (O, Ho, Wo, B) and x (I, H, W, B)."""
    out = torch.empty(pattern.nnz)
    threads, blocks = _threads()
    order = pattern.by_out
    cuts = order.cuts(blocks)
    library().sg_conv_weight_grad(order.indptr.data_ptr(), order.ch.data_ptr(), order.khs.data_ptr(),
                                  order.kws.data_ptr(), g.data_ptr(), x.data_ptr(), out.data_ptr(),
                                  ctypes.byref(geometry),
                                  cuts.data_ptr(), blocks, threads)
    return out


def direct_geometry(x_shape: tuple[int, ...], kernel: tuple[int, int], stride: tuple[int, int],
                    padding: tuple[int, int]) -> DirectGeometry:
    """The direct kernel's view of a Conv2d (dilation 1) on an (N, C, H, W) input."""
    n, c, h, w = x_shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    return DirectGeometry(n, c, h, w, (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1, kh, kw, sh, sw, ph, pw)


def conv_direct(order: _ConvOrder, values: Tensor, bias: Tensor | None, x: Tensor,
                geometry: DirectGeometry) -> Tensor:
    """A convolution in PyTorch's (N, C, H, W) layout by _conv_direct.c: x (N, C_in, H, W) ->
    (N, rows, Ho, Wo), ``values`` in ``order``'s entry order."""
    lib = library()
    y = torch.empty(geometry.batch, order.nrows, geometry.out_h, geometry.out_w)
    threads = _threads()[0]
    scratch = torch.empty(lib.sg_conv_direct_scratch(ctypes.byref(geometry), threads))
    lib.sg_conv_direct(order.indptr.data_ptr(), order.ch.data_ptr(), order.khs.data_ptr(), order.kws.data_ptr(),
                       values.data_ptr(), 0 if bias is None else bias.data_ptr(), 0, 0.0, order.nrows,
                       x.data_ptr(), scratch.data_ptr(), y.data_ptr(), ctypes.byref(geometry), threads)
    return y


def conv_direct_weight_grad(pattern: ConvPattern, x: Tensor, g: Tensor, geometry: DirectGeometry) -> Tensor:
    """The gradient of the active weights (values' order) from the layer's input x (N, C_in, H, W)
    and its output's gradient g (N, C_out, Ho, Wo), both contiguous, by _conv_direct.c."""
    lib = library()
    order = pattern.by_out
    out = torch.empty(pattern.nnz)
    threads = _threads()[0]
    scratch = torch.empty(lib.sg_conv_direct_scratch(ctypes.byref(geometry), threads))
    lib.sg_conv_direct_wgrad(order.indptr.data_ptr(), order.ch.data_ptr(), order.khs.data_ptr(), order.kws.data_ptr(),
                             order.nrows, x.data_ptr(), g.data_ptr(), scratch.data_ptr(), out.data_ptr(),
                             ctypes.byref(geometry), threads)
    return out
