"""Sparse inference: a generator whose Linear / Conv2d / ConvTranspose2d layers run as CSR x dense
products where that is measured to be faster, dense otherwise.

How the layers are computed (weight matrix ``A`` on the left, activations row-major on the right,
so every active weight is one contiguous axpy over batch x pixels; see :mod:`.kernels`):

* Linear:           ``Y (out, N) = A (out, in) @ X (in, N)``
* ConvTranspose2d:  ``cols (C_out k k, N H W) = W^T (C_out k k, C_in) @ X (C_in, N H W)``, then
  col2im: the k x k strided adds of the scatter (no unfold of the input at all). On a 1 x 1 input
  (DCGAN's first layer) col2im is a reshape: the layer *is* a matmul.
* Conv2d:           ``Y (C_out, N L) = A (C_out, C_in k k) @ unfold(X)`` (batch-chunked).

Activations travel *channel-major, batch-innermost* between sparse layers: a layer returns an
(N, C, H, W) *view* of a (C, H, W, N) buffer, and the next sparse layer reads that buffer as its
(C, H W N) right-hand side without a copy; element-wise layers in between keep the strides. With
the batch innermost, col2im's strided adds run over contiguous blocks of N values (NCHW order
made col2im 5-8x slower than the matmul it follows). An eval-mode BatchNorm right after a layer in an
``nn.Sequential`` is folded into that layer's rows (exact up to float rounding).

Which kernel a layer runs (the original dense module, torch's, scipy's or this package's numba
CSR product, or a dense GEMM in this layout) is chosen per layer
and per input shape by timing them on the first input of that shape (``mode="auto"``); a fixed
``mode`` forces one. Outputs equal the dense masked generator's in eval mode up to float rounding.
"""

from __future__ import annotations

import abc
import copy
from typing import Callable

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize

from sparsegan.inference import csr_kernel, simd_kernel
from sparsegan.inference.kernels import PARALLEL_MIN_MACS_OPENMP, Epilogue, SparseMatrix, Workers, csr_matvecs, fastest
from sparsegan.inference.plans import PlanCache

MODES = ("auto", "module", "torch-csr", "scipy-csr", "numba-csr", "simd-csr", "simd-block", "scipy-phase", "simd-phase",
         "simd-block-phase", "dense")
# "dense" is the masked weight as a dense GEMM in this runtime's layout: never sparse, but for
# layers the distribution keeps dense (ERK: DCGAN's last layer) it beats PyTorch's transposed conv.

# torch's CPU CSR x dense product degrades sharply with many columns (e.g. 23 ms vs 1 ms for
# scipy on a 512 x 64 matrix at 5 % density times 64 x 4096); beyond this it is not a candidate.
TORCH_CSR_MAX_COLS = 2048
UNFOLD_CHUNK = 2**24  # floats of unfolded input per chunk (64 MiB)
CHUNK_COLS = 1024  # transposed convs: columns per sparse product (blocks of input rows)
# ... and per dense product: a GEMM needs no cache blocking from here, and at batch 64 one input row
# is already 1,024+ columns, so 1,024-column chunks cost a Python call and k x k slice adds per row
DENSE_CHUNK_COLS = 2**16


def sparse_candidates() -> tuple[str, ...]:
    """The CSR kernels auto mode times; this package's own where they can run (numba imports; the
    AVX2 extension was built and the CPU has AVX2 and FMA)."""
    return (("torch-csr", "scipy-csr") + (("numba-csr",) if csr_kernel.available() else ())
            + (("simd-csr",) if simd_kernel.available() else ()))


