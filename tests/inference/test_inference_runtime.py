"""Sparse export and the sparse inference runtime: outputs equal the dense masked generator's."""

import pytest
import torch
from torch import nn

from sparsegan.inference import conv, conv_transpose, layer, linear, runtime, simd_kernel
from sparsegan.inference.export import Export, export_generator, from_csr, to_csr
from sparsegan.inference.runtime import SparseConv2d, SparseConvTranspose2d, SparseLinear, choices, sparsify
from sparsegan.models import ModelSpec, build_models
from sparsegan.sparsity import MaskSet, prunable_parameters

KERNELS = ("torch-csr", "scipy-csr", "numba-csr", "simd-csr", "scipy-phase", "simd-phase", "dense", "module", "auto")
needs_simd = pytest.mark.skipif(not simd_kernel.available(),
                                reason="the AVX2 extension is not built here or the CPU lacks AVX2/FMA")


def _sparse_model(name: str, sparsity: float, seed: int = 0, **spec):
    torch.manual_seed(seed)
    G, _ = build_models(name, ModelSpec(**spec))
    masks = MaskSet.random(prunable_parameters(G), sparsity, "erk", generator=torch.Generator().manual_seed(seed))
    masks.apply_()
    with torch.no_grad():  # non-trivial BN statistics so folding them is really tested
        for m in G.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
                m.weight.normal_(1.0, 0.3)
                m.bias.normal_()
    return G.eval(), masks


def test_csr_round_trip_and_index_types():
    w = torch.tensor([[0.0, 1.5, 0.0], [0.0, 0.0, 0.0], [2.0, 0.0, -3.0]])
    parts = to_csr(w)
    assert parts["values"].tolist() == [1.5, 2.0, -3.0]
    assert parts["col_indices"].tolist() == [1, 0, 2] and parts["col_indices"].dtype == torch.int16
    assert parts["crow_indices"].tolist() == [0, 1, 1, 3]
    w4 = torch.randn(4, 3, 2, 2) * (torch.rand(4, 3, 2, 2) < 0.3)
    assert torch.equal(from_csr(to_csr(w4), (4, 3, 2, 2)), w4)


@pytest.mark.parametrize("model,spec", [("mlp", {"width": 32}), ("dcgan", {"width": 8})])
@pytest.mark.parametrize("mode", KERNELS)
def test_runtime_equals_dense_masked_generator(model, spec, mode):
    G, _ = _sparse_model(model, 0.9, **spec)
    S = sparsify(G, mode)
    for bs in (1, 5):
        z = torch.randn(bs, G.z_dim)
        with torch.no_grad():
            ref, out = G(z), S(z)
        assert out.shape == ref.shape
        torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)
    if mode == "auto":
        chosen = {c for layer in choices(S).values() for c in layer["choice"].values()}
        assert chosen <= set(runtime.MODES) - {"auto"} and chosen


