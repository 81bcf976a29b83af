"""Hand-computed prune-and-regrow cases on 4x4 weights."""

import pytest
import torch
from torch import nn

from sparsegan.sparsity import MaskSet, magnitude_prune_to, prune_and_regrow


def _layer(weights, mask):
    lin = nn.Linear(4, 4, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor(weights, dtype=torch.float32))
    ms = MaskSet({"weight": lin.weight}, {"weight": torch.tensor(mask, dtype=torch.bool)})
    ms.apply_()
    return lin, ms


W = [[0.1, -0.9, 0.0, 0.5],
     [0.8, 0.0, -0.2, 0.0],
     [0.0, 0.3, 0.0, -0.7],
     [0.6, 0.0, 0.4, 0.0]]
M = [[1, 1, 0, 0],
     [1, 0, 1, 0],
     [0, 1, 0, 1],
     [1, 0, 1, 0]]  # 8 active
G = [[0.0, 0.0, 5.0, 0.0],
     [0.0, -4.0, 0.0, 0.1],
     [3.0, 0.0, 0.2, 0.0],
     [0.0, -2.0, 0.0, 0.3]]


def test_magnitude_prune_gradient_grow():
    lin, ms = _layer(W, M)
    opt = torch.optim.Adam(lin.parameters())
    lin(torch.randn(3, 4)).sum().backward()
    opt.step()  # give Adam state to every entry
    with torch.no_grad():
        lin.weight.copy_(torch.tensor(W))
    ms.apply_()
    changes, grown = prune_and_regrow(
        ms, 0.25, dense_grads={"weight": torch.tensor(G)}, optimizer=opt, regrown_state="fresh"
    )
    # 25 % of 8 active = 2 pruned: the smallest |w| among active are 0.1 (0,0) and 0.2 (1,2).
    new = ms.masks["weight"]
    assert not new[0, 0] and not new[1, 2]
    # 2 grown: the largest |g| among inactive (incl. just pruned): 5.0 (0,2) and 4.0 (1,1).
    assert grown["weight"].nonzero().tolist() == [[0, 2], [1, 1]]
    assert int(new.sum()) == 8
    assert changes[0].pruned == changes[0].grown == 2
    # Regrown weights are 0, with the bias-corrected Adam moments of a fresh weight's first step
    # (g, g^2) stored divided by the tensor's correction at step 1; survivors keep theirs.
    assert lin.weight[0, 2] == 0 and lin.weight[1, 1] == 0
    st = opt.state[lin.weight]
    assert st["exp_avg"][0, 2].item() == pytest.approx(5.0 * (1 - 0.9))
    assert st["exp_avg_sq"][1, 1].item() == pytest.approx(16.0 * (1 - 0.999))
    assert st["exp_avg_sq"][0, 1] != 0
    assert (lin.weight[~new] == 0).all()
    assert ms.itop_rate() == 10 / 16


def test_weight_dropped_and_regrown_in_one_update_keeps_value_and_state():
    """RigL's reinit_when_same=False: (0, 0) is the smallest active weight and also has the
    largest gradient, so it is dropped and taken back; it was never removed."""
    lin, ms = _layer(W, M)
    opt = torch.optim.Adam(lin.parameters())
    lin(torch.randn(3, 4)).sum().backward()
    opt.step()
    with torch.no_grad():
        lin.weight.copy_(torch.tensor(W))
    ms.apply_()
    st = opt.state[lin.weight]
    before = {k: st[k][0, 0].item() for k in ("exp_avg", "exp_avg_sq")}
    g = torch.zeros(4, 4)
    g[0, 0], g[0, 2] = 9.0, 5.0
    changes, grown = prune_and_regrow(ms, 0.25, dense_grads={"weight": g}, optimizer=opt)
    # Dropped: (0, 0) and (1, 2); grown: (0, 0) again and (0, 2). Really: one out, one in.
    assert ms.masks["weight"][0, 0] and ms.masks["weight"][0, 2] and not ms.masks["weight"][1, 2]
    assert lin.weight[0, 0].item() == pytest.approx(0.1)
    assert {k: st[k][0, 0].item() for k in before} == before
    assert (changes[0].pruned, changes[0].grown) == (1, 1)
    assert grown["weight"].nonzero().tolist() == [[0, 2]]
    assert ms.take_deactivated()["weight"].nonzero().tolist() == [[1, 2]]


