"""DDPM's schedule, objective and DDIM sampler on hand-checkable cases, and the U-Net denoiser as
the engine sees it. The sampler test gives DDIM the exact optimal denoiser of a 1-D Gaussian
mixture (its noise prediction in closed form) and checks that the samples have the mixture's
weights, means and spreads."""

import math

import pytest
import torch
from torch import nn

from sparsegan.models import MODEL_KIND, ModelSpec, build_models, model_nets
from sparsegan.models.ddpm import alpha_bar, betas, ddim_sample, ddim_step, q_sample, sample_timesteps
from sparsegan.models.unet import UNet
from sparsegan.sparsity import prunable_parameters
from sparsegan.training.objectives import diffusion_loss


def test_linear_schedule_values():
    b = betas("linear")
    assert b[0].item() == pytest.approx(1e-4) and b[-1].item() == pytest.approx(0.02)
    assert b[500].item() == pytest.approx(1e-4 + (0.02 - 1e-4) * 500 / 999)
    a = alpha_bar("linear")
    assert a.shape == (1000,)
    assert a[0].item() == pytest.approx(1 - 1e-4)
    assert a[1].item() == pytest.approx((1 - 1e-4) * (1 - b[1].item()))
    # abar_T of Ho et al.'s schedule: 4.04e-5, so x_T is noise to sqrt(abar) = 0.0064 of the signal
    assert a[-1].item() == pytest.approx(4.0358e-5, rel=1e-3)
    assert bool((a[1:] < a[:-1]).all())


def test_cosine_schedule_values():
    s = 0.008

    def f(t):
        return math.cos((t / 1000 + s) / (1 + s) * math.pi / 2) ** 2

    a = alpha_bar("cosine")
    # abar at index t is the continuous schedule at t + 1 (index 0 is the first noising step)
    assert a[0].item() == pytest.approx(f(1) / f(0), rel=1e-6)
    assert a[499].item() == pytest.approx(f(500) / f(0), rel=1e-5)
    assert a[499].item() == pytest.approx(0.4938, abs=1e-4)
    assert betas("cosine").max().item() == pytest.approx(0.999)  # clipped at the end
    with pytest.raises(ValueError, match="linear, cosine"):
        betas("quadratic")


def test_q_sample_by_hand():
    abar = torch.tensor([0.64, 0.36])
    x0, eps = torch.tensor([[1.0], [0.5]]), torch.tensor([[2.0], [-1.0]])
    out = q_sample(abar, x0, torch.tensor([0, 1]), eps)
    # 0.8 * 1 + 0.6 * 2 = 2.0; 0.6 * 0.5 + 0.8 * -1 = -0.5
    assert torch.allclose(out, torch.tensor([[2.0], [-0.5]]))


def test_sample_timesteps():
    assert sample_timesteps(1) == [999]
    assert sample_timesteps(4) == [999, 666, 333, 0]
    assert sample_timesteps(1000) == list(range(999, -1, -1))
    with pytest.raises(ValueError):
        sample_timesteps(0)


def test_one_ddim_step_against_the_formula():
    abar = torch.tensor([0.9, 0.5, 0.1])
    x_t, eps = torch.tensor([0.3, -0.2]), torch.tensor([0.1, 0.4])
    # x0 = (x_t - sqrt(1 - 0.1) eps) / sqrt(0.1); x_s = sqrt(0.9) x0 + sqrt(0.1) eps
    x0 = [(0.3 - math.sqrt(0.9) * 0.1) / math.sqrt(0.1), (-0.2 - math.sqrt(0.9) * 0.4) / math.sqrt(0.1)]
    want = [math.sqrt(0.9) * x0[i] + math.sqrt(0.1) * [0.1, 0.4][i] for i in range(2)]
    got = ddim_step(abar, x_t, eps, t=2, s=0, clip=False)
    assert got.tolist() == pytest.approx(want, rel=1e-6)
    # to the data (s = -1, abar = 1): the predicted x0 itself
    assert ddim_step(abar, x_t, eps, t=2, s=-1, clip=False).tolist() == pytest.approx(x0, rel=1e-6)
    # clipped: x0 = (0.3 - 0.949 * 0.1) / 0.316 = 0.65 stays; (-0.2 - 0.949 * 0.4) / 0.316 = -1.83 -> -1,
    # and eps is recomputed from the clipped x0: (x_t - sqrt(0.1) x0) / sqrt(0.9)
    e1 = (-0.2 - math.sqrt(0.1) * -1.0) / math.sqrt(0.9)
    clipped = ddim_step(abar, x_t, eps, t=2, s=0, clip=True)
    assert clipped[0].item() == pytest.approx(want[0], rel=1e-6)
    assert clipped[1].item() == pytest.approx(math.sqrt(0.9) * -1.0 + math.sqrt(0.1) * e1, rel=1e-6)


# A 1-D mixture: weights, means, standard deviations.
MIX = (torch.tensor([0.3, 0.7], dtype=torch.float64), torch.tensor([-0.6, 0.5], dtype=torch.float64),
       torch.tensor([0.08, 0.15], dtype=torch.float64))


