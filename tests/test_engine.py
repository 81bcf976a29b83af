"""The public API (sparsegan.SparseTraining) in users' own loops: the two shipped examples, the
optimizer-state surgery of SGD momentum and AdamW, exact resume, and misuse refused in one line."""

import importlib.util
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sparsegan import SparseTraining
from sparsegan.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


def _example(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _inactive_zero(sparse, nets):
    for net, masks in sparse.masks.items():
        for name, m in masks.masks.items():
            assert not masks.params[name][~m].any(), f"{net}.{name} has nonzero inactive weights"


def test_dcgan_example_is_stu_gan_in_a_plain_loop(tmp_path):
    ex = _example("dcgan_stu")
    out = ex.main(["--synthetic", "--steps", "12", "--update-interval", "4", "--width", "8",
                   "--out", str(tmp_path / "g.png")])
    sparse = out["sparse"]
    assert out["steps"] == 12 and sparse.completed == 12
    dens = sparse.density()
    assert abs(dens["G"] - 0.1) < 1e-4 and abs(dens["D"] - 0.5) < 1e-4
    _inactive_zero(sparse, {"G": out["G"], "D": out["D"]})
    # G explored (updates at 4 and 8): its ITOP rate grew past its density; D's masks never changed
    assert sparse.masks["G"].itop_rate() > dens["G"] and sparse.masks["D"].itop_rate() == dens["D"]
    ema = out["ema"].model  # the sparse EMA: zero wherever G is inactive
    for name, m in sparse.masks["G"].masks.items():
        assert not dict(ema.named_parameters())[name][~m].any()
    assert (tmp_path / "g.png").is_file()
    # "at most ~10 added lines": the lines that make it sparse are marked
    marked = [line for line in (ROOT / "examples" / "dcgan_stu.py").read_text().splitlines() if "# sparsegan" in line]
    assert 0 < len(marked) <= 10


def test_classifier_example_rigl_with_sgd_momentum():
    ex = _example("classifier_rigl")
    out = ex.main(["--synthetic", "--steps", "20", "--update-interval", "5"])
    sparse, opt = out["sparse"], out["opt"]
    assert out["regrown"] > 0 and abs(sparse.density()["net"] - 0.1) < 1e-4
    _inactive_zero(sparse, {"net": out["net"]})
    masks = sparse.masks["net"]
    for name, m in masks.masks.items():  # momentum of inactive weights: 0 (removed ones cleared)
        assert not opt.state[masks.params[name]]["momentum_buffer"][~m].any()


def _linear_setup(opt_kind: str, sparsity=0.5, seed=0, **options):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    opt = {"sgd": lambda: torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9),
           "adamw": lambda: torch.optim.AdamW(net.parameters(), lr=0.01, weight_decay=0.1),
           "adam": lambda: torch.optim.Adam(net.parameters(), lr=0.01)}[opt_kind]()
    sparse = SparseTraining({"net": net}, {"net": opt}, "stu", sparsity={"net": sparsity}, steps=40, seed=seed,
                            **{"update_interval": 5, "distribution": "uniform", **options})
    return net, opt, sparse


def _train(net, opt, sparse, n, seed=1):
    g = torch.Generator().manual_seed(seed)
    for _ in range(n):
        x, y = torch.randn(16, 8, generator=g), torch.randint(4, (16,), generator=g)
        opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        opt.step()
        sparse.step()


def test_sgd_momentum_regrown_weight_takes_a_fresh_first_step():
    net, opt, sparse = _linear_setup("sgd")
    _train(net, opt, sparse, 4)
    masks = sparse.masks["net"]
    before = {n: m.clone() for n, m in masks.masks.items()}
    g = torch.Generator().manual_seed(99)
    x, y = torch.randn(16, 8, generator=g), torch.randint(4, (16,), generator=g)
    opt.zero_grad()
    F.cross_entropy(net(x), y).backward()
    opt.step()
    events = sparse.step()  # iteration 5: prune and regrow
    assert sum(ev.grown for ev in events) > 0
    grown = {n: masks.masks[n] & ~before[n] for n in before}
    for n, new in grown.items():
        p = masks.params[n]
        assert not p[new].any() and not opt.state[p]["momentum_buffer"][new].any()  # grown at 0, history 0
        removed = before[n] & ~masks.masks[n]
        assert not p[removed].any() and not opt.state[p]["momentum_buffer"][removed].any()
    # The next step moves a regrown weight by exactly -lr * g, a fresh SGD weight's first step.
    x, y = torch.randn(16, 8, generator=g), torch.randint(4, (16,), generator=g)
    opt.zero_grad()
    F.cross_entropy(net(x), y).backward()
    grads = {n: masks.params[n].grad.clone() for n in grown}
    opt.step()
    for n, new in grown.items():
        assert torch.allclose(masks.params[n][new], -0.1 * grads[n][new], atol=1e-7)