def _effective(module: nn.Module) -> nn.Module:
    """A copy whose weight is a plain parameter: the weight the layer computes with (spectral norm
    applied with its stored vectors). Parametrized layers are rebuilt, not un-parametrized in
    place: their dynamically created class is shared with the original module."""
    if not parametrize.is_parametrized(module, "weight"):
        return copy.deepcopy(module)
    m = module
    bias = m.bias is not None
    if isinstance(m, nn.Linear):
        new = nn.Linear(m.in_features, m.out_features, bias=bias)
    elif isinstance(m, nn.ConvTranspose2d):
        new = nn.ConvTranspose2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding,
                                 m.output_padding, m.groups, bias, m.dilation, m.padding_mode)
    else:
        new = nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, m.dilation,
                        m.groups, bias, m.padding_mode)
    with torch.no_grad():
        new.weight = nn.Parameter(m.weight.detach().clone())
        if bias:
            new.bias = nn.Parameter(m.bias.detach().clone())
    return new.to(m.weight.device)


def _out_axis(m: nn.Module) -> int:
    return 1 if isinstance(m, nn.ConvTranspose2d) else 0


def fold_batchnorm(layer: nn.Module, bn: nn.modules.batchnorm._BatchNorm) -> nn.Module:
    """``bn(layer(x))`` in eval mode as one layer: output channel c scaled by gamma_c / sqrt(var_c + eps)."""
    m = _effective(layer)
    with torch.no_grad():
        scale = (bn.weight if bn.affine else torch.ones_like(bn.running_var)) / torch.sqrt(bn.running_var + bn.eps)
        shift = (bn.bias if bn.affine else torch.zeros_like(bn.running_mean)) - bn.running_mean * scale
        shape = [1] * m.weight.dim()
        shape[_out_axis(m)] = -1
        m.weight.mul_(scale.view(shape))
        bias = m.bias if m.bias is not None else torch.zeros_like(scale)
        m.bias = nn.Parameter(bias * scale + shift)
    return m


