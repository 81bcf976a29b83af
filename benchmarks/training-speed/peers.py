"""Two peer libraries' sparse Linear layers, built to hold a given weight and mask, for the
training-speed benchmark to time beside sparsegan's own sparse path.

* sparselab 0.2.2: dynamic sparse training on the CPU; ``sparselab.SparseLinear`` keeps its weight
  as a padded CSR matrix (C++ kernels, AVX2 on x86-64, OpenMP over the rows); a prebuilt wheel.
* sparseprop 0.1.14 (IST Austria, "SparseProp: Efficient Sparse Backpropagation"):
  ``sparseprop.modules.SparseLinear`` keeps its weight as CSR arrays (AVX2 + OpenMP kernels); a
  source distribution, compiled at install (a C++ compiler; its setup.py itself runs pip for
  pybind11) with ``-march=native -ffast-math``, so the wheel pip caches is for the machine that
  built it. Its extension installs as a top-level module named ``backend``.

Both give the input's gradient and the gradient of the active weights only, which is what the
benchmark compares. Neither is a dependency of sparsegan: they live in an environment of their own,
outside the repository, with torch pinned to the build our main environment uses
(requirements-peers.txt beside this file). From the repository root::

    python3 -m venv /work/peers-venv
    /work/peers-venv/bin/pip install torch==2.13.0           # the CPU build; no torchvision
    /work/peers-venv/bin/pip install sparselab==0.2.2 sparseprop==0.1.14
    /work/peers-venv/bin/pip install -e . --no-deps          # sparsegan; builds its C kernels in place
    /work/peers-venv/bin/pip install numpy safetensors Pillow tqdm PyYAML scipy   # its dependencies

and the benchmark runs in it (``/work/peers-venv/bin/python benchmarks/training-speed/training_speed.py``);
with any other Python, :func:`versions` says None for both and the benchmark leaves them out.

Threads: ``torch.set_num_threads`` sets both. Their extensions' OpenMP calls bind to the libgomp
torch has loaded (torch puts it in the global symbol scope; sparselab's wheel bundles a renamed
copy of its own, which its kernels leave unused once torch is in the process, as it is here before
either peer is imported). ``sparseprop.set_num_threads`` only writes OMP_NUM_THREADS, which OpenMP
reads once at start, so it does nothing after torch is imported; OMP_NUM_THREADS in the environment
of the process works for all three.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

PEERS = ("sparselab", "sparseprop")


def versions() -> dict[str, str | None]:
    """Each peer's installed version, None where it does not import (it is not installed, or its
    compiled extension does not load here)."""
    found: dict[str, str | None] = {}
    for name in PEERS:
        try:
            # import, not only metadata: an installed sparseprop whose extension fails to load is as absent
            importlib.import_module(name)
            found[name] = importlib.metadata.version(name)
        except (ImportError, OSError):
            found[name] = None
    return found


def build(name: str, weight: Tensor, mask: Tensor, bias: Tensor | None) -> nn.Module:
    """Peer ``name``'s sparse Linear holding ``weight * mask`` (out x in, float32) on the pattern
    ``mask`` (bool, out x in) and ``bias`` (out,) or none: ``module(x)`` for x (batch, in) is
    ``x @ (weight * mask).T + bias``. The module holds copies (training it leaves ``weight`` and
    ``bias`` as they are); its first parameter is the active weights' values, in the peer's order.

    Raises ValueError for a peer or tensors it cannot represent, ImportError where it is not installed."""
    if weight.dim() != 2 or weight.dtype != torch.float32 or weight.device.type != "cpu":
        # both peers' kernels read float32 only, on the CPU
        raise ValueError(f"{name}: the weight must be a 2-D float32 CPU tensor, got {weight.dtype} "
                         f"{tuple(weight.shape)} on {weight.device}")
    if mask.shape != weight.shape:
        raise ValueError(f"{name}: mask {tuple(mask.shape)} does not match weight {tuple(weight.shape)}")
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"{name}: bias {tuple(bias.shape)} does not match {weight.shape[0]} outputs")
    weight, mask = weight.detach(), mask.detach().to(torch.bool)
    bias = None if bias is None else nn.Parameter(bias.detach().to(torch.float32).clone())
    # the pattern comes from the mask, not from the nonzeros of weight * mask (which is what both peers'
    # own constructors read): an active weight that happens to be 0 stays active and gets its gradient
    rows, cols = mask.nonzero(as_tuple=True)  # row-major, columns ascending in a row: CSR order
    values = weight[rows, cols].contiguous()
    row_ptr = torch.zeros(weight.shape[0] + 1, dtype=torch.int64)
    row_ptr[1:] = torch.cumsum(mask.sum(1), 0)
    if name == "sparselab":
        return _sparselab(weight.shape, row_ptr, cols, values, bias)
    if name == "sparseprop":
        return _sparseprop(weight.shape, row_ptr, cols, values, bias)
    raise ValueError(f"unknown peer {name!r}; the peers are {PEERS}")


def _sparselab(shape: torch.Size, row_ptr: Tensor, cols: Tensor, values: Tensor,
               bias: nn.Parameter | None) -> nn.Module:
    import sparselab
    from sparselab import ops

    out_features, in_features = shape
    density = values.numel() / max(1, out_features * in_features)
    # SparseLinear draws its own random weights and mask (no constructor takes them); its storage is
    # replaced below. The sparsity it is given only sizes that draw and shows in its repr (< 1 required).
    with warnings.catch_warnings():  # torch's "sparse CSR support is in beta" notice, here and below
        warnings.simplefilter("ignore", UserWarning)
        layer = sparselab.SparseLinear(in_features, out_features, bias=bias is not None,
                                       sparsity=min(1.0 - density, 0.999), padding_ratio=0.0)
        csr = torch.sparse_csr_tensor(row_ptr, cols, values, (out_features, in_features))
    # padding_ratio 0: no room kept for growing rows (the mask is fixed here); an empty row still gets
    # one padding slot, whose value and gradient stay 0
    layer._csr = sparselab.PaddedCSR.from_torch_sparse_csr(csr, padding_ratio=0.0)
    # the layer's trainable values alias the C++ value buffer (the kernels read the buffer, the optimizer
    # writes the Parameter), as SparseLinear sets them up itself
    layer._values = nn.Parameter(torch.from_numpy(np.asarray(layer._csr.values)))
    # sparselab caches each matrix's transpose (for the input's gradient) under id(matrix) and its
    # topology version; a new matrix that reuses the id of a collected one of the same shape would be
    # handed that one's transpose, another pattern. Drop any entry under the new id.
    ops._transpose_cache.pop(id(layer._csr), None)
    if bias is not None:
        layer.bias = bias  # added in Python after the product: autograd gives its gradient
    return layer


def _sparseprop(shape: torch.Size, row_ptr: Tensor, cols: Tensor, values: Tensor,
                bias: nn.Parameter | None) -> nn.Module:
    from sparseprop.modules import SparseLinear

    # constructed on an all-zero weight (no work in its CSR conversion), then given the CSR arrays it would
    # build itself: float32 values, int32 row pointers and column indices (its kernels read int32; pybind
    # would cast other types into a copy)
    # bias: its own, a Parameter as it requires; added in its autograd function, which returns its gradient
    layer = SparseLinear(dense_weight=torch.zeros(shape), bias=bias)
    layer.W_val = nn.Parameter(values)
    layer.W_idx = (row_ptr.to(torch.int32), cols.to(torch.int32).contiguous())
    return layer


def _active_grad(name: str, module: nn.Module, mask: Tensor) -> Tensor:
    """The gradient of the active weights as a dense out x in tensor, 0 outside ``mask``."""
    if name == "sparselab":
        live = torch.from_numpy(module._csr.col_indices.copy()) >= 0  # drop the empty rows' padding slots
        grad = module._values.grad[live]
    else:
        grad = module.W_val.grad
    dense = torch.zeros(mask.shape)
    dense[mask] = grad  # both keep CSR order, which is boolean indexing's row-major order
    return dense


def check(name: str, out_features: int = 64, in_features: int = 48, batch: int = 8, density: float = 0.1) -> float:
    """Peer ``name`` against dense torch on a random case: the largest absolute difference in the
    output, the input's gradient and the active weights' gradient."""
    gen = torch.Generator().manual_seed(0)
    weight = torch.randn(out_features, in_features, generator=gen)
    mask = torch.rand(out_features, in_features, generator=gen) < density
    bias = torch.randn(out_features, generator=gen)
    x = torch.randn(batch, in_features, generator=gen)
    grad_out = torch.randn(batch, out_features, generator=gen)

    module = build(name, weight, mask, bias)
    x_peer = x.clone().requires_grad_()
    y_peer = module(x_peer)
    y_peer.backward(grad_out)

    masked = (weight * mask).requires_grad_()
    x_ref = x.clone().requires_grad_()
    y_ref = F.linear(x_ref, masked, bias)
    y_ref.backward(grad_out)

    with torch.no_grad():
        diffs = [(y_peer - y_ref).abs().max(), (x_peer.grad - x_ref.grad).abs().max(),
                 (_active_grad(name, module, mask) - masked.grad * mask).abs().max()]
    return float(torch.stack(diffs).max())


if __name__ == "__main__":
    print(versions())
    for peer, version in versions().items():
        if version is not None:
            for n in (1, 2):
                torch.set_num_threads(n)
                print(f"{peer} {version}, {n} thread(s): max abs difference {check(peer):.3g}")
