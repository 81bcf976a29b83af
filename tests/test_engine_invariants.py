"""The engine's invariants through the public API, in the order a user's loop calls it: ADAPT fed
through ``sparse.observe_balance``, optimizers that already hold state, weights changed after
attaching, and the three documented choices for a regrown weight's optimizer history."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sparsegan import SparseTraining
from sparsegan.errors import UserError
from sparsegan.methods.adapt import balance_ratio


def _gan(seed: int = 0):
    torch.manual_seed(seed)
    G = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 16))
    D = nn.Sequential(nn.Linear(16, 32), nn.LeakyReLU(0.2), nn.Linear(32, 1))
    return G, D


def _adam(net, lr=1e-3):
    return torch.optim.Adam(net.parameters(), lr=lr, betas=(0.5, 0.999))


def _gan_iteration(G, D, opt, gen, *, feed=None):
    """One hinge-loss GAN iteration (D then G); returns the balance ratio of the G step."""
    real = torch.randn(16, 16, generator=gen) + 2.0
    z = torch.randn(16, 8, generator=gen)
    opt["D"].zero_grad()
    loss_d = F.relu(1 - D(real)).mean() + F.relu(1 + D(G(z).detach())).mean()
    loss_d.backward()
    opt["D"].step()
    opt["G"].zero_grad()
    fake_logits = D(G(z))
    (-fake_logits.mean()).backward()
    opt["G"].step()
    with torch.no_grad():
        return balance_ratio(D(real).mean(), fake_logits.mean(), D(G(z)).mean())


def _inactive(sparse):
    """net -> number of non-zero weights outside the masks."""
    return {net: sum(int((m.params[n].detach().ne(0) & ~mask).sum()) for n, mask in m.masks.items())
            for net, m in sparse.masks.items()}


# --- 1. ADAPT through the API ----------------------------------------------------------------------
def test_adapt_through_the_api_moves_d_by_the_ratios_fed_to_it():
    # ratio 1.0 >= adapt_high at every decision (20, 40, 60, 80): D grows by adapt_step each time
    G, D = _gan()
    opt = {"G": _adam(G), "D": _adam(D)}
    sparse = SparseTraining({"G": G, "D": D}, opt, "adapt", sparsity={"G": 0.8, "D": 0.5}, steps=100,
                            update_interval=25, adapt_interval=20, adapt_step=0.05)
    gen = torch.Generator().manual_seed(0)
    densities = []
    for _ in range(100):
        _gan_iteration(G, D, opt, gen)
        sparse.observe_balance(1.0)
        sparse.step()
        if sparse.completed % 20 == 0:
            densities.append(sparse.masks["D"].active())
    n, active, expected = sparse.masks["D"].numel(), 272, []  # D: 544 weights, 272 active at the start
    for _ in range(4):  # each decision: the density one adapt_step above the current one, in whole weights
        active = round((active / n + 0.05) * n)
        expected.append(active)
    assert densities == [*expected, expected[-1]] == [299, 326, 353, 380, 380]  # no decision at the final step
    records = [r for r in sparse.drain_records() if r["kind"] == "adapt"]
    assert [r["action"] for r in records] == ["grow"] * 4 and records[0]["balance_ratio_mean"] == 1.0
    assert _inactive(sparse) == {"G": 0, "D": 0}


def test_adapt_through_the_api_with_measured_ratios_and_without_a_feed():
    G, D = _gan()
    opt = {"G": _adam(G), "D": _adam(D)}
    sparse = SparseTraining({"G": G, "D": D}, opt, "adapt", sparsity={"G": 0.8, "D": 0.5}, steps=50,
                            update_interval=25, adapt_interval=10)
    gen = torch.Generator().manual_seed(0)
    for _ in range(10):
        sparse.observe_balance(_gan_iteration(G, D, opt, gen))
        sparse.step()
    (record,) = [r for r in sparse.drain_records() if r["kind"] == "adapt"]
    assert record["action"] in ("grow", "prune", "keep") and record["d_density_before"] == 0.5

    # Nothing fed: the first decision is an error, not a D left at its start.
    G, D = _gan()
    opt = {"G": _adam(G), "D": _adam(D)}
    sparse = SparseTraining({"G": G, "D": D}, opt, "adapt", sparsity={"G": 0.8, "D": 0.5}, steps=50,
                            update_interval=25, adapt_interval=10)
    for i in range(9):
        _gan_iteration(G, D, opt, gen)
        sparse.step()
    _gan_iteration(G, D, opt, gen)
    with pytest.raises(UserError, match=r"iteration 10 has no balance ratio.*sparse.observe_balance"):
        sparse.step()


# --- 2. optimizers with state, weights changed after attaching -----------------------------------
@pytest.mark.parametrize("method", ["static", "stu", "pf"])
def test_attaching_to_optimizers_that_hold_state_keeps_inactive_weights_zero(method):
    # 20 dense warm-up iterations give every weight Adam moments; a mask then removes most of them.
    G, D = _gan()
    opt = {"G": _adam(G), "D": _adam(D)}
    gen = torch.Generator().manual_seed(1)
    for _ in range(20):
        _gan_iteration(G, D, opt, gen)
    sparse = SparseTraining({"G": G, "D": D}, opt, method, sparsity={"G": 0.9, "D": 0.5}, steps=30,
                            update_interval=10, **({"prune_nets": "G,D"} if method == "pf" else {}))
    for net, masks in sparse.masks.items():  # the removed weights' moments went with them
        for name, mask in masks.masks.items():
            state = opt[net].state[masks.params[name]]
            assert not state["exp_avg"][~mask].any() and not state["exp_avg_sq"][~mask].any(), (net, name)
    for i in range(30):
        _gan_iteration(G, D, opt, gen)
        sparse.step()
        assert _inactive(sparse) == {"G": 0, "D": 0}, f"iteration {i + 1}"
    assert abs(sparse.density()["G"] - 0.1) < 1e-3 and abs(sparse.density()["D"] - 0.5) < 1e-3


def test_weights_changed_after_attaching_are_refused_at_the_first_step_and_reapply_repairs():
    G, D = _gan()
    opt = {"G": _adam(G), "D": _adam(D)}
    sparse = SparseTraining({"G": G, "D": D}, opt, "static", sparsity={"G": 0.9, "D": 0.5}, steps=10)
    D.load_state_dict(_gan(seed=3)[1].state_dict())  # "pretrained" weights, one line too late
    gen = torch.Generator().manual_seed(0)
    with pytest.raises(UserError, match=r"net 'D': \d+ weights of '0.weight' outside its mask are non-zero"):
        _gan_iteration(G, D, opt, gen)
    sparse.reapply_masks()
    for _ in range(3):
        _gan_iteration(G, D, opt, gen)
        sparse.step()
    assert _inactive(sparse) == {"G": 0, "D": 0} and abs(sparse.density()["D"] - 0.5) < 1e-3


# --- 5. a regrown weight's optimizer history: fresh, zero (RigL), keep (STU-GAN code) --------------
def _first_steps(regrown_state: str):
    """|first Adam step| / lr of each really new connection of the update at iteration 10, and the
    Adam step count t of that first step."""
    torch.manual_seed(0)
    net = nn.Linear(32, 16)
    lr = 1e-3
    opt = torch.optim.Adam(net.parameters(), lr=lr, betas=(0.5, 0.999))
    sparse = SparseTraining({"net": net}, {"net": opt}, "stu", sparsity={"net": 0.8}, steps=30, update_interval=10,
                            regrown_state=regrown_state)
    grown = {}
    sparse.on_topology_change(lambda ev, step: grown.update(ev.grown_entries))
    x, y = torch.randn(64, 32, generator=torch.Generator().manual_seed(0)), torch.randn(64, 16)
    before = None
    for i in range(11):
        opt.zero_grad()
        F.mse_loss(net(x), y).backward()
        opt.step()
        sparse.step()
        if i == 9:
            before = net.weight.detach().clone()
    new = grown["weight"]
    assert int(new.sum()) > 0 and not before[new].any()  # really new connections start at 0
    return (net.weight.detach() - before)[new].abs() / lr, int(opt.state[net.weight]["step"])


def test_first_step_of_a_regrown_weight_under_each_documented_choice():
    b1, b2 = 0.5, 0.999
    zero, t = _first_steps("zero")
    # RigL's zeroed history: m = (1 - b1) g, v = (1 - b2) g^2, bias-corrected at step t
    expected = (1 - b1) / (1 - b1 ** t) / ((1 - b2) / (1 - b2 ** t)) ** 0.5
    assert t == 11 and torch.allclose(zero, torch.full_like(zero, expected), rtol=1e-3)
    # a never-active weight has no history to keep: the reference code's first step is RigL's
    keep, _ = _first_steps("keep")
    assert torch.allclose(keep, torch.full_like(keep, expected), rtol=1e-3)
    # a fresh weight's history: the bias-corrected moments after one step with the captured
    # gradient g, so with g' ~ g the first step is lr (at most: v is floored at the layer's mean)
    fresh, _ = _first_steps("fresh")
    assert fresh.max() <= 1.05 and fresh.median() > 0.3


def test_regrown_state_is_checked_in_one_line():
    net = nn.Linear(4, 4)
    with pytest.raises(UserError, match="unknown regrown state 'stale'; valid: fresh, zero, keep"):
        SparseTraining({"net": net}, {"net": torch.optim.Adam(net.parameters())}, "stu", sparsity={"net": 0.5},
                       steps=10, regrown_state="stale")


# --- 4. misuse through the API: one line, no traceback from the inside ----------------------------
def _one_net():
    net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    return net, torch.optim.Adam(net.parameters(), lr=1e-3)


@pytest.mark.parametrize("kwargs, message", [
    ({"sparsity": 0.9}, r"sparsity= names each net's target: a dict such as \{'net': 0.9\}, not float 0.9"),
    ({"sparsity": {"net": 0.9}, "update_interval": "20"}, r"update_interval= must be int, got str '20'"),
    ({"sparsity": {"net": 0.9}, "prune_fraction": True}, r"prune_fraction= must be float, got bool True"),
])
def test_options_of_the_wrong_kind_are_refused_in_one_line(kwargs, message):
    net, opt = _one_net()
    with pytest.raises(UserError, match=message):
        SparseTraining({"net": net}, {"net": opt}, "stu", steps=10, **kwargs)


def test_an_update_without_the_gradient_of_a_sparse_weight_is_refused_in_one_line():
    net, opt = _one_net()
    sparse = SparseTraining({"net": net}, {"net": opt}, "stu", sparsity={"net": 0.5}, steps=10, update_interval=2)
    x = torch.randn(4, 8)
    for step in (1, 2):  # the update is due after iteration 2
        opt.zero_grad(set_to_none=True)
        net[0](x).sum().backward()  # the last layer takes no part in the loss: no gradient
        opt.step()
        if step == 1:
            sparse.step()
    with pytest.raises(UserError, match="needs the gradient of every sparse weight at a topology update"):
        sparse.step()


def test_load_state_dict_of_another_method_or_net_set_is_refused_in_one_line():
    net, opt = _one_net()
    stu = SparseTraining({"net": net}, {"net": opt}, "stu", sparsity={"net": 0.5}, steps=10)
    other, other_opt = _one_net()
    static = SparseTraining({"net": other}, {"net": other_opt}, "static", sparsity={"net": 0.5}, steps=10)
    with pytest.raises(UserError, match="this state is of method 'stu', not 'static'"):
        static.load_state_dict(stu.state_dict())
    G, D = _gan()
    gan = SparseTraining({"G": G, "D": D}, {"G": _adam(G), "D": _adam(D)}, "stu", sparsity={"G": 0.5}, steps=10)
    with pytest.raises(UserError, match="holds the masks of nets net, not of G, D"):
        gan.load_state_dict(stu.state_dict())
    wide = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4), nn.ReLU(), nn.Linear(4, 2))
    deeper = SparseTraining({"net": wide}, {"net": torch.optim.Adam(wide.parameters())}, "stu",
                            sparsity={"net": 0.5}, steps=10)
    with pytest.raises(UserError, match="masks of net 'net' do not fit its weights"):
        deeper.load_state_dict(stu.state_dict())


def test_pf_through_the_api_prunes_every_net_given_a_target():
    G, D = _gan()
    sparse = SparseTraining({"G": G, "D": D}, {"G": _adam(G), "D": _adam(D)}, "pf", sparsity={"G": 0.9, "D": 0.5},
                            steps=10)
    assert abs(sparse.density()["G"] - 0.1) < 1e-3 and abs(sparse.density()["D"] - 0.5) < 1e-3
    G, D = _gan()
    with pytest.raises(UserError, match="net 'D' would stay dense despite its sparsity 0.5"):
        SparseTraining({"G": G, "D": D}, {"G": _adam(G), "D": _adam(D)}, "pf", sparsity={"G": 0.9, "D": 0.5},
                       steps=10, prune_nets="G")


# --- loops beyond plain PyTorch: closures, wrapped optimizers, building from a checkpoint ----------
def test_a_closure_step_masks_this_steps_gradients():
    # step(closure) computes the gradients inside step() (Lightning's automatic optimisation): the
    # engine runs the closure before masking, so the gradients it masks and captures are this step's
    net, opt = _one_net()
    sparse = SparseTraining({"net": net}, {"net": opt}, "stu", sparsity={"net": 0.8}, steps=12, update_interval=4)
    x, y = torch.randn(16, 8), torch.randn(16, 4)
    calls = []

    def closure():
        calls.append(1)
        opt.zero_grad()
        loss = F.mse_loss(net(x), y)
        loss.backward()
        return loss

    for _ in range(12):
        loss = opt.step(closure)
        assert torch.is_tensor(loss)  # step() returns the closure's loss
        sparse.step()
        assert _inactive(sparse) == {"net": 0}
    assert len(calls) == 12  # once per step, not twice
    assert sparse.masks["net"].itop_rate() > sparse.density()["net"]  # regrown by this step's gradient


def test_a_wrapped_optimizer_is_refused_in_one_line_naming_what_it_wraps():
    net, opt = _one_net()

    class Wrapper:  # e.g. Accelerate's AcceleratedOptimizer
        def __init__(self, optimizer):
            self.optimizer = optimizer

    with pytest.raises(UserError, match=r"is a Wrapper, not a torch.optim.Optimizer \(it wraps a Adam: pass that"):
        SparseTraining({"net": net}, {"net": Wrapper(opt)}, "stu", sparsity={"net": 0.5}, steps=10)


def test_building_from_a_checkpoint_keeps_the_weights_the_nets_hold():
    net, opt = _one_net()
    sparse = SparseTraining({"net": net}, {"net": opt}, "stu", sparsity={"net": 0.8}, steps=20, update_interval=3)
    x, y = torch.randn(16, 8), torch.randn(16, 4)
    for _ in range(7):
        opt.zero_grad()
        F.mse_loss(net(x), y).backward()
        opt.step()
        sparse.step()
    saved, weights = sparse.state_dict(), {k: v.clone() for k, v in net.state_dict().items()}
    # A framework restores the weights first and builds the engine after (Lightning's resume order)
    other, other_opt = _one_net()
    other.load_state_dict(weights)
    resumed = SparseTraining({"net": other}, {"net": other_opt}, "stu", sparsity={"net": 0.8}, steps=20,
                             update_interval=3, seed=5, state=saved)
    assert resumed.completed == 7
    assert all(torch.equal(other.state_dict()[k], weights[k]) for k in weights)
    assert all(torch.equal(resumed.masks["net"].masks[n], sparse.masks["net"].masks[n]) for n in weights
               if n in sparse.masks["net"].masks)
