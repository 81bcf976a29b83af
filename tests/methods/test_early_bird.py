"""Early-bird tickets through the real loop: the search phase is dense training, the distance is
per pruned net and normalised, detection can happen at any check from the window-th on."""

import pytest
import torch
from safetensors.torch import load_file

from idx_files import write_fake_mnist
from run_checks import assert_inactive_zero
from sparsegan.cli import main
from sparsegan.config import build_config
from sparsegan.launch import train
from sparsegan.sparsity import mask_distance, target_counts
from sparsegan.training import read_records


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_fake_mnist(tmp_path_factory.mktemp("data"), n_train=256, n_test=8)


TINY = {"model": "mlp", "model_width": 8, "batch_size": 8, "seed": 3}
EB = {"method": "early_bird", "eb_interval": 2, "eb_window": 3, "sparsity_g": 0.8, "sparsity_d": 0.5}


def _run(data, out, on_step=None, **kw):
    """Train in-process; returns the run folder and, if asked, what ``on_step`` collected."""
    cfg = build_config({"data_root": str(data), "out": str(out), **TINY, **kw})
    return train(cfg, progress=False, on_step=on_step)


def _weights(t):
    """G, D and EMA weights after a step, keyed "<net>.<name>"."""
    return {f"{net}.{k}": v.detach().clone()
            for net, m in (("G", t.G), ("D", t.D), ("EMA", t.ema.model)) for k, v in m.state_dict().items()}


def _checks(run):
    return read_records(run, "early_bird_check")


def test_mask_distance_hand_checked():
    def m(*bits):
        return torch.tensor(bits, dtype=torch.bool)

    a = m(1, 1, 0, 0, 0, 0, 0, 0, 0, 0)
    # Density 0.2: one of the two kept weights moved; two masks of 2 in 10 differ in at most 4 places.
    assert mask_distance({"w": a}, {"w": m(0, 1, 1, 0, 0, 0, 0, 0, 0, 0)}) == 2 / 4
    assert mask_distance({"w": a}, {"w": m(0, 0, 1, 1, 0, 0, 0, 0, 0, 0)}) == 1.0  # disjoint: the maximum
    assert mask_distance({"w": a}, {"w": a.clone()}) == 0.0
    # Density 0.8: the bound is 2 * (n - k) = 4; one pruned weight moved.
    assert mask_distance({"w": ~a}, {"w": m(1, 0, 0, 1, 1, 1, 1, 1, 1, 1)}) == 2 / 4
    # Several layers of one net pool: 2 + 2 differing of at most 2 * min(3, 9) = 6.
    x, y = {"u": m(1, 0, 0, 0), "v": m(1, 1, 0, 0, 0, 0, 0, 0)}, {"u": m(0, 1, 0, 0), "v": m(1, 0, 1, 0, 0, 0, 0, 0)}
    assert mask_distance(x, y) == 4 / 6
    # Unequal counts: 1 and 3 of 4 active, differing in 2; at most min(1 + 3, 8 - 4) = 4.
    assert mask_distance({"w": m(1, 0, 0, 0)}, {"w": m(1, 1, 1, 0)}) == 2 / 4
    assert mask_distance({"w": m(1, 1)}, {"w": m(1, 1)}) == 0.0  # all kept: nothing can differ
    with pytest.raises(ValueError):
        mask_distance({"w": a}, {"v": a})


def test_checks_leave_the_dense_run_untouched(tmp_path, data):
    """Until the ticket is drawn, G, D and the EMA equal a dense run's of the same seed bitwise;
    at the draw the ticket keeps exactly the dense-trained weights of the largest magnitudes."""
    dense, eb, masks = {}, {}, {}
    _run(data, tmp_path / "dense", method="dense", steps=14, on_step=lambda t: dense.__setitem__(t.step, _weights(t)))

    def grab(t):
        eb[t.step] = _weights(t)
        masks[t.step] = {n: m.clone() for n, m in t.method.masks["G"].masks.items()}

    run = _run(data, tmp_path / "eb", **EB, steps=14, eb_threshold=0.0, eb_max_steps=11, on_step=grab)
    assert [c["step"] for c in _checks(run)] == [2, 4, 6, 8, 10, 11]
    (ticket,) = read_records(run, "early_bird")
    assert ticket["step"] == 11 and ticket["detected"] is False
    for step in range(1, 11):
        assert eb[step].keys() == dense[step].keys()
        for k in dense[step]:
            assert torch.equal(eb[step][k], dense[step][k]), (step, k)
    # The draw: the surviving weights are the dense run's, the ticket is their per-layer magnitude
    # top-k at the default --ranking uniform's counts (every layer at density 0.2), everything else is 0.
    counts = target_counts({n: dense[11][f"G.{n}"] for n in masks[11]}, 0.8, "uniform")
    for n, m in masks[11].items():
        w_dense, w_eb = dense[11][f"G.{n}"], eb[11][f"G.{n}"]
        assert int(m.sum()) == counts[n]
        assert torch.equal(w_eb[m], w_dense[m]) and (w_eb[~m] == 0).all()
        assert w_dense[m].abs().min() >= w_dense[~m].abs().max()
    _check_ticket(run, s_g=0.8, s_d=0.5)


def _check_ticket(run, s_g, s_d):
    masks = assert_inactive_zero(run)
    for net, s in (("G", s_g), ("D", s_d)):
        net_masks = {k: m for k, m in masks.items() if k.startswith(net + ".")}
        n = sum(m.numel() for m in net_masks.values())
        assert sum(int(m.sum()) for m in net_masks.values()) == round((1 - s) * n), net


