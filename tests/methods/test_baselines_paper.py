"""Each baseline does what its paper says, through the CLI on tiny models (issue 12, items 7-10):
PF uniform vs global, GMP's gradual schedule, ADAPT strict at its cap and its global ranking,
momentum growth with the optimizer's beta1, dense conditional-BN maps, the VAE's ELBO, GraSP's
batches."""

import json
import math

import pytest
import torch
from safetensors.torch import load_file

from idx_files import write_fake_mnist
from sparsegan.cli import main
from sparsegan.models import ModelSpec, build_models
from sparsegan.sparsity import MaskSet, criterion_state, hessian_gradient, prunable_parameters, prune_and_regrow
from sparsegan.sparsity.criteria import momentum
from sparsegan.training import read_records

MLP = ["--model", "mlp", "--model-width", "8"]
TINY_FLAGS = ["--batch-size", "8", "--log-every", "1000", "--sample-every", "1000", "--checkpoint-every", "1000", *MLP]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_fake_mnist(tmp_path_factory.mktemp("data"), n_train=256, n_test=8)


def _summary(run):
    return json.loads((run / "summary.json").read_text())


# --- item 7: PF uniform prunes every layer to the same density -----------------------------------
@pytest.fixture(scope="module")
def dense_run(tiny_run, tmp_path_factory, data):
    out = tmp_path_factory.mktemp("dense") / "dense"
    assert tiny_run(out, "--method", "dense", "--steps", "3", data=data) == 0
    return out


def test_pf_uniform_gives_every_layer_the_same_density(tiny_run, tmp_path, data, dense_run):
    out = tmp_path / "pf"
    assert tiny_run(out, "--method", "pf", "--from", str(dense_run), "--ranking", "uniform",
                    "--prune-nets", "GD", "--sparsity-g", "0.9", "--sparsity-d", "0.5", "--steps", "2", data=data) == 0
    masks = load_file(out / "final" / "masks.safetensors")
    dense = {"G": load_file(dense_run / "final" / "generator.safetensors"),
             "D": load_file(dense_run / "final" / "discriminator.safetensors")}
    for key, m in masks.items():
        net, name = key.split(".", 1)
        density = 0.1 if net == "G" else 0.5
        # mlp width 8: G layers 128x8, 8x16, 16x32, 32x784 all at 10 % (ERK would give ~32/32/16/7 %)
        assert abs(int(m.sum()) - density * m.numel()) <= 1, (key, int(m.sum()), m.numel())
        w = dense[net][name].abs()
        assert w[m.bool()].min() >= w[~m.bool()].max()  # each layer keeps its own largest magnitudes
    rec = read_records(out, "pf")[0]
    assert rec["ranking"] == "uniform"


def test_pf_global_keeps_the_largest_magnitudes_of_the_net(tiny_run, tmp_path, data, dense_run):
    out = tmp_path / "pf"
    assert tiny_run(out, "--method", "pf", "--from", str(dense_run), "--ranking", "global",
                    "--sparsity-g", "0.9", "--steps", "2", data=data) == 0
    masks = load_file(out / "final" / "masks.safetensors")
    dense = load_file(dense_run / "final" / "generator.safetensors")
    g = {k[2:]: m.bool() for k, m in masks.items() if k.startswith("G.")}
    kept = torch.cat([dense[n][m].abs() for n, m in g.items()])
    dropped = torch.cat([dense[n][~m].abs() for n, m in g.items()])
    assert kept.numel() == round(0.1 * (kept.numel() + dropped.numel()))
    assert kept.min() >= dropped.max()
    # Global ranking does not give every layer the same density (else the test proves nothing).
    assert len({round(float(m.float().mean()), 2) for m in g.values()}) > 1


def test_ranking_layer_is_refused_in_one_line(tiny_run, tmp_path, data, dense_run, capsys):
    rc = tiny_run(tmp_path / "pf", "--method", "pf", "--from", str(dense_run), "--ranking", "layer", "--steps", "2",
                  data=data)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "uniform" in err[0] and "distribution" in err[0]


