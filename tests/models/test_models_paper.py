"""SNGAN-32, BigGAN-32/128: exact reference parameter counts (built on the meta device), shapes,
spectral-norm placement, conditioning and the width multiplier."""

import pytest
import torch
from torch import nn

from sparsegan.models import ModelSpec, build_models
from sparsegan.sparsity import MaskSet, prunable_parameters


def _count(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def _meta(name, **kw):
    with torch.device("meta"):
        return build_models(name, ModelSpec(channels=3, **kw))


@pytest.mark.parametrize(
    "name, kw, g_count, d_count",
    [
        ("sngan32", {}, 4_276_739, 1_053_824),
        ("biggan32", {"num_classes": 10}, 4_304_387, 4_207_361),
        ("biggan128", {"num_classes": 1000, "z_dim": 120}, 70_433_988, 87_982_370),
    ],
)
def test_reference_parameter_counts(name, kw, g_count, d_count):
    g, d = _meta(name, **kw)
    assert next(g.parameters()).device.type == "meta"
    assert (_count(g), _count(d)) == (g_count, d_count)


@pytest.mark.parametrize("name, kw", [("sngan32", {}), ("biggan32", {"num_classes": 10})])
def test_conv_weight_count(name, kw):
    g, _ = _meta(name, **kw)
    conv = prunable_parameters(g, "conv")
    assert sum(p.numel() for p in conv.values()) == 3_742_464


def test_spectral_norm_placement_and_buffers():
    g, d = _meta("sngan32")
    # SNGAN: every D layer spectral-normed, no G layer.
    d_layers = [m for m in d.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert d_layers and all(hasattr(m, "parametrizations") for m in d_layers)
    assert not any(hasattr(m, "parametrizations") for m in g.modules())
    # The power-iteration vectors are buffers, never parameters.
    assert not any(n.endswith(("_u", "_v")) for n, _ in d.named_parameters())
    assert any(n.endswith("_u") for n, _ in d.named_buffers())
    # The engine masks the tensor the optimizer updates.
    assert all(n.endswith("parametrizations.weight.original") for n in prunable_parameters(d))
    bg, bd = _meta("biggan32", num_classes=10)
    for net in (bg, bd):
        layers = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
        assert all(hasattr(m, "parametrizations") for m in layers)


def test_sngan_forward_and_masks_hold_through_spectral_norm():
    torch.manual_seed(0)
    g, d = build_models("sngan32", ModelSpec(channels=3, width=16))
    x = g(g.sample_z(4))
    assert x.shape == (4, 3, 32, 32) and x.abs().max() <= 1
    assert d(x).shape == (4,)
    masks = MaskSet.random(prunable_parameters(d), 0.5, generator=torch.Generator().manual_seed(0))
    masks.apply_()
    for n, p in masks.params.items():
        assert (p[~masks.masks[n]] == 0).all()


def test_biggan32_is_conditional_on_labels():
    torch.manual_seed(0)
    g, d = build_models("biggan32", ModelSpec(channels=3, num_classes=10, width=8))
    g.eval()
    z = g.sample_z(2, torch.Generator().manual_seed(1))
    x0, x1 = g(z, torch.tensor([0, 0])), g(z, torch.tensor([5, 5]))
    assert x0.shape == (2, 3, 32, 32) and not torch.equal(x0, x1)
    # Projection D: the same image scored differently under different labels.
    with torch.no_grad():
        d.embed.parametrizations.weight.original.normal_()
    assert not torch.equal(d(x0, torch.tensor([0, 0])), d(x0, torch.tensor([5, 5])))
    assert g.num_classes == 10


def test_biggan128_forward_small_width():
    torch.manual_seed(0)
    g, d = build_models("biggan128", ModelSpec(channels=3, num_classes=4, z_dim=120, width=8))
    y = torch.tensor([1, 2])
    x = g(g.sample_z(2), y)
    assert g.z_dim == 120 and x.shape == (2, 3, 128, 128)
    assert d(x, y).shape == (2,)


def test_width_multiplier_halves_channels():
    full, _ = _meta("sngan32")
    half, hd = _meta("sngan32", width_multiplier=0.5)
    assert half.linear.out_features == full.linear.out_features // 2
    assert hd.linear.in_features == 64
    bg, _ = _meta("biggan128", num_classes=1000, z_dim=120, width_multiplier=0.5)
    assert bg.ch0 == 16 * 48


def test_biggan_needs_classes():
    from sparsegan.errors import UserError

    with pytest.raises(UserError, match="class-conditional"):
        _meta("biggan32", num_classes=0)
