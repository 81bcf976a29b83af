"""CycleGAN: reference parameter counts (meta device), shapes at small sizes, the builder's
small-image choices and the prunable weights of the two-network modules."""

import pytest
import torch
from torch import nn

from sparsegan.errors import UserError
from sparsegan.models import MODEL_KIND, NATIVE_RESOLUTION, ModelSpec, build_models
from sparsegan.models.cyclegan import (
    CycleDiscriminators,
    CycleGenerators,
    PatchDiscriminator,
    ResidualBlock,
    ResnetGenerator,
)
from sparsegan.sparsity import prunable_parameters


def _count(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


# ResnetGenerator(3, 3, 64, blocks), every conv with a bias (InstanceNorm has no parameters):
#   7x7 in:      3*64*49 + 64      =      9,472
#   down 1:     64*128*9 + 128     =     73,856
#   down 2:    128*256*9 + 256     =    295,168
#   block:  2*(256*256*9 + 256)    =  1,180,160 each
#   up 1:      256*128*9 + 128     =    295,040
#   up 2:       128*64*9 + 64      =     73,792
#   7x7 out:     64*3*49 + 3       =      9,411
# outside the blocks: 756,739; 9 blocks: 756,739 + 10,621,440 = 11,378,179; 6 blocks: 7,837,699.
# PatchDiscriminator(3, 64, 3), 4x4 convs with biases:
#   3*64*16 + 64 = 3,136; 64*128*16 + 128 = 131,200; 128*256*16 + 256 = 524,544;
#   256*512*16 + 512 = 2,097,664; 512*1*16 + 1 = 8,193; total 2,764,737.
@pytest.mark.parametrize("blocks, count", [(9, 11_378_179), (6, 7_837_699)])
def test_generator_reference_parameter_count(blocks, count):
    with torch.device("meta"):
        g = ResnetGenerator(3, 3, 64, blocks)
    assert next(g.parameters()).device.type == "meta"
    assert _count(g) == count


def test_discriminator_reference_parameter_count():
    with torch.device("meta"):
        d = PatchDiscriminator(3, 64, 3)
    assert _count(d) == 2_764_737


def test_builder_defaults_are_the_reference_at_256():
    with torch.device("meta"):
        g, d = build_models("cyclegan", ModelSpec(channels=3))
    assert (_count(g), _count(d)) == (2 * 11_378_179, 2 * 2_764_737)
    assert (g.channels, g.resolution) == (3, 256)
    assert NATIVE_RESOLUTION["cyclegan"] == 256 and MODEL_KIND["cyclegan"] == "translation"


@pytest.mark.parametrize("channels, size", [(1, 28), (3, 32)])
def test_shapes_at_small_sizes(channels, size):
    torch.manual_seed(0)
    g, d = build_models("cyclegan", ModelSpec(channels=channels, resolution=size, width=4))
    x = torch.rand(2, channels, size, size) * 2 - 1
    for direction in ("ab", "ba"):
        y = g(x, direction)
        assert y.shape == x.shape and y.abs().max() <= 1
    for domain in ("a", "b"):
        logits = d(x, domain)
        assert logits.shape[:2] == (2, 1) and min(logits.shape[2:]) >= 1


def test_reference_size_at_a_tiny_width():
    g, d = build_models("cyclegan", ModelSpec(channels=3, width=2, depth=1))  # 256 px by default
    x = torch.zeros(1, 3, 256, 256)
    assert g(x, "ba").shape == x.shape
    assert d(x, "b").shape == (1, 1, 30, 30)  # the 70x70 PatchGAN's 30x30 map: 128, 64, 32, 31, 30


def test_small_images_keep_a_patch_map():
    # 28 -> 14 -> 7 -> 6 -> 5 with 2 layers; 3 layers would leave a single logit for the whole image.
    x = torch.zeros(1, 1, 28, 28)
    assert PatchDiscriminator(1, 4, 2)(x).shape == (1, 1, 5, 5)
    assert PatchDiscriminator(1, 4, 3)(x).shape == (1, 1, 1, 1)
    assert PatchDiscriminator(3, 4, 2)(torch.zeros(1, 3, 32, 32)).shape == (1, 1, 6, 6)


def _blocks(g: CycleGenerators) -> int:
    return sum(isinstance(m, ResidualBlock) for m in g.ab.modules())


def _d_layers(d: CycleDiscriminators) -> int:
    return sum(isinstance(m, nn.Conv2d) and m.stride == (2, 2) for m in d.a.modules())


def test_builder_small_image_choices_and_depth():
    g, d = build_models("cyclegan", ModelSpec(channels=1, resolution=28, width=4))
    assert (_blocks(g), _d_layers(d), g.channels, g.resolution) == (3, 2, 1, 28)
    assert g.ab.net[1].out_channels == 4
    with torch.device("meta"):
        g, d = build_models("cyclegan", ModelSpec(channels=3, resolution=128, width=4))
        assert (_blocks(g), _d_layers(d)) == (6, 3)
        g, _ = build_models("cyclegan", ModelSpec(channels=3, resolution=128, width=4, depth=2))
        assert _blocks(g) == 2
        g, _ = build_models("cyclegan", ModelSpec(channels=1, resolution=28, width=8, width_multiplier=0.3))
        assert g.ab.net[1].out_channels == 2  # round(8 * 0.3)


def test_builder_refusals():
    with pytest.raises(UserError, match="divisible by 4"):
        build_models("cyclegan", ModelSpec(resolution=30))
    with pytest.raises(UserError, match="depth"):
        build_models("cyclegan", ModelSpec(resolution=28, depth=-1))
    g, d = build_models("cyclegan", ModelSpec(resolution=28, width=1, depth=0))
    with pytest.raises(ValueError, match="direction"):
        g(torch.zeros(1, 1, 28, 28), "ac")
    with pytest.raises(ValueError, match="domain"):
        d(torch.zeros(1, 1, 28, 28), "c")


def test_every_conv_weight_is_prunable_under_its_network_prefix():
    with torch.device("meta"):
        g, d = build_models("cyclegan", ModelSpec(channels=3, resolution=32, width=4))
    for net, prefixes in ((g, ("ab.", "ba.")), (d, ("a.", "b."))):
        convs = {n + ".weight" for n, m in net.named_modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))}
        found = prunable_parameters(net, "all")
        assert set(found) == convs == set(prunable_parameters(net, "conv"))
        for p in prefixes:
            assert any(n.startswith(p) for n in found)
        assert all(n.startswith(prefixes) for n in found)
    # 3 blocks: 3 + 2 * 3 + 3 convs per generator; 2 layers: 2 + 2 convs per discriminator.
    assert len(prunable_parameters(g)) == 2 * 12 and len(prunable_parameters(d)) == 2 * 4
