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


def test_sema_grown_weight_takes_current_value_and_pruned_zero():
    lin = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, 2.0], [3.0, 0.0]]))
    ms = MaskSet({"weight": lin.weight}, {"weight": torch.tensor([[1, 1], [1, 0]], dtype=torch.bool)})
    ema = SparseEMA(lin, beta=0.9)
    # Topology change: prune (0, 1), grow (1, 1); the grown weight is 0 right now.
    with torch.no_grad():
        lin.weight[0, 1] = 0.0
    new = torch.tensor([[1, 0], [1, 1]], dtype=torch.bool)
    ms.set_mask("weight", new)
    grown = {"weight": torch.tensor([[0, 0], [0, 1]], dtype=torch.bool)}
    ema.on_topology_change(ms, grown)
    w_ema = ema.model.weight
    assert w_ema[0, 1] == 0.0 and w_ema[1, 1] == 0.0
    # After one step the grown weight is 0.5: SEMA gives its EMA 0.5, not (1 - 0.9) * 0.5.
    with torch.no_grad():
        lin.weight[1, 1] = 0.5
        lin.weight[0, 0] = 2.0
    ema.update(lin, step=1, masks=ms)
    assert w_ema[1, 1].item() == pytest.approx(0.5)
    assert w_ema[0, 0].item() == pytest.approx(0.9 * 1.0 + 0.1 * 2.0)
    assert w_ema[0, 1] == 0.0
    # The next step averages as usual.
    with torch.no_grad():
        lin.weight[1, 1] = 1.5
    ema.update(lin, step=2, masks=ms)
    assert w_ema[1, 1].item() == pytest.approx(0.9 * 0.5 + 0.1 * 1.5)