def optimal_eps(abar: torch.Tensor):
    """The exact eps-prediction of the mixture: -sqrt(1 - abar_t) * score of p_t, where p_t is the
    mixture of N(sqrt(abar_t) m_k, abar_t s_k^2 + 1 - abar_t)."""
    w, m, sd = MIX

    def eps(x, t):
        a = abar[t].double()[:, None, None, None]
        x = x.double()
        mean, var = a.sqrt() * m, a * sd ** 2 + 1 - a  # [N, 1, 1, K] against x [N, 1, 1, 1]
        logp = torch.log(w) - 0.5 * torch.log(2 * math.pi * var) - 0.5 * (x - mean) ** 2 / var
        r = torch.softmax(logp, dim=-1)
        score = (r * -(x - mean) / var).sum(-1, keepdim=True)
        return (-(1 - a).sqrt() * score).float()

    return eps


def test_ddim_with_the_optimal_denoiser_reproduces_a_gaussian_mixture():
    abar = alpha_bar("linear")
    calls = []
    eps = optimal_eps(abar)

    def denoiser(x, t):
        calls.append(int(t[0]))
        return eps(x, t)

    z = torch.randn(20_000, 1, 1, 1, generator=torch.Generator().manual_seed(0))
    x = ddim_sample(denoiser, abar, z, steps=100, clip=False).flatten().double()
    assert len(calls) == 100 and calls[0] == 999 and calls[-1] == 0  # NFE = steps
    w, m, sd = MIX
    low = x < 0
    assert low.double().mean().item() == pytest.approx(w[0].item(), abs=0.015)
    for k, part in enumerate((x[low], x[~low])):
        assert part.mean().item() == pytest.approx(m[k].item(), abs=0.02)
        assert part.std().item() == pytest.approx(sd[k].item(), rel=0.15)
    # One step lands on E[x0 | x_T], about the mixture's mean: the sampler, not the data, limits NFE = 1.
    one = ddim_sample(eps, abar, z, steps=1, clip=False).flatten().double()
    assert one.mean().item() == pytest.approx((w * m).sum().item(), abs=0.02) and one.std().item() < 0.05


def test_diffusion_loss_by_hand():
    abar = torch.tensor([0.5, 0.25])
    x0, eps = torch.ones(2, 1, 2, 2), torch.full((2, 1, 2, 2), 2.0)
    t = torch.tensor([0, 1])
    # a denoiser that predicts 0 is off by eps everywhere: loss = mean(eps^2) = 4
    assert diffusion_loss(lambda x, s: torch.zeros_like(x), abar, x0, t, eps).item() == pytest.approx(4.0)
    # one that recovers eps from x_t and x0 exactly has loss 0
    exact = lambda x, s: (x - abar[s].sqrt().view(-1, 1, 1, 1) * x0) / (1 - abar[s]).sqrt().view(-1, 1, 1, 1)  # noqa: E731
    assert diffusion_loss(exact, abar, x0, t, eps).item() == pytest.approx(0.0, abs=1e-6)


def test_unet_is_one_sparse_net_of_convs_and_linears():
    assert MODEL_KIND["unet"] == "diffusion" and model_nets("unet") == ("G",) and model_nets("dcgan") == ("G", "D")
    G, D = build_models("unet", ModelSpec(channels=1, width=8, sample_steps=3))
    assert D is None
    prunable = prunable_parameters(G, "all")
    layers = [m for m in G.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(prunable) == len(layers) and all(n.startswith("denoiser.") for n in prunable)
    assert not any("norm" in n for n in prunable)  # GroupNorm gains stay dense
    x = torch.randn(2, 1, 32, 32)
    assert G.denoiser(x, torch.tensor([0, 999])).shape == x.shape
    # attention at the lowest resolution adds its layers; the denoiser keeps its shape contract
    A, _ = build_models("unet", ModelSpec(channels=3, width=8, attention=True))
    assert A.denoiser.attn is not None
    assert A.denoiser(torch.randn(2, 3, 32, 32), torch.tensor([5, 6])).shape == (2, 3, 32, 32)
    assert len(prunable_parameters(A, "all")) == len(prunable) + 2


def test_generator_forward_is_the_ddim_sampler():
    G, _ = build_models("unet", ModelSpec(channels=1, width=8, sample_steps=3))
    calls = []
    G.denoiser.register_forward_hook(lambda m, args, out: calls.append(int(args[1][0])))
    z = G.sample_z(2, torch.Generator().manual_seed(0))
    assert z.shape == (2, 1, 32, 32)
    with torch.no_grad():
        x = G(z)
    assert calls == [999, 500, 0]  # NFE 3
    assert x.shape == z.shape and x.abs().max() <= 1.0  # x0 clipped to the pixel range
    with torch.no_grad():
        same = ddim_sample(G.denoiser, G.alpha_bar, z, 3)
    assert torch.equal(x, same)
    # the schedule is a constant of the model, not a saved weight
    assert "alpha_bar" not in G.state_dict()


def test_unet_spec_errors():
    from sparsegan.errors import UserError

    with pytest.raises(UserError, match="1..1000"):
        build_models("unet", ModelSpec(sample_steps=1001))
    with pytest.raises(UserError, match="32x32"):
        build_models("unet", ModelSpec(resolution=64))
    assert isinstance(build_models("unet", ModelSpec(width=8))[0].denoiser, UNet)
