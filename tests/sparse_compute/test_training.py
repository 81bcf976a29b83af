"""Sparse compute through the engine and the CLI, in a training loop's real order: every method of
the API trains to the same weights and masks with the sparse path on as with it off (to float
rounding), topology updates rebuild the patterns, update steps that need the dense gradient take
the dense path, resume is exact, and misuse fails in one line."""

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sparsegan import SparseTraining
from sparsegan.errors import UserError
from sparsegan.methods.build import API_METHODS
from sparsegan.sparse_compute import functions
from sparsegan.sparse_compute.pattern import available

pytestmark = pytest.mark.skipif(not available(), reason="the C kernels are not built here (or no AVX2)")

TINY_FLAGS = ["--model", "dcgan", "--model-width", "4", "--dataset", "fashion-mnist", "--batch-size", "8",
              "--steps", "12", "--log-every", "4", "--sample-every", "12", "--checkpoint-every", "6",
              "--num-sample-images", "4", "--sparsity-g", "0.9", "--sparsity-d", "0.5"]

# method -> options of a short run in which the topology changes at least once
OPTIONS = {
    "dense": {}, "static": {}, "stu": {"update_interval": 5},
    "gmp": {"gmp_start": 0.2, "gmp_end": 0.8, "gmp_prunes": 3},
    "pf": {}, "snip": {}, "grasp": {},
    "early_bird": {"eb_interval": 2, "eb_window": 2, "eb_threshold": 0.5},
    "adapt": {"update_interval": 5, "adapt_interval": 5},
}


def _gan(seed: int = 0):
    """A tiny conv GAN with every supported layer kind: Linear, ConvTranspose2d, Conv2d."""
    torch.manual_seed(seed)
    G = nn.Sequential(nn.Linear(8, 8 * 4 * 4), nn.Unflatten(1, (8, 4, 4)), nn.ReLU(),
                      nn.ConvTranspose2d(8, 4, 4, 2, 1), nn.ReLU(), nn.Conv2d(4, 1, 3, 1, 1), nn.Tanh())
    D = nn.Sequential(nn.Conv2d(1, 8, 4, 2, 1), nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(8 * 4 * 4, 1))
    return G, D


def _train(method: str, mode: str, iterations: int = 12, **extra):
    G, D = _gan()
    opt = {n: torch.optim.Adam(m.parameters(), 1e-3, betas=(0.5, 0.999)) for n, m in (("G", G), ("D", D))}
    gen = torch.Generator().manual_seed(1)
    probe_gen = torch.Generator().manual_seed(2)

    def probe(net):
        z = torch.randn(8, 8, generator=probe_gen)
        return -D(G(z)).mean() if net == "G" else F.softplus(D(G(z).detach())).mean()

    sparse = SparseTraining({"G": G, "D": D}, opt, method, sparsity={"G": 0.9, "D": 0.5}, steps=iterations,
                            loss_probe=probe, sparse_compute=mode, **OPTIONS[method], **extra)
    ema = sparse.ema("G", beta=0.9)
    events = []
    for _ in range(iterations):
        real = torch.randn(8, 1, 8, 8, generator=gen).tanh()
        z = torch.randn(8, 8, generator=gen)
        opt["D"].zero_grad()
        loss_d = F.softplus(-D(real)).mean() + F.softplus(D(G(z).detach())).mean()
        loss_d.backward()
        opt["D"].step()
        opt["G"].zero_grad()
        F.softplus(-D(G(z))).mean().backward()
        opt["G"].step()
        sparse.observe_balance(0.5)
        events += sparse.step()
        ema.update(G, sparse.completed)
    return G, D, sparse, ema, events