def test_adamw_weight_decay_keeps_inactive_weights_exactly_zero():
    net, opt, sparse = _linear_setup("adamw")
    _train(net, opt, sparse, 17)
    _inactive_zero(sparse, {"net": net})
    assert sparse.completed == 17


def test_exact_resume_from_state_dicts():
    net_a, opt_a, sparse_a = _linear_setup("adam", grow="random")
    _train(net_a, opt_a, sparse_a, 6, seed=1)
    _train(net_a, opt_a, sparse_a, 6, seed=2)
    net_b, opt_b, sparse_b = _linear_setup("adam", grow="random")
    _train(net_b, opt_b, sparse_b, 6, seed=1)
    ckpt = {"net": net_b.state_dict(), "opt": opt_b.state_dict(), "sparse": sparse_b.state_dict()}
    net_c, opt_c, sparse_c = _linear_setup("adam", grow="random", seed=5)  # other init and masks, restored below
    net_c.load_state_dict(ckpt["net"])
    opt_c.load_state_dict(ckpt["opt"])
    sparse_c.load_state_dict(ckpt["sparse"])
    assert sparse_c.completed == 6
    _train(net_c, opt_c, sparse_c, 6, seed=2)  # through updates at 10 with random growth (topology rng)
    for (n, a), (_, c) in zip(net_a.state_dict().items(), net_c.state_dict().items()):
        assert torch.equal(a, c), n
    for n in sparse_a.masks["net"].masks:
        assert torch.equal(sparse_a.masks["net"].masks[n], sparse_c.masks["net"].masks[n])


def test_one_optimizer_for_two_nets():
    torch.manual_seed(0)
    enc, dec = nn.Linear(8, 4), nn.Linear(4, 8)
    opt = torch.optim.Adam(list(enc.parameters()) + list(dec.parameters()), lr=0.01)
    sparse = SparseTraining({"enc": enc, "dec": dec}, {"enc": opt, "dec": opt}, "stu",
                            sparsity={"enc": 0.5, "dec": 0.75}, steps=20, update_interval=3)
    for _ in range(7):
        x = torch.randn(16, 8)
        opt.zero_grad()
        F.mse_loss(dec(enc(x)), x).backward()
        opt.step()
        sparse.step()
    assert sparse.density() == {"enc": 0.5, "dec": 0.25}
    assert sparse.masks["dec"].itop_rate() > 0.25  # both explored (every sparse net, by default)
    _inactive_zero(sparse, {"enc": enc, "dec": dec})


def test_snip_scores_with_the_users_loss_probe():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    x, y = torch.randn(32, 8), torch.randint(4, (32,))
    with pytest.raises(UserError, match="loss_probe"):
        SparseTraining({"net": net}, {"net": opt}, "snip", sparsity={"net": 0.8}, steps=10)
    sparse = SparseTraining({"net": net}, {"net": opt}, "snip", sparsity={"net": 0.8}, steps=10,
                            loss_probe=lambda name: F.cross_entropy(net(x), y))
    assert abs(sparse.density()["net"] - 0.2) < 1e-2
    _inactive_zero(sparse, {"net": net})