# --- item 8: GMP prunes gradually at any run length, every layer at s_t --------------------------
def test_gmp_default_schedule_is_gradual_and_uniform(tiny_run, tmp_path, data):
    out = tmp_path / "gmp"
    # 200 steps: the default window is steps 20..160, split into 20 pruning steps (every 7 steps).
    assert tiny_run(out, "--method", "gmp", "--steps", "200", "--sparsity-g", "0.9", "--sparsity-d", "0.5",
                    data=data) == 0
    topo = [r for r in read_records(out, "topology") if r["net"] == "G"]
    assert [r["step"] for r in topo] == [20 + 7 * k for k in range(1, 21)]
    by_step = {r["step"]: r for r in topo}
    # Hand-checked s_t = 0.9 (1 - (1 - (t - 20) / 140)^3): 0.9 * (1 - 0.95^3) at 27, 0.9 * 7/8 at 90.
    assert by_step[27]["target_sparsity"] == pytest.approx(0.1283625)
    assert by_step[90]["target_sparsity"] == pytest.approx(0.7875)
    assert by_step[160]["target_sparsity"] == pytest.approx(0.9)
    masks = load_file(out / "final" / "masks.safetensors")
    numel = {k[2:]: m.numel() for k, m in masks.items() if k.startswith("G.")}
    for r in topo:
        s = 0.9 * (1 - (1 - (r["step"] - 20) / 140) ** 3)
        assert r["target_sparsity"] == pytest.approx(s) and r["ranking"] == "uniform"
        for name, sl in r["layer_sparsity"].items():  # the same s_t in every layer, to one weight
            assert abs(sl * numel[name] - s * numel[name]) <= 1 + 1e-6, (r["step"], name)
    s = _summary(out)
    for net, target in (("G", 0.9), ("D", 0.5)):
        n = s["params"][net]["prunable"]
        assert round(s["density"][net] * n) == round((1 - target) * n)  # the final target, exact


def test_gmp_refuses_a_one_shot_schedule(tiny_run, tmp_path, data, capsys):
    # An interval longer than the window would be one-shot pruning: refused in one line.
    rc = tiny_run(tmp_path / "bad", "--method", "gmp", "--steps", "40", "--gmp-interval", "100", data=data)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "--gmp-interval 100" in err[0] and "at least 2" in err[0]


# --- item 9: ADAPT strict does prune-and-regrow on D at its cap; relaxed grows beyond --------------
# --adapt-low/-high far below any balance ratio: every adjustment asks for a stronger D.
ALWAYS_GROW = ["--adapt-low=-1e30", "--adapt-high=-1e29", "--adapt-interval", "4", "--balance-every", "2",
               "--update-interval", "4", "--steps", "12", "--sparsity-g", "0.8", "--sparsity-d", "0.5"]


@pytest.mark.parametrize("ranking", ["global", "layer"])
def test_adapt_strict_regrows_d_at_the_cap(tiny_run, tmp_path, data, ranking):
    out = tmp_path / "strict"
    assert tiny_run(out, "--method", "adapt", "--adapt-variant", "strict", "--adapt-ranking", ranking,
                    *ALWAYS_GROW, data=data) == 0
    d = [r for r in read_records(out, "topology") if r["net"] == "D" and "adapt" in r]
    assert [r["step"] for r in d] == [4, 8]
    n = _summary(out)["params"]["D"]["prunable"]
    for r in d:
        assert r["adapt"] == "regrow" and r["pruned"] == r["grown"] > 0
        assert r["active"] == round(0.5 * n) and r["prune_fraction"] > 0
    assert [a["action"] for a in read_records(out, "adapt")] == ["regrow", "regrow"]
    assert round(_summary(out)["density"]["D"] * n) == round(0.5 * n)


def test_adapt_relaxed_grows_beyond_half(tiny_run, tmp_path, data):
    out = tmp_path / "relaxed"
    assert tiny_run(out, "--method", "adapt", "--adapt-variant", "relaxed", *ALWAYS_GROW, data=data) == 0
    d = [r for r in read_records(out, "topology") if r["net"] == "D" and "adapt" in r]
    n = _summary(out)["params"]["D"]["prunable"]
    assert [(r["adapt"], r["active"], r["pruned"]) for r in d] == [
        ("grow", round(0.55 * n), 0), ("grow", round(0.6 * n), 0)]