def test_regrown_weights_first_adam_step_is_lr():
    """At a large step count, zeroed moments make a regrown weight's first step
    lr (1 - b1) / sqrt(1 - b2) = 15.8 lr; a fresh weight's, and ours, is lr."""
    lr = 1e-3
    lin, ms = _layer(W, M)
    opt = torch.optim.Adam(lin.parameters(), lr=lr, betas=(0.5, 0.999))
    for _ in range(3000):
        opt.zero_grad()
        lin.weight.grad = torch.randn(4, 4) * torch.tensor(M, dtype=torch.float32)
        opt.step()
    ms.apply_()
    _, grown = prune_and_regrow(ms, 0.25, dense_grads={"weight": torch.tensor(G)}, optimizer=opt)
    g = grown["weight"]
    opt.zero_grad()
    lin.weight.grad = torch.tensor(G) * ms.masks["weight"]  # the same gradient one step later
    opt.step()
    torch.testing.assert_close(lin.weight.detach()[g].abs(), torch.full((2,), lr), rtol=1e-4, atol=0)


def test_random_growth_only_among_inactive():
    lin, ms = _layer(W, M)
    before = ms.masks["weight"].clone()
    changes, grown = prune_and_regrow(ms, 0.5, grow="random", generator=torch.Generator().manual_seed(0))
    g, after = grown["weight"], ms.masks["weight"]
    assert not (g & before).any()  # really new connections were inactive
    assert int(after.sum()) == 8
    # 4 dropped, 4 grown among the 12 not kept; the grown ones that had been dropped count in neither.
    assert changes[0].grown == int(g.sum()) == int((before & ~after).sum()) == changes[0].pruned
    assert int((before & after).sum()) >= 4


def test_momentum_growth_uses_adam_first_moment():
    lin, ms = _layer(W, M)
    opt = torch.optim.Adam(lin.parameters())
    opt.state[lin.weight]["exp_avg"] = torch.zeros(4, 4)
    opt.state[lin.weight]["exp_avg"][3, 3] = 100.0  # history on an inactive weight
    grad = torch.zeros(4, 4)
    grad[0, 2] = 1.0
    _, grown = prune_and_regrow(ms, 0.25, grow="momentum", dense_grads={"weight": grad}, optimizer=opt)
    assert grown["weight"].nonzero().tolist() == [[0, 2], [3, 3]]


def test_no_reset_keeps_moments():
    lin, ms = _layer(W, M)
    opt = torch.optim.Adam(lin.parameters())
    opt.state[lin.weight]["exp_avg"] = torch.ones(4, 4)
    opt.state[lin.weight]["exp_avg_sq"] = torch.ones(4, 4)
    prune_and_regrow(ms, 0.25, dense_grads={"weight": torch.tensor(G)}, optimizer=opt, regrown_state="keep")
    assert opt.state[lin.weight]["exp_avg"][0, 2] == 1.0


def test_magnitude_prune_to_layerwise_and_global():
    lin, ms = _layer(W, M)
    magnitude_prune_to(ms, {"weight": 3})
    assert sorted(lin.weight[ms.masks["weight"]].abs().tolist()) == pytest.approx([0.7, 0.8, 0.9])
    lin2 = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        lin2.weight.copy_(torch.tensor([[0.05, 0.95], [0.85, 0.15]]))
    ms2 = MaskSet.dense({"a": lin.weight, "b": lin2.weight})
    ms2.set_mask("a", ms.masks["weight"])
    magnitude_prune_to(ms2, 4)
    assert ms2.active() == 4
    assert ms2.masks["b"].tolist() == [[False, True], [True, False]]


def test_every_criterion_declares_what_it_needs():
    from sparsegan.sparsity import GROW_CRITERIA, PRUNE_CRITERIA
    from sparsegan.sparsity.criteria import NEEDS, criterion_needs

    for kind, reg in (("prune", PRUNE_CRITERIA), ("grow", GROW_CRITERIA)):
        for name in reg.names():
            assert hasattr(reg.get(name), "needs") and criterion_needs(kind, name) in NEEDS, (kind, name)
    assert criterion_needs("grow", "gradient") == "gradient" and criterion_needs("grow", "random") is None
    assert criterion_needs("prune", "magnitude") is None and criterion_needs("prune", "grasp") == "hessian-gradient"


def test_regrown_state_written_only_at_the_entries_in_any_layout():
    # start_regrown_state writes the regrown entries by index; a non-contiguous moment buffer
    # (a transposed view) gets the same values as a contiguous one.
    import torch

    from sparsegan.sparsity.optim import _put

    buf = torch.zeros(4, 3)
    t_buf = torch.zeros(3, 4).t()
    idx = torch.tensor([1, 5, 11])
    vals = torch.tensor([1.0, 2.0, 3.0])
    _put(buf, idx, vals)
    _put(t_buf, idx, vals)
    assert torch.equal(buf, t_buf)
    assert buf.reshape(-1)[idx].tolist() == [1.0, 2.0, 3.0] and int((buf != 0).sum()) == 3