@pytest.mark.parametrize("method", API_METHODS)
def test_every_method_trains_the_same_with_the_sparse_path(method):
    G0, D0, off, ema0, ev0 = _train(method, "off")
    G1, D1, on, ema1, ev1 = _train(method, "on")
    for net in ("G", "D"):
        for name, mask in off.masks[net].masks.items():
            assert torch.equal(mask, on.masks[net].masks[name]), (net, name)
    for a, b in ((G0, G1), (D0, D1), (ema0.model, ema1.model)):
        for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
            torch.testing.assert_close(q, p, rtol=1e-4, atol=1e-5, msg=name)
    assert len(ev0) == len(ev1)
    if method != "dense" and on.method.enforce_masks:
        assert on.compute.calls["sparse"] > 0
    assert all(v == 0 for v in _inactive(on).values())


@pytest.mark.parametrize("mode", ["on", "auto"])
def test_a_unet_denoiser_trains_on_the_direct_kernels_as_on_the_masked_path(mode, monkeypatch):
    # RigL-DM in a plain DDPM-style loop: the denoiser's stride-1 convolutions take the direct kernels
    # (NCHW, no layout copies), its downsampling ones and the time MLP the others; updates at 3 and 6
    from sparsegan.models.unet import UNet
    from sparsegan.sparse_compute import planner

    if mode == "auto":  # every layer measured: the direct kernel the fastest, the batch-innermost one next
        monkeypatch.setenv("SPARSEGAN_PLAN_CACHE", "off")
        monkeypatch.setattr(planner, "measure", lambda module, x, pattern, reps=5, kernels=None: {
            "dense": 10.0, "sparse": 7.0, **({"direct": 2.0} if "direct" in functions.kernels(module) else {})})

    def run(compute):
        torch.manual_seed(0)
        # width 12: GroupNorm groups of 3 channels. With 2 (width 8 or 16) the gradients of a group's two
        # time-embedding rows are exact opposites (a shift of the whole group does nothing after the norm),
        # and which of two equal scores gradient regrowth takes is then up to float rounding.
        net = UNet(1, 12)
        opt = torch.optim.Adam(net.parameters(), 1e-3)
        sparse = SparseTraining({"G": net}, {"G": opt}, "stu", sparsity={"G": 0.8}, steps=6, update_interval=3,
                                sparse_compute=compute)
        gen = torch.Generator().manual_seed(1)
        for _ in range(6):
            x0, noise = torch.randn(4, 1, 32, 32, generator=gen), torch.randn(4, 1, 32, 32, generator=gen)
            t = torch.randint(0, 1000, (4,), generator=gen)
            opt.zero_grad()
            F.mse_loss(net(0.8 * x0 + 0.6 * noise, t), noise).backward()
            opt.step()
            sparse.step()
        return net, sparse

    off, masked = run("off")
    on, sparse = run(mode)
    for name, mask in masked.masks["G"].masks.items():
        assert torch.equal(mask, sparse.masks["G"].masks[name]), name
    for (name, p), q in zip(off.state_dict().items(), on.state_dict().values()):
        torch.testing.assert_close(q, p, rtol=1e-4, atol=1e-5, msg=name)
    layers = [m for m in on.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    direct = sum("direct" in functions.kernels(m) for m in layers)
    strided = sum(isinstance(m, nn.Conv2d) and m.stride != (1, 1) for m in layers)
    assert strided == 2 and direct == len(layers) - strided - sum(isinstance(m, nn.Linear) for m in layers) > 10
    # 6 forwards of each layer: the stride-1 convolutions on the direct kernels, the downsampling ones
    # and the Linear layers (time MLP, each block's time projection) on the others; "auto" leaves the
    # Linear layers that ERK keeps more than half dense on the dense path without timing them
    on_path = [layer for layer in sparse.compute.layers if mode == "on" or layer.pattern.density <= planner.MAX_DENSITY
               or "direct" in functions.kernels(layer.module)]
    assert mode == "on" or len(on_path) < len(layers)
    assert len(on_path) > 10
    direct = sum("direct" in functions.kernels(layer.module) for layer in on_path)
    assert sparse.compute.kernel_calls == {"direct": 6 * direct, "sparse": 6 * (len(on_path) - direct)}
    assert sparse.compute.calls["dense"] == 6 * (len(layers) - len(on_path))
    assert sparse.compute.calls["dense_grad"] > 0  # the update steps' dense weight gradients
    if mode == "auto":
        assert set(sparse.compute.planner.decisions.values()) == {"direct", "sparse"}


def test_a_plan_saved_before_the_direct_kernels_resumes_on_its_paths(tmp_path, monkeypatch):
    # states and cache entries from when the sparse path had one kernel: True / False, (dense, sparse)
    from sparsegan.kernels.plans import PlanCache
    from sparsegan.sparse_compute import planner
    from sparsegan.sparse_compute.planner import Planner, choose

    plan = Planner()
    plan.load_state_dict({"decisions": {"a": True, "b": False}, "timings": {"a": [2.0, 1.0], "b": [1.0, 2.0]}})
    assert plan.decisions == {"a": "sparse", "b": "dense"}
    assert plan.timings == {"a": {"dense": 2.0, "sparse": 1.0}, "b": {"dense": 1.0, "sparse": 2.0}}
    assert choose({"dense": 10.0, "sparse": 7.0, "direct": 3.0}) == "direct"
    assert choose({"dense": 10.0, "sparse": 8.5, "direct": 8.1}) == "dense"  # within the margin: dense
    cache = PlanCache(tmp_path / "plans.json")
    cached = Planner(cache=cache)
    linear, conv = nn.Linear(4, 4), nn.Conv2d(2, 2, 3, 1, 1)
    for module in (linear, conv):
        cache.put(cache.key(training_plan=f"{type(module).__name__}"), "3.0 1.0")
    assert cached._cached("Linear", functions.kernels(linear)) == {"dense": 3.0, "sparse": 1.0}
    assert cached._cached("Conv2d", functions.kernels(conv)) is None  # never timed the direct kernel: measure
    # and such a run goes on planning as it did: one sparse kernel per layer, none tried above half density
    assert plan.legacy and not Planner().legacy and plan.state_dict()["kernels"] == 1
    timed = []
    monkeypatch.setattr(planner, "measure", lambda module, x, pattern, reps=5, kernels=None: timed.append(kernels) or
                        {"dense": 10.0, **{k: 0.5 if k == "direct" else 1.0 for k in kernels}})
    x = torch.randn(2, 2, 6, 6)
    assert plan.choice(conv, x, functions.pattern_for(conv, torch.rand(2, 2, 3, 3) < 0.2)) == "sparse"
    assert plan.choice(conv, x, functions.pattern_for(conv, torch.ones(2, 2, 3, 3, dtype=torch.bool))) == "dense"
    assert timed == [("sparse",)]
    assert Planner().choice(conv, x, functions.pattern_for(conv, torch.ones(2, 2, 3, 3, dtype=torch.bool))) == "direct"
    # --sparse-compute on resumed from such a state keeps the kernels it trained on
    net = nn.Sequential(nn.Conv2d(2, 4, 3, 1, 1))
    sparse = SparseTraining({"G": net}, {"G": torch.optim.SGD(net.parameters(), 0.1)}, "static", sparsity={"G": 0.5},
                            steps=4, sparse_compute="on")
    net(x)
    sparse.compute.load_state_dict({"mode": "on", "plan": {"decisions": {}, "timings": {}}})
    net(x)
    assert sparse.compute.kernel_calls == {"direct": 1, "sparse": 1}


def test_stu_with_grasp_pruning_probes_on_the_masked_path():
    # GraSP's prune criterion differentiates the probe's loss twice (a Hessian-gradient product):
    # the probe's graph is built on the masked path, so masks and weights match the sparse path off
    runs = {mode: _train("stu", mode, prune_criterion="grasp") for mode in ("off", "on")}
    (G0, _, off, _, ev0), (G1, _, on, _, ev1) = runs["off"], runs["on"]
    assert len(ev0) == len(ev1) == 4
    for net in ("G", "D"):
        for name, mask in off.masks[net].masks.items():
            assert torch.equal(mask, on.masks[net].masks[name]), (net, name)
    for (name, p), q in zip(G0.state_dict().items(), G1.state_dict().values()):
        torch.testing.assert_close(q, p, rtol=1e-4, atol=1e-5, msg=name)
    assert on.compute.calls["sparse"] > 0


def test_a_second_derivative_through_the_sparse_path_fails_loudly():
    # a gradient penalty differentiates D's input gradient: the kernels build no graph for it
    G, D = _gan()
    opt = {n: torch.optim.Adam(m.parameters(), 1e-3) for n, m in (("G", G), ("D", D))}
    sparse = SparseTraining({"G": G, "D": D}, opt, "static", sparsity={"G": 0.9, "D": 0.5}, steps=4,
                            sparse_compute="on")
    x = torch.randn(4, 1, 8, 8, requires_grad=True)
    (grad_x,) = torch.autograd.grad(D(x).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="differentiate twice"):
        grad_x.square().sum().backward()
    with sparse.compute.dense():  # the masked path inside dense(): the penalty's gradient as usual
        (grad_x,) = torch.autograd.grad(D(x).sum(), x, create_graph=True)
        grad_x.square().sum().backward()
    assert D[0].weight.grad is not None and D[0].weight.grad.abs().sum() > 0


def _inactive(sparse):
    return {net: sum(int((m.params[n].detach().ne(0) & ~mask).sum()) for n, mask in m.masks.items())
            for net, m in sparse.masks.items()}


def test_update_steps_take_the_dense_path_and_new_masks_new_patterns():
    # STU-GAN (gradient regrowth) at update_interval 5 over 12 iterations: updates at 5 and 10
    *_, sparse, _, events = _train("stu", "on")
    assert {e.net for e in events} == {"G", "D"} and len(events) == 4
    layers = {layer.name: layer for layer in sparse.compute.layers if layer.net == "G"}
    for name, layer in layers.items():  # each pattern is the current mask's
        assert torch.equal(layer.pattern.scatter(torch.ones(layer.pattern.nnz), sparse.masks["G"].masks[name]).bool(),
                           sparse.masks["G"].masks[name])
    # the update iterations' products stay sparse; only the weight gradient is computed dense
    assert sparse.compute.calls["dense"] == 0 and sparse.compute.calls["dense_grad"] > 0


def test_auto_keeps_its_plan_in_the_state_and_a_resume_follows_it():
    G, D, sparse, _, _ = _train("stu", "auto")
    state = sparse.state_dict()
    plan = state["compute"]["plan"]
    assert plan["decisions"] and set(plan["decisions"]) == set(plan["timings"])
    G2, D2 = _gan()
    opt = {n: torch.optim.Adam(m.parameters()) for n, m in (("G", G2), ("D", D2))}
    G2.load_state_dict(G.state_dict())
    D2.load_state_dict(D.state_dict())
    resumed = SparseTraining({"G": G2, "D": D2}, opt, "stu", sparsity={"G": 0.9, "D": 0.5}, steps=12,
                             update_interval=5, state=state)
    assert resumed.compute.planner.decisions == plan["decisions"]
    # a state saved before sparse compute existed resumes on the masked path, as it was trained
    old = {k: v for k, v in state.items() if k != "compute"}
    legacy = SparseTraining({"G": G2, "D": D2}, opt, "stu", sparsity={"G": 0.9, "D": 0.5}, steps=12,
                            update_interval=5, state=old)
    assert not legacy.compute.active


def test_a_second_process_on_the_machine_takes_the_first_ones_plan(tmp_path, monkeypatch):
    # the same command twice gives the same numbers: the second run reads the first's measured plan
    from sparsegan.sparse_compute import planner

    monkeypatch.setenv("SPARSEGAN_PLAN_CACHE", str(tmp_path / "plans.json"))
    G1, _, first, _, _ = _train("stu", "auto")
    plan = first.compute.planner.state_dict()
    assert plan["decisions"] and (tmp_path / "plans.json").is_file()

    def no_measuring(*args, **kwargs):
        raise AssertionError("measured again")

    monkeypatch.setattr(planner, "measure", no_measuring)
    G2, _, second, _, _ = _train("stu", "auto")
    assert second.compute.planner.state_dict() == plan
    for (name, p), q in zip(G1.state_dict().items(), G2.state_dict().values()):
        assert torch.equal(p, q), name
    monkeypatch.setenv("SPARSEGAN_PLAN_CACHE", "off")  # off: every run measures for itself
    with pytest.raises(AssertionError, match="measured again"):
        _train("stu", "auto")


def test_misuse_fails_in_one_line():
    G, D = _gan()
    opt = {n: torch.optim.Adam(m.parameters()) for n, m in (("G", G), ("D", D))}
    with pytest.raises(UserError, match="sparse_compute must be one of auto, on, off"):
        SparseTraining({"G": G, "D": D}, opt, "static", sparsity={"G": 0.9}, steps=5, sparse_compute="fast")
    G.to("meta")
    opt["G"] = torch.optim.Adam(G.parameters())
    with pytest.raises(UserError, match="runs on CPUs; net 'G' is on meta"):
        SparseTraining({"G": G, "D": D}, opt, "static", sparsity={"G": 0.9}, steps=5, sparse_compute="on")


def test_the_cli_flag_trains_records_and_resumes_exactly(tmp_path, tiny_run):
    assert tiny_run(tmp_path / "on", "--method", "stu", "--update-interval", "5", "--sparse-compute", "on") == 0
    assert tiny_run(tmp_path / "off", "--method", "stu", "--update-interval", "5", "--sparse-compute", "off") == 0
    cfg = json.loads((tmp_path / "on" / "config.json").read_text())
    assert cfg["sparse_compute"] == "on"
    on = [json.loads(line) for line in (tmp_path / "on" / "metrics.jsonl").read_text().splitlines()]
    off = [json.loads(line) for line in (tmp_path / "off" / "metrics.jsonl").read_text().splitlines()]
    losses = lambda recs: [r["loss_g"] for r in recs if r.get("kind") == "train"]  # noqa: E731
    assert losses(on) == pytest.approx(losses(off), rel=1e-3, abs=1e-4) and len(losses(on)) == 3
    # resumed from its step-6 checkpoint, an "auto" run follows its saved plan and ends bitwise where
    # the uninterrupted one did
    import shutil

    from safetensors.torch import load_file

    flags = ("--method", "stu", "--update-interval", "5", "--sparse-compute", "auto")
    assert tiny_run(tmp_path / "auto", *flags) == 0
    shutil.copytree(tmp_path / "auto", tmp_path / "again")
    (tmp_path / "again" / "checkpoints" / "state-00000012.pt").unlink()
    shutil.rmtree(tmp_path / "again" / "final")
    (tmp_path / "again" / "summary.json").unlink()
    assert tiny_run(tmp_path / "again", *flags, "--resume", "auto") == 0
    for f in ("generator.safetensors", "generator_ema.safetensors", "discriminator.safetensors"):
        a, b = load_file(tmp_path / "auto" / "final" / f), load_file(tmp_path / "again" / "final" / f)
        assert all(torch.equal(a[k], b[k]) for k in a), f


def test_the_cli_refuses_on_under_compile(tmp_path, tiny_run, capsys):
    assert tiny_run(tmp_path / "x", "--method", "static", "--sparse-compute", "on", "--compile") != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--sparse-compute on runs fp32 layers outside torch.compile" in err[0]
    assert not (tmp_path / "x").exists()
