"""IMP (GAN Tickets) through the CLI on a tiny mlp: controls train the IMP run's own tickets,
late rewinding rewinds both nets and trains the remaining steps, rankings are recorded, and an IMP
ticket folder is a valid --masks-from source."""

import json

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from idx_files import write_fake_mnist
from sparsegan.cli import main
from sparsegan.config import build_config
from sparsegan.launch import train
from sparsegan.launch.rounds import REINIT_SEED
from sparsegan.methods.imp import net_rankings
from sparsegan.training import read_records
from sparsegan.training.state import latest_valid_checkpoint

TINY_FLAGS = ["--model", "mlp", "--model-width", "8", "--batch-size", "8"]
# 45 % of G and 36 % of D at 20 % per round: G 0.8, 0.64, 0.55; D 0.8, 0.64, 0.64 (three rounds).
IMP = ["--method", "imp", "--sparsity-g", "0.45", "--prune-nets", "GD", "--sparsity-d", "0.36",
       "--steps", "3", "--rewind-step", "1"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_fake_mnist(tmp_path_factory.mktemp("data"), n_train=256, n_test=8)


@pytest.fixture(scope="module")
def imp_run(tiny_run, data, tmp_path_factory):
    run = tmp_path_factory.mktemp("imp") / "imp"
    assert tiny_run(run, *IMP, data=data) == 0
    return run


def _masks(folder, net):
    return {k[2:]: m.bool() for k, m in load_file(folder / "masks.safetensors").items() if k.startswith(net + ".")}


def _weights(folder, net):
    return load_file(folder / ("generator.safetensors" if net == "G" else "discriminator.safetensors"))


def _ticket(run, k):
    return run / "tickets" / f"round-{k:02d}" / "final"


def test_reinit_control_trains_the_imp_tickets_masks_from_a_fresh_init(tiny_run, data, imp_run, tmp_path):
    ctl = tmp_path / "reinit"
    assert tiny_run(ctl, *IMP, "--imp-control", "reinit", "--tickets-from", str(imp_run), data=data) == 0
    assert [r["round"] for r in read_records(ctl, "round")] == [1, 2, 3]
    for k in (2, 3):
        ticket, mine = _ticket(imp_run, k), _ticket(ctl, k)
        trained = ctl / "rounds" / f"round-{k:02d}" / "final"
        for net in ("G", "D"):
            want = _masks(ticket, net)
            for folder in (mine, trained):  # the control's ticket and its trained round keep the masks
                got = _masks(folder, net)
                assert all(torch.equal(got[n], want[n]) for n in want), (k, net)
        # D: the ticket's weights exactly (its init is not mixed into the G re-initialisation).
        assert all(torch.equal(a, b) for a, b in zip(_weights(mine, "D").values(), _weights(ticket, "D").values()))
        # G: fresh weights on the ticket's mask, the same fresh init in every round.
        g_ticket, g_mine = _weights(ticket, "G"), _weights(mine, "G")
        key = next(iter(want := _masks(ticket, "G")))
        assert not torch.equal(g_mine[key][want[key]], g_ticket[key][want[key]])
        assert (g_mine[key][~want[key]] == 0).all()
    g2, g3, m3 = _weights(_ticket(ctl, 2), "G"), _weights(_ticket(ctl, 3), "G"), _masks(_ticket(ctl, 3), "G")
    assert all(torch.equal(g2[n][m], g3[n][m]) for n, m in m3.items())
    assert json.loads((ctl / "config.json").read_text())["reinit_seed"] == REINIT_SEED


def test_random_control_draws_masks_with_the_tickets_layer_counts(tiny_run, data, imp_run, tmp_path):
    ctl = tmp_path / "random"
    assert tiny_run(ctl, *IMP, "--imp-control", "random", "--tickets-from", str(imp_run), data=data) == 0
    rewind_g = load_file(imp_run / "rewind" / "rewind-generator.safetensors")
    for k in (2, 3):
        ticket, mine = _ticket(imp_run, k), _ticket(ctl, k)
        want, got = _masks(ticket, "G"), _masks(mine, "G")
        assert {n: int(m.sum()) for n, m in got.items()} == {n: int(m.sum()) for n, m in want.items()}
        assert any(not torch.equal(got[n], want[n]) for n in want)
        # The random mask sits on the IMP run's rewound G (step 1 of round 0).
        g = _weights(mine, "G")
        assert all(torch.equal(g[n][m], rewind_g[n][m]) for n, m in got.items())
        # D is the ticket's: masks and weights.
        assert all(torch.equal(a, b) for a, b in zip(_masks(mine, "D").values(), _masks(ticket, "D").values()))
        assert all(torch.equal(a, b) for a, b in zip(_weights(mine, "D").values(), _weights(ticket, "D").values()))


def test_control_refuses_without_a_matching_imp_run(tiny_run, data, imp_run, tmp_path, capsys):
    assert tiny_run(tmp_path / "a", *IMP, "--imp-control", "reinit", data=data) == 2
    assert "--tickets-from" in capsys.readouterr().err
    other = [a if a != "0.45" else "0.5" for a in IMP]
    assert tiny_run(tmp_path / "b", *other, "--imp-control", "random", "--tickets-from", str(imp_run), data=data) == 2
    assert "densities" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_late_rewinding_rewinds_both_nets_and_trains_the_remaining_steps(data, imp_run):
    init_d = load_file(imp_run / "rewind" / "init-discriminator.safetensors")
    rewind_d = load_file(imp_run / "rewind" / "rewind-discriminator.safetensors")
    assert any(not torch.equal(init_d[n], rewind_d[n]) for n in init_d)  # one step of training moved D
    for k in (1, 2, 3):
        ticket = _ticket(imp_run, k)
        for net, rewind in (("G", "rewind-generator"), ("D", "rewind-discriminator")):
            w, ref = _weights(ticket, net), load_file(imp_run / "rewind" / f"{rewind}.safetensors")
            assert all(torch.equal(w[n][m], ref[n][m]) for n, m in _masks(ticket, net).items()), (k, net)
    # Rounds 1..3 train steps - rewind_step = 2 steps and end where round 0 ended in the data order.
    rounds = read_records(imp_run, "round")
    assert [r["start_step"] for r in rounds] == [0, 1, 1, 1]
    end0 = latest_valid_checkpoint(imp_run / "rounds" / "round-00" / "checkpoints")[1]
    assert end0["step"] == 3
    for k in (1, 2, 3):
        sub = imp_run / "rounds" / f"round-{k:02d}"
        assert json.loads((sub / "summary.json").read_text())["step"] == 2
        end = latest_valid_checkpoint(sub / "checkpoints")[1]
        assert end["sampler"] == end0["sampler"]
        assert torch.equal(end["rng"]["noise"], end0["rng"]["noise"])


def test_imp_ranking_is_recorded_per_net(imp_run):
    cfg = json.loads((imp_run / "config.json").read_text())
    assert cfg["imp_ranking"] == "paper" and cfg["imp_ranking_by_net"] == {"G": "global", "D": "global"}
    assert all(r["ranking"] == {"G": "global", "D": "global"} for r in read_records(imp_run, "round")[1:])
    # Global ranking: round 1's surviving G weights are the largest magnitudes of round 0's final G.
    dense = _weights(imp_run / "rounds" / "round-00" / "final", "G")
    masks = _masks(_ticket(imp_run, 1), "G")
    kept = torch.cat([dense[n][m].abs() for n, m in masks.items()])
    dropped = torch.cat([dense[n][~m].abs() for n, m in masks.items()])
    assert kept.min() >= dropped.max()
    sn = nn.Sequential(nn.utils.parametrizations.spectral_norm(nn.Linear(3, 3)), nn.Linear(3, 1))
    assert net_rankings("paper", {"G": nn.Linear(3, 3), "D": sn}) == {"G": "global", "D": "layer"}
    assert net_rankings("layer", {"G": nn.Linear(3, 3)}) == {"G": "layer"}


def test_imp_d_keep_starts_each_round_from_the_previous_rounds_d(tiny_run, data, tmp_path):
    run = tmp_path / "keep"
    assert tiny_run(run, "--method", "imp", "--sparsity-g", "0.2", "--steps", "2", "--imp-d", "keep", data=data) == 0
    prev = _weights(run / "rounds" / "round-00" / "final", "D")
    got = _weights(_ticket(run, 1), "D")
    assert all(torch.equal(got[n], prev[n]) for n in prev)


def test_masks_from_an_imp_ticket_starts_from_its_rewound_weights(data, imp_run, tmp_path):
    ticket = imp_run / "tickets" / "round-02"
    seen = {}

    def on_start(t):
        seen.update({"G": {n: p.detach().clone() for n, p in t.G.state_dict().items()},
                     "masks": {n: m.clone() for n, m in t.method.masks["G"].masks.items()}})

    cfg = build_config({"model": "mlp", "model_width": 8, "batch_size": 8, "data_root": str(data), "steps": 1,
                        "method": "static", "sparsity_g": 0.36, "sparsity_d": 0.36, "masks_from": str(ticket),
                        "masks_with_weights": True, "out": str(tmp_path / "from-ticket")})
    train(cfg, progress=False, on_start=on_start)
    want_g, want_m = _weights(_ticket(imp_run, 2), "G"), _masks(_ticket(imp_run, 2), "G")
    assert all(torch.equal(seen["G"][n], want_g[n]) for n in want_g)
    assert all(torch.equal(seen["masks"][n], want_m[n]) for n in want_m)
    ticket_rec = read_records(tmp_path / "from-ticket", "ticket")[0]
    assert ticket_rec["with_weights"] and ticket_rec["nets"] == ["G", "D"]


def test_imp_training_flops_add_up_the_rounds_own_masks(tiny_run, data, tmp_path, capsys):
    """The chain's training FLOPs are its rounds' own counts added up: an earlier round is counted at its
    masks' per-layer densities (IMP's global ranking spreads them unlike the ERK allocation a bare
    density would be counted with; a conv net, where a weight's FLOPs depend on its layer), in
    summary.json and in `sparsegan flops RUN` alike."""
    imp_run = tmp_path / "imp"
    assert tiny_run(imp_run, *IMP, "--model", "dcgan", "--model-width", "4", data=data) == 0
    summary = json.loads((imp_run / "summary.json").read_text())
    rounds = sorted((imp_run / "rounds").glob("round-*"))
    own = [json.loads((r / "summary.json").read_text())["flops"]["train"] for r in rounds]
    assert len(own) == 4
    total = summary["flops"]["train"]["total"]
    assert total == pytest.approx(sum(t["total"] for t in own), rel=1e-12)
    assert [p["flops"] for p in summary["flops"]["train"]["phases"]] == pytest.approx([t["total"] for t in own])
    for r, phase in zip(rounds[1:], summary["phases"][1:]):  # per-layer densities of the round's masks
        masks = load_file(str(r / "final" / "masks.safetensors"))
        assert phase["density"]["G"] == pytest.approx(
            {k.partition(".")[2]: m.float().mean().item() for k, m in masks.items() if k.startswith("G.")})
    assert main(["flops", str(imp_run), "--json", str(tmp_path / "flops.json")]) == 0
    assert json.loads((tmp_path / "flops.json").read_text())["train"]["total"] == pytest.approx(total, rel=1e-12)


def test_a_ticket_with_an_empty_layer_is_said_on_stderr_and_recorded(tiny_run, data, imp_run, tmp_path, capsys):
    """A ticket whose masks leave a layer of G without a weight (a global ranking can do that: layer
    collapse) trains, and says so: one warning line naming the layer, and a kind=empty_layers record."""
    import shutil

    from safetensors.torch import save_file

    ticket = tmp_path / "ticket"
    shutil.copytree(imp_run / "tickets" / "round-02", ticket)
    masks = load_file(ticket / "final" / "masks.safetensors")
    first = sorted(k for k in masks if k.startswith("G."))[0]
    masks[first] = torch.zeros_like(masks[first])
    save_file(masks, ticket / "final" / "masks.safetensors")
    capsys.readouterr()
    assert tiny_run(tmp_path / "run", "--method", "static", "--masks-from", str(ticket), "--masks-with-weights",
                    "--sparsity-g", "0.36", "--sparsity-d", "0.36", "--steps", "2", data=data) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "no active weight left" in line]
    assert warnings == [f"sparsegan: warning: step 0: no active weight left in G's {first[2:]}: such a layer "
                        "passes on nothing but its bias (a global ranking can empty a layer; a per-layer ranking "
                        "keeps every layer)"]
    records = read_records(tmp_path / "run", "empty_layers")
    assert [(r["step"], r["layers"]) for r in records] == [(0, {"G": [first[2:]]})]