def test_adapt_ranks_g_globally_by_default(tiny_run, tmp_path, data):
    out = tmp_path / "adapt"
    assert tiny_run(out, "--method", "adapt", *ALWAYS_GROW, data=data) == 0
    g = [r for r in read_records(out, "topology") if r["net"] == "G"]
    n = _summary(out)["params"]["G"]["prunable"]
    assert [r["step"] for r in g] == [4, 8]
    for r in g:
        assert r["ranking"] == "global" and r["pruned"] == r["grown"] > 0 and r["active"] == round(0.2 * n)


def test_global_prune_and_regrow_by_hand():
    a = torch.nn.Parameter(torch.tensor([5.0, 1.0, 0.0, 0.0]))
    b = torch.nn.Parameter(torch.tensor([4.0, 3.0, 0.0, 0.0]))
    masks = MaskSet({"a": a, "b": b}, {"a": torch.tensor([1, 1, 0, 0]).bool(), "b": torch.tensor([1, 1, 0, 0]).bool()})
    grads = {"a": torch.tensor([0.0, 9.0, 1.0, 2.0]), "b": torch.tensor([0.0, 0.0, 8.0, 0.5])}
    # 4 active, fraction 0.5: keep |w| 5 and 4 (global), grow the 2 largest |g| among the rest:
    # a[1] (9: dropped and grown back, so it keeps its value 1) and b[2] (8: new, starts at 0).
    changes, grown = prune_and_regrow(masks, 0.5, ranking="global", dense_grads=grads)
    assert masks.masks["a"].tolist() == [True, True, False, False]
    assert masks.masks["b"].tolist() == [True, False, True, False]
    assert a.tolist() == [5.0, 1.0, 0.0, 0.0] and b.tolist() == [4.0, 0.0, 0.0, 0.0]
    assert [(c.name, c.pruned, c.grown) for c in changes] == [("a", 0, 0), ("b", 1, 1)]
    assert grown["b"].tolist() == [False, False, True, False] and not grown["a"].any()


# --- item 10a: momentum growth uses the optimizer's beta1 ----------------------------------------
def test_momentum_score_uses_the_param_groups_beta1():
    w = torch.nn.Parameter(torch.zeros(3))
    opt = torch.optim.Adam([w], betas=(0.5, 0.999))
    w.grad = torch.tensor([1.0, -2.0, 4.0])
    opt.step()  # exp_avg = 0.5 * g = [0.5, -1, 2]
    g = torch.tensor([3.0, 2.0, -1.0])
    score = momentum(w, g, criterion_state(opt, w), None)
    assert score.tolist() == pytest.approx([1.75, 0.5, 0.5])  # |0.5 m + 0.5 g|; beta1 0.9 would give 0.75 first


def test_momentum_growth_with_beta1_zero_is_gradient_growth(tiny_run, tmp_path, data):
    # With beta1 = 0 the moment folds in only this step's gradient: the same masks as --grow gradient.
    args = ["--method", "stu", "--steps", "9", "--update-interval", "2", "--sparsity-g", "0.8",
            "--sparsity-d", "0.5", "--beta1", "0.0", "--explore", "GD"]
    assert tiny_run(tmp_path / "mom", *args, "--grow", "momentum", data=data) == 0
    assert tiny_run(tmp_path / "grad", *args, "--grow", "gradient", data=data) == 0
    mom = load_file(tmp_path / "mom" / "final" / "masks.safetensors")
    grad = load_file(tmp_path / "grad" / "final" / "masks.safetensors")
    assert all(torch.equal(mom[k], grad[k]) for k in grad)
    assert sum(r["grown"] for r in read_records(tmp_path / "mom", "topology")) > 0


# --- item 10b: the linear maps that make BigGAN-128's conditional-BN gains and biases stay dense ---
def test_biggan128_conditional_bn_maps_are_not_prunable():
    spec = ModelSpec(channels=3, num_classes=10, z_dim=120, width=4)
    with torch.device("meta"):
        G, _ = build_models("biggan128", spec)
    names = set(prunable_parameters(G, "all"))
    cbn = [n for n, _ in G.named_parameters() if ".gain." in n or ".bias.parametrizations" in n]
    assert cbn and not names & set(cbn)
    assert any("conv" in n for n in names) and any(n.startswith("linear.") for n in names)