def test_distances_are_nonzero_and_normalised(tmp_path, data):
    """On a real dense run the newest mask differs from the older ones, and each recorded distance
    is the differing positions over 2 min(k, n - k), per net, from the masks the checks built."""
    newest = {}

    def grab(t):
        if t.method.history and t.method.drawn_at is None:
            newest[t.step] = {k: m.clone() for k, m in t.method.history[-1].items()}

    run = _run(data, tmp_path / "r", **EB, steps=14, eb_threshold=0.0, eb_max_steps=13, on_step=grab)
    checks = _checks(run)
    assert [c["check"] for c in checks] == list(range(1, 8))
    assert checks[0]["distances"] == {"G": [], "D": []} and checks[0]["max_distance"] is None
    steps = [c["step"] for c in checks]
    for i, c in enumerate(checks[1:-1], start=1):  # the last check drew the ticket; its masks are the ticket's
        older = steps[max(0, i - 2):i]
        assert c["window_full"] == (i >= 2)
        for net in ("G", "D"):
            want = []
            for s in older:
                a = {k: m for k, m in newest[c["step"]].items() if k.startswith(net + ".")}
                b = {k: newest[s][k] for k in a}
                diff = sum(int((a[k] != b[k]).sum()) for k in a)
                n, active = sum(m.numel() for m in a.values()), sum(int(m.sum()) for m in a.values())
                want.append(diff / (2 * min(active, n - active)))
            assert c["distances"][net] == want, (c["step"], net)
            assert all(0 < d <= 1 for d in want)  # nonzero before convergence
        assert c["max_distance"] == max(d for ds in c["distances"].values() for d in ds)


def test_detection_at_a_later_check(tmp_path, data):
    """With a threshold between the criterion of a later check and all the earlier full-window
    ones, the ticket is drawn at that check, not at the window-th."""
    common = dict(EB, steps=40, eb_max_steps=39)
    free = _checks(_run(data, tmp_path / "free", **common, eb_threshold=0.0))
    full = [c for c in free if c["window_full"]]
    assert full[0]["check"] == 3  # the eb_window-th
    # The first full-window check whose criterion is below every earlier one's.
    later = next(c for i, c in enumerate(full)
                 if i > 0 and c["max_distance"] < min(e["max_distance"] for e in full[:i]))
    threshold = (later["max_distance"] + min(e["max_distance"] for e in full if e["check"] < later["check"])) / 2
    run = _run(data, tmp_path / "r", **common, eb_threshold=threshold)
    (ticket,) = read_records(run, "early_bird")
    assert ticket["detected"] is True and ticket["check"] == later["check"] > 3 and ticket["step"] == later["step"]
    # The checks up to the draw are the free run's: the search phase is the same dense training.
    assert [{**c, "threshold": 0.0} for c in _checks(run)] == free[:later["check"]]
    assert ticket["max_distance"] == later["max_distance"] < threshold
    assert _checks(run)[-1]["step"] == ticket["step"]  # no checks after the draw
    _check_ticket(run, s_g=0.8, s_d=0.5)


def test_dense_discriminator_does_not_dilute_the_distance(tmp_path, data):
    """With s_D = 0 only G is part of the criterion, and G's distances are the same as when D is
    pruned too (the dense phases are identical)."""
    common = dict(EB, steps=12, eb_threshold=0.0, eb_max_steps=11)
    both = _checks(_run(data, tmp_path / "gd", **common))
    g_only_run = _run(data, tmp_path / "g", **{**common, "sparsity_d": 0.0})
    g_only = _checks(g_only_run)
    assert len(g_only) == len(both) == 6
    for a, b in zip(g_only, both):
        assert a["distances"] == {"G": b["distances"]["G"]}
        assert a["max_distance"] == (max(a["distances"]["G"]) if a["distances"]["G"] else None)
    assert any(c["max_distance"] > 0 for c in g_only[1:])
    _check_ticket(g_only_run, s_g=0.8, s_d=0.0)


def test_resume_keeps_the_window(tmp_path, data):
    """A run stopped between checks and resumed gives the same checks, ticket and weights."""
    common = dict(EB, steps=16, eb_threshold=0.0, eb_max_steps=13, checkpoint_every=5)
    straight = _run(data, tmp_path / "straight", **common)

    class Stop(Exception):
        pass

    def stop(t):
        if t.step == 7:
            raise Stop

    with pytest.raises(Stop):
        _run(data, tmp_path / "r", **common, on_step=stop)
    cfg = build_config({"data_root": str(data), "out": str(tmp_path / "r"), **TINY, **common})
    run = train(cfg, resume="auto", progress=False)
    assert read_records(run, "resume")[0]["step"] == 5
    assert _checks(run) == _checks(straight)
    assert read_records(run, "early_bird") == read_records(straight, "early_bird")
    # check 4 (step 8) saw the window
    assert _checks(run)[3]["window_full"] and len(_checks(run)[3]["distances"]["G"]) == 2
    for f in ("generator", "generator_ema", "discriminator", "masks"):
        x, y = load_file(straight / "final" / f"{f}.safetensors"), load_file(run / "final" / f"{f}.safetensors")
        assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x), f


@pytest.mark.parametrize("args, message", [
    (["--eb-window", "1"], "--eb-window"),
    (["--eb-threshold", "1.5"], "--eb-threshold"),
    (["--sparsity-g", "0", "--sparsity-d", "0"], "no ticket"),
])
def test_bad_settings_are_refused(tmp_path, data, capsys, args, message):
    rc = main(["train", "--data-root", str(data), "--out", str(tmp_path / "r"), "--no-progress",
               "--model", "mlp", "--model-width", "8", "--method", "early_bird", "--steps", "4", *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and message in err[0]
    assert not (tmp_path / "r").exists()
