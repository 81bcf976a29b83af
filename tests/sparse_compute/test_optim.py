"""The active-entries optimizer steps against torch's own on masked weights: Adam, AdamW and SGD in
their options, to the last bit, with the optimizer state left as torch keeps it."""

import pytest
import torch

from sparsegan.sparse_compute.optim import SparseSteps, unsupported

CONFIGS = [
    (torch.optim.Adam, dict(lr=1e-2, betas=(0.5, 0.999))),
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
    mask = torch.rand(33, 17) < 0.2
    w = torch.randn(33, 17) * mask
    return mask, torch.nn.Parameter(w.clone()), torch.nn.Parameter(w.clone())


@pytest.mark.parametrize("kind,opts", CONFIGS, ids=[f"{k.__name__}-{i}" for i, (k, _) in enumerate(CONFIGS)])
def test_the_active_step_is_torchs_step_bit_for_bit(kind, opts):
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
        assert torch.equal(a, b)
        assert not b[~mask].any()
    for key, value in ref.state[a].items():
        assert torch.equal(opt.state[b][key], value), key


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