class SparseLayer(nn.Module, abc.ABC):
    """Wraps a dense layer; runs it sparse where measured faster for the input's shape."""

    def __init__(self, dense: nn.Module, matrix: Tensor, mode: str = "auto", workers: Workers | None = None):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; valid: {', '.join(MODES)}")
        self.dense = dense
        self.workers = workers or Workers()
        self.A = SparseMatrix(matrix, self.workers)
        self.mode = mode
        self.allowed: tuple[str, ...] | None = None  # restrict auto mode's candidates (benchmarks)
        self.choice: dict[tuple, str] = {}
        self.timings: dict[tuple, dict[str, float]] = {}
        self.activation: nn.Module | None = None  # set by fuse(): applied after the layer
        self.plans: dict[torch.Size, Callable[[Tensor], Tensor]] = {}
        self.epilogue = Epilogue(self.bias, rows=self.A.shape[0]) if self.rows_are_channels else None
        self.origin: str | None = None  # the wrapped layer's name in the generator (set by sparsify)
        self.plan_cache: PlanCache | None = None  # auto mode's choices shared with other processes
        self.from_cache: set[tuple] = set()  # input shapes whose kernel came from the plan cache

    # Whether the weight matrix's rows are the output channels (Linear, Conv2d): then bias and
    # activation run as the product's row epilogue, fused into the numba kernel.
    rows_are_channels = True

    @property
    def bias(self) -> Tensor | None:
        return self.dense.bias

    def fuse(self, activation: nn.Module) -> None:
        """Take over the activation that follows this layer (the caller removes it from the net)."""
        self.activation = activation
        if self.rows_are_channels:
            self.epilogue = Epilogue(self.bias, activation, rows=self.A.shape[0])
        self.choice.clear()
        self.plans.clear()

    def finish(self, out: Tensor) -> Tensor:
        """The activation, where the product's epilogue did not apply it."""
        return self.activation(out) if self.activation is not None else out

    @abc.abstractmethod
    def sparse_forward(self, x: Tensor, name: str) -> Tensor:
        """The layer's forward (activation included) with its weight product done by the kernel
        ``name`` (each subclass: Linear, Conv2d, ConvTranspose2d)."""

    def supports(self, x: Tensor) -> bool:
        return True

    def candidates(self) -> tuple[str, ...]:
        return sparse_candidates() + self.block_candidates() + ("dense",)

    def block_candidates(self) -> tuple[str, ...]:
        """The blocked kernel, where this layer's matrix is made of row groups (block masks)."""
        return ("simd-block",) if self.A.group_size is not None else ()

    def columns(self, x: Tensor) -> int:
        """Columns of the right-hand side one kernel call sees."""
        return x.numel() // max(1, x.shape[1])

    def run(self, x: Tensor, name: str) -> Tensor:
        if name == "module":
            return self.finish(self.dense(x))
        return self.sparse_forward(x, name)

    def forward(self, x: Tensor) -> Tensor:
        plan = self.plans.get(x.shape)
        if plan is None:
            plan = self.plans[x.shape] = self.plan(self._choose(x, tuple(x.shape)))
        return plan(x)

    def plan(self, name: str) -> Callable[[Tensor], Tensor]:
        """The forward with kernel ``name``, bound once per input shape: at batch 64 a sparse
        layer's product takes 0.05-0.2 ms, so per-call Python work is worth binding away."""
        return lambda x: self.run(x, name)

    def _choose(self, x: Tensor, key: tuple) -> str:
        if not self.supports(x) or x.device.type != "cpu" or x.dtype != torch.float32:
            name = "module"  # the sparse kernels are float32 CPU kernels
        elif self.mode != "auto":  # a forced kernel; layers that lack it use scipy's CSR
            name = self.mode if self.mode in (*self.candidates(), "module", "dense") else "scipy-csr"
        else:
            cands = {"module": lambda: self.run(x, "module")}
            cols = self.columns(x)
            for k in self.candidates():
                if self.allowed is not None and k not in self.allowed:
                    continue
                if k == "torch-csr" and cols > TORCH_CSR_MAX_COLS:
                    continue  # measured 10-100x slower than scipy there: not worth timing
                cands[k] = lambda k=k: self.run(x, k)
            cache_key = self._cache_key(x, cands) if self.plan_cache is not None and self.plan_cache.enabled else None
            cached = self.plan_cache.get(cache_key) if cache_key is not None else None
            if cached in cands:  # another process (or sparsify call) timed this layer and shape
                name = cached
                self.from_cache.add(key)
            else:
                name, self.timings[key] = fastest(cands, repeats=5)
                if cache_key is not None:
                    self.plan_cache.put(cache_key, name)
        self.choice[key] = name
        return name

    def _cache_key(self, x: Tensor, cands: dict) -> str:
        """What the choice depends on (plans module): the layer's configuration and non-zeros, the
        fused activation, the input shape, the threads, the candidates."""
        act = csr_kernel.activation_code(self.activation) if self.activation is not None else None
        return self.plan_cache.key(kind=type(self).__name__, layer=self.dense.extra_repr(), nnz=self.A.nnz,
                                   activation=act, input=list(x.shape), threads=torch.get_num_threads(),
                                   candidates=sorted(cands))

    def extra_repr(self) -> str:
        act = f", activation={type(self.activation).__name__}" if self.activation is not None else ""
        return f"density={self.A.density:.4f}, choice={self.choice}{act}"


class SparseLinear(SparseLayer):
    def __init__(self, dense: nn.Linear, mode: str = "auto", workers: Workers | None = None):
        super().__init__(dense, dense.weight, mode, workers)

    def supports(self, x: Tensor) -> bool:
        return x.dim() == 2

    def sparse_forward(self, x: Tensor, name: str) -> Tensor:
        return self.plan(name)(x)

    def plan(self, name: str) -> Callable[[Tensor], Tensor]:
        if name == "module":
            return super().plan(name)
        kernel = self.A.kernel(name, self.epilogue)

        def forward(x: Tensor) -> Tensor:
            X = x.t()  # (in, N): free when x is the transposed view a previous sparse layer returned
            return kernel(X if X.is_contiguous() else X.contiguous()).t()  # (out, N) -> (N, out) view

        return forward


