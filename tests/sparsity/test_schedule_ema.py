import math

import pytest
import torch
from torch import nn

from sparsegan.sparsity import MaskSet, SparseEMA, UpdateSchedule, cubic_sparsity


def test_update_steps_never_at_zero_or_final():
    s = UpdateSchedule(interval=100, total_steps=400)
    assert s.update_steps() == [100, 200, 300]
    assert not s.is_update_step(0) and not s.is_update_step(400)
    assert UpdateSchedule(interval=100, total_steps=1000, end_step=250).update_steps() == [100, 200]


def test_cosine_fraction_values():
    s = UpdateSchedule(interval=10, total_steps=100, initial_fraction=0.5, final_fraction=0.005)
    assert s.fraction(0) == pytest.approx(0.5)
    assert s.fraction(50) == pytest.approx(0.005 + 0.4950 / 2)
    assert s.fraction(100) == pytest.approx(0.005)
    assert s.fraction(25) == pytest.approx(0.005 + 0.2475 * (1 + math.cos(math.pi / 4)))
    # Non-periodic: monotone, no rebound after the horizon.
    vals = [s.fraction(t) for t in range(0, 200, 5)]
    assert all(a >= b for a, b in zip(vals, vals[1:]))


def test_cubic():
    assert cubic_sparsity(0, start=10, end=90, initial=0.0, final=0.8) == 0.0
    assert cubic_sparsity(50, start=10, end=90, initial=0.0, final=0.8) == pytest.approx(0.8 * (1 - 0.125))
    assert cubic_sparsity(95, start=10, end=90, initial=0.0, final=0.8) == 0.8


def test_sema_follows_eq5_in_the_loops_order():
    """Eq. 5: T = 0 (the update step) EMA 0, T = 1 the weight itself, then the usual average,
    with the topology change before the step's EMA update, as train() calls them."""
    lin = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, 2.0], [3.0, 0.0]]))
    ms = MaskSet({"weight": lin.weight}, {"weight": torch.tensor([[1, 1], [1, 0]], dtype=torch.bool)})
    ema = SparseEMA(lin, beta=0.9)
    # Step 1's topology change: prune (0, 1), grow (1, 1); the grown weight is 0 right now.
    with torch.no_grad():
        lin.weight[0, 1] = 0.0
    ms.set_mask("weight", torch.tensor([[1, 0], [1, 1]], dtype=torch.bool))
    ema.on_topology_change(ms, {"weight": torch.tensor([[0, 0], [0, 1]], dtype=torch.bool)}, step=1)
    ema.update(lin, step=1)
    w_ema = ema.model.weight
    assert w_ema[0, 1] == 0.0 and w_ema[1, 1] == 0.0  # pruned out; grown at T = 0
    # Step 2: the grown weight is 0.5; SEMA gives its EMA 0.5, not (1 - 0.9) * 0.5.
    with torch.no_grad():
        lin.weight[1, 1] = 0.5
        lin.weight[0, 0] = 2.0
    ema.update(lin, step=2)
    assert w_ema[1, 1].item() == 0.5
    assert w_ema[0, 0].item() == pytest.approx(0.9 * 1.0 + 0.1 * 2.0)
    assert w_ema[0, 1] == 0.0
    # Step 3 averages as usual.
    with torch.no_grad():
        lin.weight[1, 1] = 1.5
    ema.update(lin, step=3)
    assert w_ema[1, 1].item() == pytest.approx(0.9 * 0.5 + 0.1 * 1.5)


def test_sema_order_of_calls_does_not_matter():
    """A change reported after the step's EMA update gives the same average."""
    results = []
    for change_first in (True, False):
        lin = nn.Linear(2, 1, bias=False)
        with torch.no_grad():
            lin.weight.copy_(torch.tensor([[1.0, 0.0]]))
        ms = MaskSet({"weight": lin.weight}, {"weight": torch.tensor([[1, 0]], dtype=torch.bool)})
        ema = SparseEMA(lin, beta=0.9)
        ms.set_mask("weight", torch.tensor([[1, 1]], dtype=torch.bool))
        grown = {"weight": torch.tensor([[0, 1]], dtype=torch.bool)}
        if change_first:
            ema.on_topology_change(ms, grown, step=5)
        ema.update(lin, step=5)
        if not change_first:
            ema.on_topology_change(ms, grown, step=5)
        with torch.no_grad():
            lin.weight[0, 1] = -0.25
        ema.update(lin, step=6)
        results.append(ema.model.weight.detach().clone())
    assert results[0][0, 1] == results[1][0, 1] == -0.25


def test_the_ema_warmup_ramps_the_decay_up_to_beta():
    """min(beta, (1 + t) / (10 + t)): 0.1 at t = 0, 2/11 at t = 1, beta from t = 8,990 at 0.999;
    counted from start_step, a copy before it; off, beta from the first step."""
    lin = nn.Linear(1, 1, bias=False)
    warm = SparseEMA(lin, beta=0.999, warmup=True)
    assert warm.decay(0) == pytest.approx(0.1) and warm.decay(1) == pytest.approx(2 / 11)
    assert warm.decay(8989) < 0.999 and warm.decay(8990) == pytest.approx(0.999) and warm.decay(20000) == 0.999
    assert SparseEMA(lin, beta=0.999).decay(1) == 0.999
    late = SparseEMA(lin, beta=0.9, warmup=True, start_step=5)
    assert late.decay(4) == 0.0 and late.decay(5) == pytest.approx(0.1) and late.decay(7) == pytest.approx(3 / 12)
    # one update at step 1 from the initial weight 1.0 to the trained 3.0: 2/11 * 1 + 9/11 * 3
    with torch.no_grad():
        lin.weight.fill_(1.0)
    ema = SparseEMA(lin, beta=0.999, warmup=True)
    with torch.no_grad():
        lin.weight.fill_(3.0)
    ema.update(lin, step=1)
    assert ema.model.weight.item() == pytest.approx(2 / 11 * 1.0 + 9 / 11 * 3.0)