def test_sngan_generator_through_the_runtime():
    # Residual blocks with BN before conv (nothing to fold), nearest up-sampling, 3x3 and 1x1 convs.
    G, _ = _sparse_model("sngan32", 0.95, channels=3, width=16)
    S = sparsify(G, "scipy-csr")
    z = torch.randn(2, G.z_dim)
    with torch.no_grad():
        torch.testing.assert_close(S(z), G(z), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("stride,pad,out_pad,k,hw", [
    (2, 1, 0, 4, 3), (3, 2, 1, 5, 2), (1, 0, 0, 3, 1), (2, 0, 0, 4, 1), (2, 3, 1, 6, 4), (3, 1, 2, 6, 2),
    (1, 1, 0, 3, 5),
])
@pytest.mark.parametrize("chunk", [1024, 1])  # 1: one input row per sparse product (row blocks)
def test_conv_transpose_layer(stride, pad, out_pad, k, hw, chunk, monkeypatch):
    monkeypatch.setattr(conv_transpose, "CHUNK_COLS", chunk)
    torch.manual_seed(0)
    m = nn.ConvTranspose2d(3, 4, k, stride, pad, output_padding=out_pad)
    with torch.no_grad():
        m.weight.mul_(torch.rand_like(m.weight) < 0.4)
    x = torch.randn(2, 3, hw, hw)
    modes = ("torch-csr", "scipy-csr", "scipy-phase", "dense") + (("simd-phase",) if simd_kernel.available() else ())
    for mode in modes:
        with torch.no_grad():
            torch.testing.assert_close(SparseConvTranspose2d(m, mode)(x), m(x), atol=1e-5, rtol=1e-4)


def test_conv_layer_chunked_and_1x1(monkeypatch):
    torch.manual_seed(0)
    monkeypatch.setattr(conv, "UNFOLD_CHUNK", 50)  # forces one image per chunk
    for m in (nn.Conv2d(3, 5, 3, 2, 1), nn.Conv2d(3, 5, 1), nn.Conv2d(3, 2, 4, 1, 0, bias=False)):
        with torch.no_grad():
            m.weight.mul_(torch.rand_like(m.weight) < 0.5)
        x = torch.randn(3, 3, 7, 7)
        with torch.no_grad():
            torch.testing.assert_close(SparseConv2d(m, "scipy-csr")(x), m(x), atol=1e-5, rtol=1e-4)


def test_linear_chain_passes_transposed_views_without_copies():
    a, b = nn.Linear(6, 5), nn.Linear(5, 4)
    la, lb = SparseLinear(a, "scipy-csr"), SparseLinear(b, "scipy-csr")
    x = torch.randn(3, 6)
    with torch.no_grad():
        h = la(x)
        assert h.t().is_contiguous()  # the next layer reads its (5, 3) buffer directly
        torch.testing.assert_close(lb(torch.relu(h)), b(torch.relu(a(x))))


def test_export_file_grows_with_active_weights(tmp_path):
    sizes = {}
    for s in (0.5, 0.9, 0.98):
        G, masks = _sparse_model("mlp", s)
        path = tmp_path / f"g{s}.safetensors"
        header = export_generator(G, masks.masks, model="mlp", spec=ModelSpec(), path=path, fmt="csr")
        sizes[s] = path.stat().st_size
        assert header["active"] == masks.active() and header["model"] == "mlp"
        ex = Export.read(path)
        G2 = ex.generator()
        for k, v in G.state_dict().items():
            assert torch.equal(G2.state_dict()[k], v), k
    dense_path = tmp_path / "dense.safetensors"
    G, masks = _sparse_model("mlp", 0.9)
    export_generator(G, masks.masks, model="mlp", spec=ModelSpec(), path=dense_path, fmt="safetensors")
    assert sizes[0.98] < sizes[0.9] < sizes[0.5]
    # About 6 bytes per active weight (float32 value + int16 column) against 4 per weight dense.
    assert sizes[0.9] < 0.25 * dense_path.stat().st_size
    assert torch.equal(Export.read(dense_path).generator().net[0].weight, G.net[0].weight)


@pytest.mark.parametrize("kernel", ["scipy-csr", "numba-csr", pytest.param("simd-csr", marks=needs_simd)])
def test_parallel_kernels_equal_serial(kernel, monkeypatch):
    from sparsegan.inference import kernels
    from sparsegan.inference.kernels import SparseMatrix

    monkeypatch.setattr(kernels, "PARALLEL_MIN_MACS", 0)  # this small product on threads too
    torch.manual_seed(0)
    a = torch.randn(37, 11) * (torch.rand(37, 11) < 0.3)
    x = torch.randn(11, 9)
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        m = SparseMatrix(a)
        assert len(m.row_blocks(3)) <= 3 and sum(r1 - r0 for r0, r1, _ in m.row_blocks(3)) == 37
        torch.testing.assert_close(m.kernel(kernel)(x), a @ x, atol=1e-5, rtol=1e-5)
    finally:
        torch.set_num_threads(old)


@needs_simd
@pytest.mark.parametrize("cols", [1, 3, 8, 64, 70])
def test_simd_kernel_on_threads_and_accumulating(cols):
    # The C kernel's OpenMP row blocks (more blocks than rows too) give the serial result; batch 1
    # (one column) runs the gather loop; the accumulating form adds A @ X, read at an offset, into Y.
    import numpy as np

    g = np.random.default_rng(cols)
    A = (g.standard_normal((23, 17)) * (g.random((23, 17)) < 0.4)).astype(np.float32)
    A[5] = 0.0  # an empty row
    A[7] = g.standard_normal(17)  # a full row: two groups of eight and a tail in the gather loop
    X = g.standard_normal((17, cols)).astype(np.float32)
    bias = g.standard_normal(23).astype(np.float32)
    run = simd_kernel.bind(*_csr32(A), bias, 1, 0.0, 17)
    serial = np.empty((23, cols), np.float32)
    run(X, serial, 0, 23)
    np.testing.assert_allclose(serial, np.maximum(A @ X + bias[:, None], 0), rtol=1e-5, atol=1e-5)
    old = torch.get_num_threads()
    try:
        for threads in (1, 2, 3, 8):
            torch.set_num_threads(threads)
            par = run.tensor(torch.from_numpy(X), threads).numpy()
            np.testing.assert_array_equal(par, serial)  # same rows, same order of sums
    finally:
        torch.set_num_threads(old)
    flat = np.concatenate([np.zeros(3, np.float32), X.ravel(), np.zeros(2, np.float32)])
    Y = g.standard_normal((23, cols)).astype(np.float32)
    expected = Y + A @ X
    simd_kernel.Accumulate(*_csr32(A), 17)(flat, 3, Y, cols)
    np.testing.assert_allclose(Y, expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="do not match"):
        simd_kernel.Accumulate(*_csr32(A), 17)(flat, 6, Y, cols)  # would read past the buffer


def _csr32(A):
    import numpy as np
    import scipy.sparse as sp

    a = sp.csr_matrix(A)
    return a.indptr.astype(np.int32), a.indices.astype(np.int32), a.data


def test_numba_csr_kernel_by_hand():
    # rows with 0, 1, 4, 5 and 9 active weights: the empty row, the one-at-a-time tail, the first
    # (writing) group of four, a group plus a tail, two groups plus a tail.
    import numpy as np

    from sparsegan.inference import csr_kernel

    A = np.zeros((5, 10), np.float32)
    A[1, 3] = 2.0
    A[2, [0, 2, 4, 6]] = [1.0, -1.0, 0.5, 3.0]
    A[3, [1, 3, 5, 7, 9]] = [1.0, 2.0, 3.0, 4.0, 5.0]
    A[4, 1:] = np.arange(1, 10)
    X = np.arange(30, dtype=np.float32).reshape(10, 3)  # X[k] = [3k, 3k+1, 3k+2]
    expect = np.array([[0, 0, 0], [18, 20, 22], [54, 57.5, 61], [285, 300, 315], [855, 900, 945]], np.float32)
    assert np.array_equal(A @ X, expect)
    no_bias = np.zeros(5, np.float32)
    Y = np.full((5, 3), np.nan, np.float32)  # every row written, the empty one too
    csr_kernel.csr_mm(*_csr32(A), no_bias, csr_kernel.ACT_NONE, 0.0, X, Y, 0, 5)
    assert np.array_equal(Y, expect)
    Y = np.full((5, 3), -7.0, np.float32)
    csr_kernel.csr_mm(*_csr32(A), no_bias, csr_kernel.ACT_NONE, 0.0, X, Y, 2, 4)  # a row block only
    assert np.array_equal(Y[2:4], expect[2:4]) and (Y[[0, 1, 4]] == -7.0).all()
    # epilogue: bias per row, then LeakyReLU(0.5): row 0 is 0 + (-4) -> -2
    bias = np.array([-4, 0, -60, 0, 0], np.float32)
    csr_kernel.csr_mm(*_csr32(A), bias, csr_kernel.ACT_LEAKY_RELU, 0.5, X, Y, 0, 5)
    assert np.array_equal(Y, [[-2, -2, -2], [18, 20, 22], [-3, -1.25, 1], [285, 300, 315], [855, 900, 945]])


@pytest.mark.parametrize("act", [None, nn.ReLU(), nn.LeakyReLU(0.2), nn.Tanh()])
def test_numba_epilogue_equals_torch(act):
    from sparsegan.inference.kernels import Epilogue, SparseMatrix

    torch.manual_seed(0)
    a = torch.randn(67, 40) * (torch.rand(67, 40) < 0.2)
    x, bias = torch.randn(40, 33), torch.randn(67)
    ep = Epilogue(bias, act)
    ref = a @ x + bias[:, None]
    ref = act(ref) if act is not None else ref
    m = SparseMatrix(a)
    kernels = ("numba-csr", "scipy-csr", "torch-csr", "dense") + (("simd-csr",) if simd_kernel.available() else ())
    for kernel in kernels:
        torch.testing.assert_close(m.kernel(kernel, ep)(x), ref, atol=2e-6, rtol=1e-5)


def test_numba_tanh_accuracy():
    # The epilogue's tanh is a rational approximation: within 3e-7 of float64 tanh everywhere
    # (saturated tails included) and within [-1, 1], run through the kernel as a 1 x 1 identity times a row of values.
    import numpy as np

    from sparsegan.inference import csr_kernel

    v = np.linspace(-12, 12, 240_001, dtype=np.float32)[None]
    y = np.empty_like(v)
    csr_kernel.csr_mm(*_csr32(np.ones((1, 1), np.float32)), np.zeros(1, np.float32), csr_kernel.ACT_TANH, 0.0, v, y,
                      0, 1)
    assert np.abs(y - np.tanh(v.astype(np.float64))).max() < 3e-7
    assert np.abs(y).max() <= 1.0 and y[0, 120_000] == 0.0  # in range


def test_activations_fuse_into_sparse_layers():
    G, _ = _sparse_model("mlp", 0.9, width=32)
    S = sparsify(G, "numba-csr")
    acts = {n: c["activation"] for n, c in choices(S).items()}
    assert acts == {"net.0": "ReLU", "net.3": "ReLU", "net.6": "ReLU", "net.9": "Tanh"}
    assert not any(isinstance(m, (nn.ReLU, nn.Tanh, nn.BatchNorm1d)) for m in S.net)
    unfused = sparsify(G, "numba-csr", fuse_activations=False)
    assert all(c["activation"] is None for c in choices(unfused).values())
    z = torch.randn(7, G.z_dim)
    with torch.no_grad():
        torch.testing.assert_close(S(z), G(z), atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(unfused(z), G(z), atol=1e-5, rtol=1e-4)


def test_spectral_norm_layers_leave_the_original_intact():
    from torch.nn.utils.parametrizations import spectral_norm

    torch.manual_seed(0)
    net = nn.Sequential(spectral_norm(nn.Linear(6, 5)), nn.ReLU(), spectral_norm(nn.Conv2d(5, 3, 1)))
    net[0](torch.randn(4, 6))  # one power iteration in train mode, as after training
    net.eval()
    x = torch.randn(4, 6)

    class Wrap(nn.Module):
        def __init__(self, seq):
            super().__init__()
            self.seq = seq

        def forward(self, x):
            h = self.seq[1](self.seq[0](x))
            return self.seq[2](h[:, :, None, None])

    model = Wrap(net).eval()
    with torch.no_grad():
        ref = model(x)
        S = sparsify(model, "scipy-csr")
        torch.testing.assert_close(S(x), ref, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(model(x), ref)  # the original still runs, unchanged


def test_other_dtypes_fall_back_to_the_module():
    m = nn.Linear(4, 3).double()
    layer = SparseLinear(m, "scipy-csr")
    x = torch.randn(2, 4, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), m(x))
    assert set(layer.choice.values()) == {"module"}


@needs_simd
@pytest.mark.parametrize("cols", [1, 7, 8, 64, 65, 136])
def test_simd_kernel_by_hand_every_column_tail(cols):
    # 64-column register tiles, 8-column vectors and single columns: every tail path, with the
    # rows of the by-hand test (0, 1, 4, 5 and 9 active weights) and a LeakyReLU epilogue.
    import numpy as np

    A = np.zeros((5, 10), np.float32)
    A[1, 3] = 2.0
    A[2, [0, 2, 4, 6]] = [1.0, -1.0, 0.5, 3.0]
    A[3, [1, 3, 5, 7, 9]] = [1.0, 2.0, 3.0, 4.0, 5.0]
    A[4, 1:] = np.arange(1, 10)
    X = np.arange(10 * cols, dtype=np.float32).reshape(10, cols) / cols
    bias = np.array([-4, 0, -60, 0, 0], np.float32)
    ref = A.astype(np.float64) @ X + bias[:, None]
    ref = np.where(ref > 0, ref, 0.5 * ref)
    Y = np.full((5, cols), np.nan, np.float32)
    simd_kernel.csr_mm(*_csr32(A), bias, 2, 0.5, X, Y, 0, 5)
    np.testing.assert_allclose(Y, ref, rtol=1e-6, atol=1e-4)


@needs_simd
def test_simd_kernel_rejects_what_would_corrupt_memory():
    import numpy as np

    A = np.eye(3, dtype=np.float32)
    ip, ix, data = _csr32(A)
    run = simd_kernel.bind(ip, ix, data, np.zeros(3, np.float32), 0, 0.0, 3)
    with pytest.raises(ValueError, match="shapes"):
        run(np.zeros((4, 2), np.float32), np.zeros((3, 2), np.float32), 0, 3)  # X has too many rows
    with pytest.raises(ValueError, match="shapes"):
        run(np.zeros((3, 2), np.float32), np.zeros((3, 2), np.float32), 0, 4)  # rows beyond Y
    with pytest.raises(ValueError, match="float32"):
        run(np.zeros((3, 2), np.float64), np.zeros((3, 2), np.float32), 0, 3)
    with pytest.raises(ValueError, match="C-contiguous"):
        run(np.zeros((2, 3), np.float32).T, np.zeros((3, 2), np.float32), 0, 3)
    with pytest.raises(ValueError, match="out of range"):
        simd_kernel.bind(ip, ix, data, np.zeros(3, np.float32), 0, 0.0, 2)  # A has 3 columns, not 2


@pytest.mark.parametrize("kernel,module,attr,message", [
    ("numba-csr", "csr_kernel", "numba", "needs numba"),
    ("simd-csr", "simd_kernel", "_csr_mm", "not available"),
])
def test_runtime_without_an_own_kernel_falls_back(monkeypatch, kernel, module, attr, message):
    # numba is an install-time dependency and the C extension optional: a kernel that cannot run
    # is no candidate, and forcing it runs scipy's CSR instead.
    import importlib

    from sparsegan.inference.kernels import SparseMatrix

    monkeypatch.setattr(importlib.import_module(f"sparsegan.inference.{module}"), attr, None)
    G, _ = _sparse_model("mlp", 0.9, width=32)
    z = torch.randn(5, G.z_dim)
    for mode in ("auto", kernel):
        S = sparsify(G, mode)
        with torch.no_grad():
            torch.testing.assert_close(S(z), G(z), atol=1e-5, rtol=1e-4)
        assert kernel not in {c for layer in choices(S).values() for c in layer["choice"].values()}
    with pytest.raises(ValueError, match=message):
        SparseMatrix(torch.eye(3)).kernel(kernel)


@needs_simd
@pytest.mark.parametrize("threads", [1, 2])
def test_linear_chain_runs_an_mlp_in_one_call(threads, monkeypatch):
    # Consecutive sparse Linear layers that chose the AVX2 kernel run as one C call per input
    # shape (the batch-1 path); outputs equal the dense masked generator's, the per-layer choices
    # keep their layers' names, and a run broken by another kernel runs in pieces.
    from sparsegan.inference import kernels

    monkeypatch.setattr(kernels, "PARALLEL_MIN_MACS_OPENMP", 0)  # the chain's layers on threads too
    G, _ = _sparse_model("mlp", 0.9, width=32)
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        S = sparsify(G, "simd-csr")
        assert isinstance(S.net[0], runtime.LinearChain) and len(S.net) == 1  # the placeholders removed
        with torch.no_grad():
            for bs in (1, 3, 70):
                z = torch.randn(bs, G.z_dim)
                torch.testing.assert_close(S(z), G(z), atol=1e-5, rtol=1e-4)
        assert set(choices(S)) == {"net.0", "net.3", "net.6", "net.9"}
        S.net[0].layers[2].mode = "scipy-csr"  # the middle of the run on another kernel
        S.net[0].layers[2].choice.clear()
        S.net[0].plans.clear()
        z = torch.randn(2, G.z_dim)
        with torch.no_grad():
            torch.testing.assert_close(S(z), G(z), atol=1e-5, rtol=1e-4)
    finally:
        torch.set_num_threads(old)
    assert not any(isinstance(m, runtime.LinearChain) for m in sparsify(G, "simd-csr", chain_linear=False).modules())
    with pytest.raises(ValueError, match="do not chain"):
        a, b = (S.net[0].layers[i].A.simd_bound(None) for i in (0, 2))
        simd_kernel.Chain([a, b], 1, 1, [False, False])


@needs_simd
def test_linear_chain_times_one_call_against_the_layers_own_choices(monkeypatch):
    # Where the layers chose other kernels alone (here: all the dense module), the chain also
    # times running all of them in one C call; whichever it keeps computes the same function.
    def pick(candidates, repeats=3):
        for name in ("one-call", "module"):
            if name in candidates:
                candidates[name]()
                return name, {k: 0.0 for k in candidates}
        raise AssertionError(candidates)

    for module in (layer, linear):  # the layers' choices and the chain's
        monkeypatch.setattr(module, "fastest", pick)
    G, _ = _sparse_model("mlp", 0.9, width=32)
    S = sparsify(G, "auto", plan_cache=False)
    z = torch.randn(1, G.z_dim)
    with torch.no_grad():
        torch.testing.assert_close(S(z), G(z), atol=1e-5, rtol=1e-4)
        assert S.net[0].chosen == "one-call"
        assert {c for layer in choices(S).values() for c in layer["choice"].values()} == {"module"}
        torch.testing.assert_close(S(z), G(z), atol=1e-5, rtol=1e-4)  # the bound plan


@needs_simd
@pytest.mark.parametrize("size", [2, 4, 8])
@pytest.mark.parametrize("cols", [1, 3, 8, 16, 24, 600])
def test_blocked_kernel_by_hand_every_group_size_and_column_tail(size, cols):
    # Row groups of 2, 4 and 8 (the tiles: 32, 16 and 8 columns; one column: a vector of the
    # group's values), a last group cut short (rows not a multiple of the size), a group with no
    # index, ReLU epilogue and the accumulating form, against float64 by hand.
    import numpy as np

    rows, k = 2 * size + 1, 11
    rng = np.random.default_rng(size * 100 + cols)
    A = np.zeros((rows, k), np.float32)
    for g, c in ((0, 0), (0, 5), (0, 10), (2, 3)):  # group 1 is empty
        A[g * size:(g + 1) * size, c] = rng.standard_normal(min(size, rows - g * size))
    assert simd_kernel.group_size(A) == size
    X = rng.standard_normal((k, cols)).astype(np.float32)
    bias = rng.standard_normal(rows).astype(np.float32)
    g = simd_kernel.Grouped(A, size, bias, act=1)
    assert g.stored == 4 * size  # four indices of R values each (the last group padded to R rows)
    ref = np.maximum(A.astype(np.float64) @ X + bias[:, None], 0)
    for threads in (1, 2):
        np.testing.assert_allclose(g.tensor(torch.from_numpy(X), threads).numpy(), ref, rtol=1e-5, atol=1e-5)
    y = np.ones(rows * cols, np.float32)
    flat = np.concatenate([np.zeros(3, np.float32), X.ravel()])
    g.accumulate(flat, 3, y, cols)
    np.testing.assert_allclose(y.reshape(rows, cols), 1 + A.astype(np.float64) @ X, rtol=1e-5, atol=1e-5)


def test_group_size_finds_row_blocks_only():
    import numpy as np

    from sparsegan.sparsity.blocks import Blocks

    torch.manual_seed(0)
    four = Blocks(4, 1).expand(torch.rand(16, 40) < 0.1, torch.zeros(64, 40)).numpy().astype(np.float32)
    assert simd_kernel.group_size(four) == 4 and simd_kernel.group_size(np.eye(8, dtype=np.float32)) is None
    unstructured = (torch.rand(64, 40) < 0.1).numpy().astype(np.float32)
    assert simd_kernel.group_size(unstructured) is None


def _block_model(name: str, sparsity: float, block: str, **spec):
    from sparsegan.sparsity import output_axes
    from sparsegan.sparsity.blocks import Blocks

    torch.manual_seed(0)
    G, _ = build_models(name, ModelSpec(**spec))
    masks = MaskSet.random(prunable_parameters(G), sparsity, "erk", generator=torch.Generator().manual_seed(0),
                           blocks=Blocks.parse(block), out_axes=output_axes(G))
    masks.apply_()
    return G.eval()


@needs_simd
@pytest.mark.parametrize("model,spec,mode", [("mlp", {"width": 32}, "simd-block"),
                                             ("dcgan", {"width": 8}, "simd-block-phase"),
                                             ("mlp", {"width": 32}, "auto"), ("dcgan", {"width": 8}, "auto")])
def test_block_masked_generators_run_on_the_blocked_kernel(model, spec, mode):
    # A generator trained with --mask-block 4x1: its Linear matrices and its transposed convs' taps
    # are made of row groups of 4, the blocked kernel is a candidate and computes the same outputs.
    G = _block_model(model, 0.9, "4x1", **spec)
    S = sparsify(G, mode)
    for bs in (1, 5):
        z = torch.randn(bs, G.z_dim)
        with torch.no_grad():
            torch.testing.assert_close(S(z), G(z), atol=1e-5, rtol=1e-4)
    layers = [m for m in S.modules() if isinstance(m, runtime.SparseLayer)]
    offered = {c for layer in layers for c in layer.candidates()}
    assert ("simd-block" if model == "mlp" else "simd-block-phase") in offered
    if mode != "auto":
        used = {c for layer in layers for c in layer.choice.values()}
        assert mode in used
    # unstructured sparse layers are not offered it (dense or one-row matrices are: no zeros stored)
    unstructured = sparsify(_sparse_model(model, 0.9, **spec)[0], "auto")
    sparse = [m for m in unstructured.modules() if isinstance(m, runtime.SparseLayer) and m.A.density < 0.5
              and min(m.A.shape) >= 8]
    assert sparse and not {c for m in sparse for c in m.candidates()} & {"simd-block", "simd-block-phase"}


def _shifted_row_reference(w: torch.Tensor, b: torch.Tensor | None, x: torch.Tensor, stride: int, pad: int):
    """The direct kernel's algorithm in PyTorch: each active weight adds its shifted (strided) input
    plane into its output channel, out[:, o] += w * x_padded[:, i, kh :: s, kw :: s] (cropped)."""
    n, _, h, wd = x.shape
    out_c, _, k_h, k_w = w.shape
    out_h, out_w = (h + 2 * pad - k_h) // stride + 1, (wd + 2 * pad - k_w) // stride + 1
    xp = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    out = torch.zeros(n, out_c, out_h, out_w) + (0 if b is None else b.view(1, -1, 1, 1))
    for o, i, kh, kw in w.nonzero().tolist():
        out[:, o] += w[o, i, kh, kw] * xp[:, i, kh : kh + stride * (out_h - 1) + 1 : stride,
                                         kw : kw + stride * (out_w - 1) + 1 : stride]
    return out


@needs_simd
@pytest.mark.parametrize("stride,pad,k,h,w", [
    (1, 1, 3, 8, 8), (1, 1, 3, 32, 32), (2, 1, 3, 16, 16), (1, 0, 3, 7, 9), (2, 0, 3, 11, 13), (2, 1, 3, 9, 70),
    (1, 1, 3, 13, 45), (1, 0, 1, 5, 6), (3, 2, 4, 10, 7), (1, 1, 3, 1, 1),
])
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("bias", [True, False])
def test_direct_conv_kernel_equals_dense_conv(stride, pad, k, h, w, batch, bias):
    # Odd widths (masked last vectors), widths over 32 (several column blocks), heights below and
    # not a multiple of the tile's rows (the overlapping last block), stride 2 and 3 (phase planes).
    torch.manual_seed(0)
    m = nn.Conv2d(5, 6, k, stride, pad, bias=bias)
    with torch.no_grad():
        m.weight.mul_(torch.rand_like(m.weight) < 0.3)
    x = torch.randn(batch, 5, h, w)
    layer = SparseConv2d(m, "direct")
    with torch.no_grad():
        ref = m(x)
        torch.testing.assert_close(_shifted_row_reference(m.weight, m.bias, x, stride, pad), ref, atol=1e-5, rtol=0)
        torch.testing.assert_close(layer(x), ref, atol=1e-5, rtol=0)
    assert set(layer.choice.values()) == {"direct"}


@needs_simd
@pytest.mark.parametrize("act", [nn.ReLU(), nn.LeakyReLU(0.2), nn.Tanh()])
@pytest.mark.parametrize("threads", [1, 2])
def test_direct_conv_fused_activation_threads_and_channel_major_input(act, threads):
    torch.manual_seed(1)
    m = nn.Conv2d(16, 24, 3, 1, 1)
    with torch.no_grad():
        m.weight.mul_(torch.rand_like(m.weight) < 0.1)
    layer = SparseConv2d(m, "direct")
    layer.fuse(act)
    x = torch.randn(16, 4, 4, 3).permute(3, 0, 1, 2)  # a (C, H, W, N) buffer: another sparse layer's output
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.no_grad():
            torch.testing.assert_close(layer(x), act(m(x)), atol=1e-5, rtol=0)
            big = torch.randn(2, 16, 24, 24)  # enough multiply-adds for the threads to be used
            torch.testing.assert_close(layer(big), act(m(big)), atol=1e-5, rtol=0)
            batch = torch.randn(6, 16, 24, 24)  # at two threads the images shared out, a scratch image each
            torch.testing.assert_close(layer(batch), act(m(batch)), atol=1e-5, rtol=0)
    finally:
        torch.set_num_threads(before)


@needs_simd
def test_auto_mode_times_the_direct_conv_kernel():
    torch.manual_seed(0)
    m = nn.Conv2d(8, 8, 3, 1, 1)
    with torch.no_grad():
        m.weight.mul_(torch.rand_like(m.weight) < 0.1)
    layer = SparseConv2d(m, "auto")
    x = torch.randn(2, 8, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), m(x), atol=1e-5, rtol=0)
    assert "direct" in layer.timings[(2, 8, 16, 16)]