class LinearChain(nn.Module):
    """Consecutive :class:`SparseLinear` layers of an ``nn.Sequential`` (nothing left between them
    once BN is folded and activations fused: an MLP generator's body). Each layer still picks its
    kernel for its own input shape; then every run of two or more consecutive layers that picked
    the AVX2 kernel is bound into one C call (:class:`simd_kernel.Chain`). At batch 1 a layer's
    product takes 5-30 us and the Python around it ~10 us, so the run pays that once. Where some
    layer picked another kernel, all of them in one call is timed against that plan too (auto
    mode), and the faster kept."""

    def __init__(self, layers: list[SparseLinear]):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.plans: dict[tuple, Callable[[Tensor], Tensor]] = {}
        self.chosen: str | None = None  # "per-layer" or "one-call", where the two were timed
        self.timings: dict[str, float] = {}

    def forward(self, x: Tensor) -> Tensor:
        key = (x.shape, torch.get_num_threads())
        plan = self.plans.get(key)
        if plan is None:
            plan = self.plans[key] = self._plan(x)
        return plan(x)

    def _plan(self, x: Tensor) -> Callable[[Tensor], Tensor]:
        x0, shapes = x, []
        for layer in self.layers:  # each layer chooses its kernel on its own input, as alone
            shapes.append(tuple(x.shape))
            x = layer(x)
        per_layer = self._steps([layer.choice.get(shape) == "simd-csr" for layer, shape in zip(self.layers, shapes)],
                                shapes)
        if all(layer.choice.get(shape) == "simd-csr" for layer, shape in zip(self.layers, shapes)) or not (
                self._auto() and x0.device.type == "cpu" and x0.dtype == torch.float32):
            return per_layer
        # A layer that chose another kernel alone (a small, denser first layer at batch 1) may still
        # be faster inside the one C call, which saves the Python around it: time both plans.
        whole = self._steps([True] * len(self.layers), shapes)
        name, self.timings = fastest({"per-layer": lambda: per_layer(x0), "one-call": lambda: whole(x0)}, repeats=5)
        self.chosen = name
        return whole if name == "one-call" else per_layer

    def _auto(self) -> bool:
        return all(layer.mode == "auto" and (layer.allowed is None or "simd-csr" in layer.allowed)
                   for layer in self.layers)

    def _steps(self, in_chain: list[bool], shapes: list[tuple]) -> Callable[[Tensor], Tensor]:
        """The forward with the flagged layers' consecutive runs (two or more) each in one C call."""
        steps: list[Callable[[Tensor], Tensor]] = []
        run: list[SparseLinear] = []

        def flush() -> None:
            if len(run) >= 2:
                cols = shapes[self._index(run[0])][0]
                threads = run[0].workers.threads()
                chain = simd_kernel.Chain([layer.A.simd_bound(layer.epilogue) for layer in run], cols, threads,
                                          [layer.A.nnz * cols >= PARALLEL_MIN_MACS_OPENMP for layer in run])
                steps.append(lambda h: chain(h.t()).t())  # (N, in) -> (N, out), a view as SparseLinear's
            else:
                steps.extend(run)
            run.clear()

        for layer, chained in zip(self.layers, in_chain):
            if chained:
                run.append(layer)
            else:
                flush()
                steps.append(layer)
        flush()

        def forward(h: Tensor) -> Tensor:
            for step in steps:
                h = step(h)
            return h

        return forward

    def _index(self, layer: SparseLinear) -> int:
        return next(i for i, m in enumerate(self.layers) if m is layer)


def _channel_major(x: Tensor) -> Tensor:
    """(C, H*W*N) from an (N, C, H, W) tensor; no copy when x is a view of a (C, H, W, N) buffer."""
    return x.permute(1, 2, 3, 0).reshape(x.shape[1], -1)