@pytest.mark.parametrize("kwargs, message", [
    (dict(optimizers={}), "no optimizer for net 'net'"),
    (dict(method="imp"), "IMP trains whole runs in rounds"),
    (dict(method="rigl"), "unknown sparse method 'rigl'"),
    (dict(lr_g=0.1), "'lr_g' is not an option of any method (a training-loop setting"),
    (dict(update_intervall=5), "'update_intervall' is not an option of any method"),
    (dict(sparsity={"net": 1.0}), "sparsity of net 'net' must be in [0, 1)"),
    (dict(sparsity={"other": 0.5}), "sparsity names net 'other'"),
    (dict(steps=None), "steps= is required"),
    (dict(explore="G"), "explore='G' names net 'G'"),
    (dict(method="adapt", sparsity={"net": 0.5}), "name the nets G and D"),
])
def test_misuse_is_refused_in_one_line(kwargs, message):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    before = [p.clone() for p in net.parameters()]
    args = dict(nets={"net": net}, optimizers={"net": torch.optim.SGD(net.parameters(), lr=0.1)}, method="stu",
                sparsity={"net": 0.5}, steps=10)
    args.update(kwargs)
    with pytest.raises(UserError) as e:
        SparseTraining(args.pop("nets"), args.pop("optimizers"), args.pop("method"), **args)
    assert message in str(e.value) and "\n" not in str(e.value)
    assert all(torch.equal(a, p) for a, p in zip(before, net.parameters()))  # nothing touched


def test_misuse_of_nets_and_optimizers():
    net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    other = nn.Linear(3, 3)
    with pytest.raises(UserError, match="does not hold its weight '0.weight'"):
        SparseTraining({"net": net}, {"net": torch.optim.SGD(other.parameters(), lr=0.1)}, "stu",
                       sparsity={"net": 0.5}, steps=10)
    with pytest.raises(UserError, match="net 'bn' has no prunable weights"):
        bn = nn.BatchNorm1d(4)
        SparseTraining({"bn": bn}, {"bn": torch.optim.SGD(bn.parameters(), lr=0.1)}, "static",
                       sparsity={"bn": 0.5}, steps=10)
    net2, opt, sparse = _linear_setup("sgd")
    _train(net2, opt, sparse, 4)
    with pytest.raises(UserError, match="has not stepped since the last sparse.step()"):
        sparse.step()  # iteration 5 is an update, and no gradient of it was seen
    with pytest.raises(UserError, match="not a SparseTraining state"):
        sparse.load_state_dict({"masks": {}})


_DDP_WORKER = """
import os
import sys

import torch
import torch.distributed as dist
from torch import nn

from sparsegan import SparseTraining

dist.init_process_group("gloo")
rank = dist.get_rank()
torch.manual_seed(0)
net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
opt = torch.optim.SGD(net.parameters(), lr=0.1)
# different seeds per rank: different masks, until rank 0's are broadcast
sparse = SparseTraining({"net": net}, {"net": opt}, "static", sparsity={"net": 0.5}, steps=4, seed=rank)
sparse.broadcast_masks()
torch.save(dict(sparse.masks["net"].masks), f"{sys.argv[1]}/rank{rank}.pt")
assert all(bool((p[m == 0] == 0).all()) for p, m in
           zip(sparse.masks["net"].params.values(), sparse.masks["net"].masks.values()))
dist.barrier()
# Leave at once, both ranks done: gloo's teardown at interpreter exit has aborted a rank now and then
# ("terminate called without an active exception"), a PyTorch race this test is not about.
sys.stdout.flush()
sys.stderr.flush()
os._exit(0)
"""


def test_broadcast_masks_under_torch_distributed(tmp_path):
    # Two gloo processes under torchrun (in a subprocess, as users launch it).
    import os
    import subprocess
    import sys

    script = tmp_path / "worker.py"
    script.write_text(_DDP_WORKER)
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script),
           str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    # on failure, every line that says why (a rank's abort message sits mid-stream, not at the end)
    words = ("rror", "terminate", "abort", "what()")
    why = [line for line in proc.stderr.splitlines() if any(w in line for w in words)]
    assert proc.returncode == 0, "\n".join(why[:40]) + "\n...\n" + proc.stderr[-1500:]
    a, b = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # without a process group it does nothing
    net, opt, sparse = _linear_setup("sgd")
    before = {k: m.clone() for k, m in sparse.masks["net"].masks.items()}
    sparse.broadcast_masks()
    assert all(torch.equal(before[k], m) for k, m in sparse.masks["net"].masks.items())


