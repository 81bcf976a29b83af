"""What every sparse layer of the runtime shares: the modes, the per-shape kernel choice, the plans.

A :class:`SparseLayer` wraps one dense layer and computes it as ``A @ X``: the weight matrix ``A``
on the left, the activations row-major on the right, so every active weight is one contiguous
axpy over batch x pixels (see :mod:`.kernels`). Activations travel *channel-major,
batch-innermost* between sparse layers: a layer returns an (N, C, H, W) *view* of a (C, H, W, N)
buffer, and the next sparse layer reads that buffer as its (C, H W N) right-hand side without a
copy; element-wise layers in between keep the strides.

Which kernel a layer runs is chosen per input shape: in ``mode="auto"`` by timing every candidate
(the original dense module included) on the first input of that shape, the choice shared with
other processes through a :class:`.plans.PlanCache`; a fixed ``mode`` forces one. Each layer kind
(:mod:`.linear`, :mod:`.conv`, :mod:`.conv_transpose`) supplies the forward for a kernel name.
"""

from __future__ import annotations

import abc
from typing import Callable

import torch
from torch import Tensor, nn

from sparsegan.inference import csr_kernel, simd_kernel
from sparsegan.inference.kernels import Epilogue, SparseMatrix, Workers, fastest
from sparsegan.kernels.plans import PlanCache

MODES = ("auto", "module", "torch-csr", "scipy-csr", "numba-csr", "simd-csr", "simd-block", "scipy-phase", "simd-phase",
         "simd-block-phase", "direct", "dense")
# "dense" is the masked weight as a dense GEMM in this runtime's layout: never sparse, but for
# layers the distribution keeps dense (ERK: DCGAN's last layer) it beats PyTorch's transposed conv.

# torch's CPU CSR x dense product degrades sharply with many columns (far behind scipy's); beyond
# this it is not a candidate.
TORCH_CSR_MAX_COLS = 2048


def sparse_candidates() -> tuple[str, ...]:
    """The CSR kernels auto mode times; this package's own where they can run (numba imports; the
    AVX2 extension was built and the CPU has AVX2 and FMA)."""
    return (("torch-csr", "scipy-csr") + (("numba-csr",) if csr_kernel.available() else ())
            + (("simd-csr",) if simd_kernel.available() else ()))


def channel_major(x: Tensor) -> Tensor:
    """(C, H*W*N) from an (N, C, H, W) tensor; no copy when x is a view of a (C, H, W, N) buffer."""
    return x.permute(1, 2, 3, 0).reshape(x.shape[1], -1)


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
        """The forward with kernel ``name``, bound once per input shape: a sparse product can take
        well under a millisecond, so per-call Python work is worth binding away."""
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
                    continue  # far slower than scipy there: not worth timing
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