class SparseConvTranspose2d(SparseLayer):
    """Two sparse algorithms, both timed against the dense module:

    * ``torch-csr`` / ``scipy-csr`` / ``numba-csr`` / ``simd-csr``: ``cols = W^T @ X`` then col2im
      (k x k strided adds);
    * ``scipy-phase`` / ``simd-phase`` (kernel divisible by stride, e.g. DCGAN's 4x4 / stride 2): the transposed
      conv split into its s x s output phases (sub-pixel decomposition). Output pixel ``o`` with
      ``(o + p) mod s = b`` only meets the taps ``s a + b`` and input ``(o + p) div s - a``, so each
      phase is a sum of (k/s)^2 small products ``W[:, :, tap]^T @ shift(X)``. The shifts are free:
      the input is zero-padded once in (C, H, W, N) order and each product reads it at an offset,
      accumulating in place (scipy's CSR x dense kernel, or this package's AVX2 one, adds into its
      output). No cols buffer
      (k^2 x the input), no col2im adds: the accumulation stays inside the sparse product.

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
            out = self.A.kernel(name, self.pixel_epilogue)(_channel_major(x)).view(cout, kh, kw, n)
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


class SparseConv2d(SparseLayer):
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
            out = kernel(_channel_major(x)).view(cout, out_h, out_w, n)
        else:
            out = torch.empty(cout, out_h, out_w, n, dtype=x.dtype)
            chunk = max(1, UNFOLD_CHUNK // max(1, cin * kh * kw * out_h * out_w))
            for i in range(0, n, chunk):
                cols = F.unfold(x[i : i + chunk], (kh, kw), 1, m.padding, m.stride)  # (n', C k k, L)
                X = cols.permute(1, 2, 0).reshape(cols.shape[1], -1)  # (C k k, L n')
                out[..., i : i + chunk] = kernel(X).view(cout, out_h, out_w, -1)
        return out.permute(3, 0, 1, 2)


def _convertible(m: nn.Module) -> bool:
    if isinstance(m, nn.Linear):
        return True
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        return m.groups == 1 and m.dilation == (1, 1) and m.padding_mode == "zeros" and isinstance(m.padding, tuple)
    return False


def _wrap(m: nn.Module, mode: str, workers: Workers) -> SparseLayer:
    m = _effective(m)
    if isinstance(m, nn.Linear):
        return SparseLinear(m, mode, workers)
    if isinstance(m, nn.ConvTranspose2d):
        return SparseConvTranspose2d(m, mode, workers)
    return SparseConv2d(m, mode, workers)


def _foldable(bn: nn.Module) -> bool:
    return (isinstance(bn, (nn.BatchNorm1d, nn.BatchNorm2d)) and bn.track_running_stats
            and bn.running_mean is not None)


@torch.no_grad()
def sparsify(G: nn.Module, mode: str = "auto", *, fold_bn: bool = True, fuse_activations: bool = True,
             min_sparsity: float = 0.0, kernels: tuple[str, ...] | None = None, chain_linear: bool = True,
             plan_cache: PlanCache | bool = True) -> nn.Module:
    """A copy of ``G`` (eval mode) with its Linear / Conv2d / ConvTranspose2d layers wrapped as
    :class:`SparseLayer` s. Layers denser than ``1 - min_sparsity`` stay plain dense modules.
    With ``fuse_activations``, a ReLU / LeakyReLU / Tanh that follows a wrapped layer in an
    ``nn.Sequential`` (after BN folding) moves into the layer, where the numba kernel runs it as
    the product's epilogue. ``kernels`` limits what auto mode times besides the module (e.g.
    ("dense",): the layout alone). With ``chain_linear``, consecutive Linear layers of a Sequential
    that chose the AVX2 kernel run as one C call (:class:`LinearChain`); a forward that indexes the
    Sequential instead of calling it whole needs ``chain_linear=False``. ``plan_cache``: where auto
    mode's choices are remembered for other processes (True: :meth:`PlanCache.default`, the user's
    cache folder unless ``SPARSEGAN_PLAN_CACHE`` says otherwise; False: calibrate every time)."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; valid: {', '.join(MODES)}")
    G = copy.deepcopy(G).eval()
    workers = Workers()  # one thread pool shared by every layer
    cache = PlanCache.default() if plan_cache is True else (plan_cache or None)
    if fold_bn:
        for seq in [m for m in G.modules() if isinstance(m, nn.Sequential)]:
            names = list(seq._modules)
            for a, b in zip(names, names[1:]):
                layer, bn = seq._modules[a], seq._modules[b]
                if _convertible(layer) and _foldable(bn):
                    seq._modules[a] = fold_batchnorm(layer, bn)
                    seq._modules[b] = nn.Identity()
    names = {m: n for n, m in G.named_modules()}
    for parent in list(G.modules()):
        for name, child in list(parent.named_children()):
            if _convertible(child):
                w = child.weight.detach()
                if float((w == 0).float().mean()) >= min_sparsity:
                    layer = _wrap(child, mode, workers)
                    layer.allowed = kernels
                    layer.plan_cache = cache
                    layer.origin = f"{names[parent]}.{name}" if names[parent] else name
                    setattr(parent, name, layer)
    if fuse_activations:
        for seq in [m for m in G.modules() if isinstance(m, nn.Sequential)]:
            names = [n for n in seq._modules if not isinstance(seq._modules[n], nn.Identity)]
            for a, b in zip(names, names[1:]):
                layer, act = seq._modules[a], seq._modules[b]
                if isinstance(layer, SparseLayer) and csr_kernel.activation_code(act) is not None:
                    layer.fuse(act)
                    # an Identity in its place, not a deletion: a forward that indexes the
                    # Sequential (seq[1](seq[0](x))) stays correct
                    seq._modules[b] = nn.Identity()
    if chain_linear and simd_kernel.available():
        for seq in [m for m in G.modules() if isinstance(m, nn.Sequential)]:
            _chain_linear_runs(seq)
    return G


