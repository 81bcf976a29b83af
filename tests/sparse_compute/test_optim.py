"""The active-entries optimizer steps against torch's own on masked weights: Adam, AdamW and SGD in
their options, with the optimizer state left as torch keeps it: to float rounding with the C kernel
(torch's vectorised kernels fuse some multiply-adds), to the last bit with torch's operations
(the fallback where the kernel is not built)."""

import pytest
import torch

from sparsegan.kernels import active, library
from sparsegan.sparse_compute.optim import SparseSteps, unsupported

CONFIGS = [
    (torch.optim.Adam, dict(lr=1e-2, betas=(0.5, 0.999))),
    (torch.optim.Adam, dict(lr=1e-2, betas=(0.5, 0.999), fused=True)),  # the training loop's
    (torch.optim.Adam, dict(lr=1e-2, weight_decay=0.1)),
    (torch.optim.Adam, dict(lr=1e-2, maximize=True, eps=1e-6)),
    (torch.optim.AdamW, dict(lr=1e-2, weight_decay=0.05)),
    (torch.optim.SGD, dict(lr=0.1)),
    (torch.optim.SGD, dict(lr=0.1, momentum=0.9, weight_decay=1e-3)),
    (torch.optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True)),
    (torch.optim.SGD, dict(lr=0.1, momentum=0.9, dampening=0.1)),
]


def _twins(seed=0):
    torch.manual_seed(seed)
    mask = torch.rand(33, 17) < 0.1  # below the active step's MAX_DENSITY
    w = torch.randn(33, 17) * mask
    return mask, torch.nn.Parameter(w.clone()), torch.nn.Parameter(w.clone())


def _same(a, b, exact):
    if exact:
        assert torch.equal(a, b)
    else:
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kernel", [True, False], ids=["kernel", "torch-ops"])
@pytest.mark.parametrize("kind,opts", CONFIGS, ids=[f"{k.__name__}-{i}" for i, (k, _) in enumerate(CONFIGS)])
def test_the_active_step_is_torchs_step(kind, opts, kernel, monkeypatch):
    if kernel and library() is None:
        pytest.skip("the C kernels are not built here")
    if not kernel:
        monkeypatch.setattr(active, "library", lambda: None)
    mask, a, b = _twins()
    ref, opt = kind([a], **opts), kind([b], **opts)
    steps = SparseSteps(opt)
    index = mask.reshape(-1).nonzero().squeeze(1)
    gen = torch.Generator().manual_seed(1)
    for _ in range(6):
        grad = torch.randn(a.shape, generator=gen)
        a.grad = grad * mask  # the engine's masked gradient
        ref.step()
        b.grad = grad.clone()  # unmasked: the active step reads no inactive entry
        steps.take([(b, index)])
        assert b.grad is None  # hidden from the optimizer's own step
        opt.step()
        steps.give_back()
        assert torch.equal(b.grad, grad)
        _same(a, b, exact=not kernel and not opts.get("fused"))  # torch's fused kernel rounds its own way
        assert not b[~mask].any()
    for key, value in ref.state[a].items():
        _same(value, opt.state[b][key], exact=not kernel and not opts.get("fused"))


def test_unsupported_optimizers_and_options_stay_with_torch():
    p = [torch.nn.Parameter(torch.zeros(2))]
    assert unsupported(torch.optim.Adam(p)) is None
    assert "RMSprop" in unsupported(torch.optim.RMSprop(p))
    assert "amsgrad" in unsupported(torch.optim.Adam(p, amsgrad=True))


def test_dense_layers_and_non_contiguous_weights_are_left_to_the_optimizer():
    dense = torch.nn.Parameter(torch.randn(4, 4))
    odd = torch.nn.Parameter(torch.randn(4, 4).t())  # not contiguous
    opt = torch.optim.Adam([dense, odd])
    steps = SparseSteps(opt)
    for p in (dense, odd):
        p.grad = torch.ones(4, 4)
    steps.take([(dense, torch.arange(16)), (odd, torch.arange(3))])
    assert dense.grad is not None and odd.grad is not None and not opt.state


def test_the_active_step_reads_the_groups_as_they_are_now():
    # load_state_dict replaces the param groups and a scheduler changes their lr: the step follows both
    mask, a, b = _twins()
    ref, opt = torch.optim.Adam([a], lr=1e-2), torch.optim.Adam([b], lr=1e-2)
    steps = SparseSteps(opt)
    opt.load_state_dict(opt.state_dict())
    for o in (ref, opt):
        torch.optim.lr_scheduler.StepLR(o, step_size=1, gamma=0.1).step()  # lr 1e-3 from here
    index = mask.reshape(-1).nonzero().squeeze(1)
    grad = torch.randn(a.shape, generator=torch.Generator().manual_seed(1))
    a.grad, b.grad = grad * mask, grad.clone()
    ref.step()
    steps.take([(b, index)])
    opt.step()
    steps.give_back()
    torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)