# --- item 10c: the logged VAE ELBO includes the Gaussian constant ---------------------------------
def test_vae_elbo_includes_the_gaussian_constant(tmp_path, data):
    out = tmp_path / "vae"
    assert main(["train", "--data-root", str(data), "--out", str(out), "--no-progress", "--batch-size", "8",
                 "--model", "vae", "--model-width", "4", "--method", "dense", "--steps", "2"]) == 0
    rec = read_records(out, "train")[-1]
    # 32x32 single-channel images: D = 1024 values, log N(x; mu, I) = -0.5 |x - mu|^2 - 512 log(2 pi).
    assert rec["elbo"] == pytest.approx(-(rec["recon"] + rec["kl"]) - 512 * math.log(2 * math.pi), rel=1e-5)


# --- item 10d: GraSP's g and Hg come from the same batches ----------------------------------------
@pytest.mark.parametrize("batches", [1, 2])
def test_grasp_gradient_and_hessian_use_the_same_batches(batches):
    # Batch b's loss is 0.5 c_b |w|^2 + <d_b, w>: g_b = c_b w + d_b, H_b = c_b I. loss_fn draws a new
    # batch at every call, as the loop's probe does.
    w = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    cs, ds = [1.0, 3.0, 5.0, 7.0], [torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])] * 2
    calls = []

    def loss_fn():
        b = len(calls)
        calls.append(b)
        return 0.5 * cs[b] * (w * w).sum() + (ds[b] * w).sum()

    hg = hessian_gradient({"w": w}, loss_fn, batches)
    used = range(batches)
    g = sum(cs[b] * w.detach() + ds[b] for b in used)
    assert calls == list(used)
    assert hg["w"].tolist() == pytest.approx((sum(cs[b] for b in used) * g).tolist())


# --- the recipes that claim these baselines run them as the papers do -----------------------------
def test_pf_sweep_and_adapt_recipes_match_the_papers():
    from pathlib import Path

    from sparsegan.config import build_config, load_yaml
    from sparsegan.experiments.grid import load_grid

    configs = Path(__file__).resolve().parents[2] / "configs"
    pf = [p.values for p in load_grid(configs / "sweeps" / "pf-g-vs-gd.yaml").points if p.values["method"] == "pf"]
    assert {p["ranking"] for p in pf} == {"uniform", "global"}  # Table 1's "PF (uniform)" and "PF (global)"
    strict = build_config(load_yaml(configs / "sngan-cifar10-adapt-strict-g70.yaml"))
    assert (strict.method, strict.adapt_variant, strict.adapt_ranking, strict.steps) == (
        "adapt", "strict", "global", 100000)
    assert (strict.update_interval, strict.adapt_interval, strict.balance_every, strict.adapt_step) == (
        500, 2000, 10, 0.05)
    assert (strict.adapt_low, strict.adapt_high, strict.sparsity_g, strict.sparsity_d) == (0.45, 0.55, 0.7, 0.7)
    adapt = [p.values for p in load_grid(configs / "sweeps" / "adapt-sngan.yaml").points
             if p.values["method"] == "adapt"]
    assert {(p["adapt_variant"], p["adapt_interval"], round(1 - p["sparsity_g"], 2)) for p in adapt} == {
        (v, i, d) for v, i in (("relaxed", 1000), ("strict", 2000)) for d in (0.1, 0.2, 0.3, 0.5)}


def test_gmp_never_prunes_at_the_final_step(tiny_run, tmp_path, data):
    """--gmp-end 1.0: the last pruning step is the one before the end, so the pruned net trains."""
    assert tiny_run(tmp_path / "g", "--method", "gmp", "--steps", "20", "--gmp-end", "1.0",
                    "--gmp-prunes", "4", "--sparsity-g", "0.8", "--sparsity-d", "0.5", data=data) == 0
    steps = sorted({r["step"] for r in read_records(tmp_path / "g", "topology")})
    assert steps[-1] == 19