def _chain_linear_runs(seq: nn.Sequential) -> None:
    """Runs of two or more SparseLinear children with only Identities between them become one
    :class:`LinearChain` in the first one's place, for a forward that calls the Sequential as a
    whole; the Identities (folded BNs, fused activations, chained layers) are then removed."""
    names = [n for n in seq._modules if not isinstance(seq._modules[n], nn.Identity)]
    runs, current = [], []
    for n in names:
        if isinstance(seq._modules[n], SparseLinear):
            current.append(n)
        else:
            runs.append(current)
            current = []
    runs.append(current)
    chained = [r for r in runs if len(r) >= 2]
    for run in chained:
        seq._modules[run[0]] = LinearChain([seq._modules[n] for n in run])
        for n in run[1:]:
            seq._modules[n] = nn.Identity()
    if chained:  # the forward calls the Sequential whole (see sparsify): its placeholders can go, ~1 us each
        for n in [n for n, m in seq._modules.items() if isinstance(m, nn.Identity)]:
            del seq._modules[n]


def choices(G: nn.Module) -> dict[str, dict]:
    """Per sparse layer: its density and the kernel chosen for each input shape seen."""
    return {m.origin or name: {"density": m.A.density, "shape": list(m.A.shape),
                   "activation": type(m.activation).__name__ if m.activation is not None else None,
                   "choice": {"x".join(map(str, k)): v for k, v in m.choice.items()},
                   "from_plan_cache": ["x".join(map(str, k)) for k in sorted(m.from_cache)],
                   "timings_ms": {"x".join(map(str, k)): {c: t * 1e3 for c, t in v.items()}
                                  for k, v in m.timings.items()}}
            for name, m in G.named_modules() if isinstance(m, SparseLayer)}