def test_an_update_on_a_layer_sized_weight_is_the_stable_sorts_choice():
    # A 200,000-weight layer (20,000 active), large enough for both selections' sampled windows
    # (topk._SAMPLE); a user's loop in the real order (backward, optimizer step, sparse.step()). The
    # update keeps exactly the active weights a stable sort of |w| keeps and grows exactly the top
    # |dense gradient| among the others.
    from sparsegan.sparsity.topk import topk_indices

    torch.manual_seed(0)
    net = nn.Linear(500, 400)
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    sparse = SparseTraining({"net": net}, {"net": opt}, "stu", sparsity={"net": 0.9}, steps=40, seed=0,
                            update_interval=2)
    masks = sparse.masks["net"]
    g = torch.Generator().manual_seed(1)
    for step in (1, 2):
        x = torch.randn(32, 500, generator=g)
        opt.zero_grad()
        net(x).square().mean().backward()
        dense_grad = net.weight.grad.clone()  # before the optimizer step masks it
        opt.step()
        old, w = masks.masks["weight"].clone(), net.weight.detach().clone()
        sparse.step()
    active = int(old.sum())
    swaps = int(sparse.method.schedule.fraction(2) * active)
    assert active == 20000 and swaps > 0
    kept = torch.zeros(200000, dtype=torch.bool)
    kept[topk_indices(w.abs().masked_fill(~old, float("-inf")), active - swaps)] = True
    grown = torch.zeros(200000, dtype=torch.bool)
    grown[topk_indices(dense_grad.abs().reshape(-1).masked_fill(kept, float("-inf")), swaps)] = True
    assert torch.equal(masks.masks["weight"].reshape(-1), kept | grown)
    assert int(masks.masks["weight"].sum()) == active


def test_block_masks_through_the_api_in_a_users_loop():
    # mask_block= through the public API: a user's classifier keeps 4x1 blocks (four outputs
    # sharing an input) through its own loop's updates.
    from sparsegan.sparsity.blocks import Blocks

    net, opt, sparse = _linear_setup("adam", 0.75, mask_block="4x1")
    before = {n: m.clone() for n, m in sparse.masks["net"].masks.items()}
    _train(net, opt, sparse, 20)
    after = sparse.masks["net"].masks
    assert all(Blocks(4, 1).is_blocked(m) for m in after.values())
    assert any(not torch.equal(before[n], after[n]) for n in after)
    for n, p in sparse.masks["net"].params.items():
        assert (p.detach()[~after[n]] == 0).all()


def test_a_global_ranking_that_empties_a_layer_says_so_once():
    """GMP ranked globally over a net whose second layer's weights are a thousand times smaller than the
    first's: its pruning empties that layer (the net's output stops depending on its input), and the
    engine records which layer, once, at the step that emptied it."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    with torch.no_grad():
        net[2].weight.mul_(1e-3)
    opt = torch.optim.SGD(net.parameters(), lr=1e-4)
    # the target keeps 60 weights, fewer than the first layer's 128: global ranking keeps them all there
    sparse = SparseTraining({"net": net}, {"net": opt}, "gmp", sparsity={"net": 1 - 60 / 192}, steps=20,
                            ranking="global", gmp_start=0.0, gmp_end=0.5, gmp_prunes=2)
    assert sparse.drain_records() == []  # dense at set-up: nothing empty
    seen, emptied = [], None
    g = torch.Generator().manual_seed(1)
    for _ in range(20):
        opt.zero_grad()
        F.cross_entropy(net(torch.randn(16, 8, generator=g)), torch.randint(4, (16,), generator=g)).backward()
        opt.step()
        sparse.step()
        if emptied is None and sparse.masks["net"].layer_active()["2.weight"] == 0:
            emptied = sparse.completed
        seen += [(sparse.completed, r) for r in sparse.drain_records() if r["kind"] == "empty_layers"]
    assert sparse.masks["net"].layer_active() == {"0.weight": 60, "2.weight": 0}
    assert sparse.empty_layers() == {"net": ["2.weight"]}
    assert len(seen) == 1 and seen[0][1]["layers"] == {"net": ["2.weight"]}
    assert 0 < emptied < 20 and seen[0][0] == emptied  # at the pruning step that emptied it, and not again
