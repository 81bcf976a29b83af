"""The baselines through the CLI (tiny budgets), and their defining properties."""

import json

import pytest
import torch
from safetensors.torch import load_file

from idx_files import write_fake_mnist
from run_checks import assert_inactive_zero
from sparsegan.methods import METHODS, MethodContext
from sparsegan.methods.adapt import ADAPT
from sparsegan.methods.imp import round_densities
from sparsegan.methods.prune_at_init import SNIP
from sparsegan.sparsity import cubic_sparsity, prunable_parameters
from sparsegan.training import read_records

# Every method's short intervals, whichever method runs: --allow-ignored records the ones that do
# not apply (the refusal itself is tested in test_options.py).
TINY_FLAGS = ["--allow-ignored", "--batch-size", "8", "--update-interval", "4", "--eb-interval", "2",
              "--adapt-interval", "4", "--balance-every", "2"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_fake_mnist(tmp_path_factory.mktemp("data"), n_train=256, n_test=8)


def _summary(run):
    return json.loads((run / "summary.json").read_text())


def _check_densities(run, s_g, s_d):
    s = _summary(run)
    for net, target in (("G", s_g), ("D", s_d)):
        n = s["params"][net]["prunable"]
        assert abs(s["density"][net] * n - (1 - target) * n) <= 1, (net, s["density"][net])
    assert_inactive_zero(run)


MODEL_ARGS = {"mlp": ["--model", "mlp", "--model-width", "8"], "dcgan": ["--model", "dcgan", "--model-width", "4"]}


@pytest.mark.parametrize("model", ["mlp", "dcgan"])
@pytest.mark.parametrize("method", ["gmp", "snip", "grasp", "early_bird", "adapt", "static", "stu"])
def test_method_runs_and_hits_targets(tiny_run, tmp_path, data, model, method):
    assert tiny_run(tmp_path / "r", *MODEL_ARGS[model], "--method", method, "--steps", "12",
                    "--sparsity-g", "0.8", "--sparsity-d", "0.5", data=data) == 0
    run = tmp_path / "r"
    if method == "adapt":  # D's density adapts by design and is recorded
        _check_densities(run, 0.8, 1 - _summary(run)["density"]["D"])
        assert read_records(run, "adapt") and read_records(run, "balance")
    else:
        _check_densities(run, 0.8, 0.5)
    assert {"config.json", "metrics.jsonl", "summary.json"} <= {p.name for p in run.iterdir()}


@pytest.mark.parametrize("model", ["mlp", "dcgan"])
def test_pf_from_dense_run(tiny_run, tmp_path, data, model):
    assert tiny_run(tmp_path / "dense", *MODEL_ARGS[model], "--method", "dense", "--steps", "4", data=data) == 0
    for ranking, nets in (("uniform", "G"), ("global", "GD")):
        out = tmp_path / f"pf-{ranking}"
        assert tiny_run(out, *MODEL_ARGS[model], "--method", "pf", "--from", str(tmp_path / "dense"),
                        "--ranking", ranking, "--prune-nets", nets, "--steps", "4",
                        "--sparsity-g", "0.9", "--sparsity-d", "0.5", data=data) == 0
        _check_densities(out, 0.9, 0.5 if nets == "GD" else 0.0)
        assert _summary(out)["phases"][0]["phase"] == "dense-pretrain"
    # The surviving weights of a global prune are the largest magnitudes of the dense run.
    dense = load_file(tmp_path / "dense" / "final" / "generator.safetensors")
    masks = load_file(tmp_path / "pf-global" / "final" / "masks.safetensors")
    kept = torch.cat([dense[k[2:]][m.bool()].abs() for k, m in masks.items() if k.startswith("G.")])
    dropped = torch.cat([dense[k[2:]][~m.bool()].abs() for k, m in masks.items() if k.startswith("G.")])
    assert kept.min() >= dropped.max()


def test_pf_needs_a_source(tiny_run, tmp_path, data, capsys):
    assert tiny_run(tmp_path / "r", "--method", "pf", "--steps", "2", data=data) == 2
    assert "--from" in capsys.readouterr().err


def test_gmp_follows_cubic_schedule(tiny_run, tmp_path, data):
    assert tiny_run(tmp_path / "r", *MODEL_ARGS["mlp"], "--method", "gmp", "--steps", "40",
                    "--gmp-interval", "5", "--gmp-start", "0.1", "--gmp-end", "0.8", "--sparsity-g", "0.9",
                    "--sparsity-d", "0.0", data=data) == 0
    topo = [r for r in read_records(tmp_path / "r", "topology") if r["net"] == "G"]
    assert [r["step"] for r in topo] == [9, 14, 19, 24, 29, 32]
    n = _summary(tmp_path / "r")["params"]["G"]["prunable"]
    for r in topo:
        want = cubic_sparsity(r["step"], start=4, end=32, initial=0.0, final=0.9)
        assert abs((1 - r["density"]) * n - want * n) <= 1


def test_imp_rounds_densities_and_rewinding(tiny_run, tmp_path, data):
    assert round_densities(0.8, 0.2)[-1] == pytest.approx(0.2)
    assert len(round_densities(0.8, 0.2)) == 8
    assert len(round_densities(0.89, 0.2)) == 10
    run = tmp_path / "imp"
    assert tiny_run(run, *MODEL_ARGS["mlp"], "--method", "imp", "--sparsity-g", "0.8", "--steps", "3",
                    "--rewind-step", "2", data=data) == 0
    rounds = read_records(run, "round")
    assert [r["round"] for r in rounds] == list(range(9))
    want = [1.0] + [0.8 ** k for k in range(1, 8)] + [0.2]
    assert [r["density"]["G"] for r in rounds] == pytest.approx(want)
    n = _summary(run)["params"]["G"]["prunable"]
    for r, d in zip(rounds, want):
        assert abs(r["final_density"]["G"] * n - d * n) <= 1
    _check_densities(run, 0.8, 0.0)
    # Each ticket's surviving weights are exactly the weights at the rewind step (late rewinding).
    rewind = load_file(run / "rewind" / "rewind-generator.safetensors")
    for k in (1, 8):
        ticket = run / "tickets" / f"round-{k:02d}" / "final"
        masks, weights = load_file(ticket / "masks.safetensors"), load_file(ticket / "generator.safetensors")
        for key, m in masks.items():
            if key.startswith("G."):
                m = m.bool()
                assert torch.equal(weights[key[2:]][m], rewind[key[2:]][m])
                assert (weights[key[2:]][~m] == 0).all()
    # A second call finds every round done.
    assert tiny_run(run, *MODEL_ARGS["mlp"], "--method", "imp", "--sparsity-g", "0.8", "--steps", "3",
                    "--rewind-step", "2", "--resume", "auto", data=data) == 0
    assert len(read_records(run, "round")) == 9


def test_snip_masks_are_topk_of_w_times_g():
    torch.manual_seed(0)
    G = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    D = torch.nn.Linear(2, 1)
    x = torch.randn(5, 3)

    def probe(net):
        return (G(x) ** 2).sum() if net == "G" else D(G(x).detach()).sum()

    method = SNIP({"G": 0.75, "D": 0.0}, 2000)  # every option at its default
    method.setup(MethodContext(nets={"G": G, "D": D}, generator=torch.Generator().manual_seed(0), loss_probe=probe))
    # Reference: |w * g| on the same batch, top 25 % of G's 20 prunable weights = 5.
    params = prunable_parameters(G)
    G.zero_grad()
    torch.manual_seed(0)
    G2 = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    (G2(x) ** 2).sum().backward()
    scores = torch.cat([(p.detach() * p.grad).abs().flatten() for p in prunable_parameters(G2).values()])
    keep = torch.zeros_like(scores, dtype=torch.bool)
    keep[scores.argsort(descending=True, stable=True)[:5]] = True
    got = torch.cat([method.masks["G"].masks[n].flatten() for n in params])
    assert torch.equal(got, keep)
    assert method.masks["D"].density() == 1.0


def test_early_bird_records_distances_that_triggered(tiny_run, tmp_path, data):
    assert tiny_run(tmp_path / "r", *MODEL_ARGS["mlp"], "--method", "early_bird", "--steps", "30",
                    "--eb-interval", "2", "--eb-window", "3", "--eb-threshold", "0.5", "--lr-g", "1e-6",
                    "--lr-d", "1e-6", "--sparsity-g", "0.8", "--sparsity-d", "0.5", data=data) == 0
    eb = read_records(tmp_path / "r", "early_bird")
    assert len(eb) == 1 and eb[0]["detected"] is True and eb[0]["step"] == 6
    assert {net: len(d) for net, d in eb[0]["distances"].items()} == {"G": 2, "D": 2}
    assert eb[0]["max_distance"] == max(d for ds in eb[0]["distances"].values() for d in ds) < 0.5
    checks = read_records(tmp_path / "r", "early_bird_check")
    assert [c["step"] for c in checks] == [2, 4, 6]
    _check_densities(tmp_path / "r", 0.8, 0.5)
    phases = _summary(tmp_path / "r")["phases"]
    assert phases == [{"phase": "dense-search", "within_run": True, "steps": 6, "density": {"G": 1.0, "D": 1.0}}]


def test_early_bird_budget_without_detection(tiny_run, tmp_path, data):
    assert tiny_run(tmp_path / "r", *MODEL_ARGS["mlp"], "--method", "early_bird", "--steps", "12",
                    "--eb-interval", "2", "--eb-threshold", "0.0", "--eb-max-steps", "5", data=data) == 0
    eb = read_records(tmp_path / "r", "early_bird")
    assert eb[0]["detected"] is False and eb[0]["step"] == 5


def _adapt(variant="relaxed", s_d=0.5):
    # G's first prune-and-regrow at 30: the D-density decision at 10 is what these tests step to
    options = ADAPT.options_type()(adapt_variant=variant, adapt_interval=10, update_interval=30)
    torch.manual_seed(0)
    G, D = torch.nn.Linear(4, 8), torch.nn.Sequential(torch.nn.Linear(8, 20), torch.nn.Linear(20, 1))
    m = ADAPT({"G": 0.5, "D": s_d}, 100, options)
    m.setup(MethodContext(nets={"G": G, "D": D}, generator=torch.Generator().manual_seed(0),
                          loss_probe=lambda net: D(G(torch.randn(3, 4))).sum()))
    return m, torch.optim.Adam(D.parameters())


@pytest.mark.parametrize("ratio, delta", [(0.9, +0.05), (0.1, -0.05), (0.5, 0.0)])
def test_adapt_moves_d_density_by_the_step(ratio, delta):
    m, opt = _adapt()
    before = m.masks["D"].density()
    for step in range(1, 11):
        m.observe_balance(step, ratio)
    m.end_of_step(10, {"G": torch.optim.Adam(m.masks["G"].params.values()), "D": opt}, torch.Generator())
    numel = m.masks["D"].numel()
    assert abs(m.masks["D"].density() * numel - (before + delta) * numel) <= 1
    rec = m.drain_records()[-1]
    assert rec["kind"] == "adapt" and rec["action"] == {0.05: "grow", -0.05: "prune", 0.0: "keep"}[delta]


@pytest.mark.parametrize("model", ["vae", "ae"])
@pytest.mark.parametrize("method", ["stu", "snip", "early_bird"])
def test_autoencoders(tiny_run, tmp_path, data, model, method):
    assert tiny_run(tmp_path / "r", "--model", model, "--model-width", "4", "--method", method,
                    "--steps", "8", "--sparsity-g", "0.8", "--sparsity-d", "0.5", data=data) == 0
    _check_densities(tmp_path / "r", 0.8, 0.5)
    rec = read_records(tmp_path / "r", "train")[-1]
    assert "recon" in rec and (("elbo" in rec) == (model == "vae"))


def test_gan_ticket_transfers_to_vae_decoder(tiny_run, tmp_path, data, capsys):
    assert tiny_run(tmp_path / "gan", *MODEL_ARGS["dcgan"], "--method", "stu", "--steps", "4",
                    "--update-interval", "2", "--sparsity-g", "0.9", data=data) == 0
    assert tiny_run(tmp_path / "vae", "--model", "vae", "--model-width", "4", "--method", "static",
                    "--steps", "4", "--masks-from", str(tmp_path / "gan"), "--sparsity-g", "0.5", data=data) == 0
    gan = load_file(tmp_path / "gan" / "final" / "masks.safetensors")
    vae = load_file(tmp_path / "vae" / "final" / "masks.safetensors")
    assert all(torch.equal(gan[k], vae[k]) for k in gan if k.startswith("G."))
    ticket = read_records(tmp_path / "vae", "ticket")[0]
    assert ticket["nets"] == ["G"]
    # A different width: refused with the names whose shapes differ.
    rc = tiny_run(tmp_path / "bad", "--model", "vae", "--model-width", "8", "--method", "static",
                  "--steps", "2", "--masks-from", str(tmp_path / "gan"), data=data)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "shapes differ" in err[0] and "G.net.0.weight" in err[0]


def test_every_method_registered():
    assert {"dense", "static", "stu", "pf", "gmp", "imp", "early_bird", "snip", "grasp",
            "adapt"} <= set(METHODS.names())


def test_adapt_refuses_autoencoders(tiny_run, tmp_path, data, capsys):
    assert tiny_run(tmp_path / "r", "--model", "vae", "--method", "adapt", "--steps", "2", data=data) == 2
    assert "noise-to-image GANs (one G against one D) only" in capsys.readouterr().err


def test_dst_prune_criteria(tiny_run, tmp_path, data):
    for crit in ("snip", "taylor", "grasp"):
        assert tiny_run(tmp_path / crit, *MODEL_ARGS["mlp"], "--method", "stu", "--steps", "9",
                        "--prune-criterion", crit, "--sparsity-g", "0.8", data=data) == 0
        topo = [r for r in read_records(tmp_path / crit, "topology") if r["net"] == "G"]
        assert len(topo) == 2 and all(r["pruned"] > 0 for r in topo)
        _check_densities(tmp_path / crit, 0.8, 0.5)
