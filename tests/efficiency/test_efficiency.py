"""FLOPs / parameter accounting, training FLOPs of a run, on tiny hand-checkable nets."""

import pytest
import torch
from torch import nn

from sparsegan.efficiency import FlopModel, Phase, iteration_flops, layer_counts, net_totals, training_flops
from sparsegan.efficiency.training_flops import phases_of_run, planned_densities
from sparsegan.models import MODEL_KIND, MODELS, ModelSpec, build_models


class TinyG(nn.Module):
    """z (3) -> Linear(3, 8) -> view (2, 2, 2) -> ConvT(2 -> 1, k4 s2 p1) -> 4x4 -> Conv(1 -> 2, k3 p1) -> BN."""

    z_dim, num_classes = 3, 0

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 8)
        self.up = nn.ConvTranspose2d(2, 1, 4, 2, 1, bias=False)
        self.conv = nn.Conv2d(1, 2, 3, 1, 1)
        self.bn = nn.BatchNorm2d(2)
        self.emb = nn.Embedding(5, 2)  # never called: parameters, no FLOPs

    def forward(self, z, y=None):
        return self.bn(self.conv(self.up(self.fc(z).view(-1, 2, 2, 2))))


class TinyD(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2 * 4 * 4, 1, bias=False)

    def forward(self, x, y=None):
        return self.fc(x.flatten(1))


def test_layer_flops_by_hand():
    G, D = TinyG(), TinyD()
    masks = {"G": {"fc.weight": torch.zeros(8, 3, dtype=torch.bool)}}
    masks["G"]["fc.weight"][:, 0] = True  # 8 of 24 active
    rows = layer_counts({"G": G, "D": D}, masks)
    g = {r.name: r for r in rows["G"]}
    # Linear 3 -> 8: 2 * 3 * 8 = 48 weight FLOPs, 8 bias adds; density 1/3 -> 16 + 8.
    assert (g["fc"].weight_flops, g["fc"].other_flops) == (48, 8)
    assert g["fc"].sparse_flops == pytest.approx(16 + 8)
    assert (g["fc"].params, g["fc"].prunable, g["fc"].active) == (32, 24, 8)
    # ConvT 2 -> 1, k 4, on a 2x2 input: every input element scatters a 1 x 16 patch: 2 * 8 * 16.
    assert (g["up"].weight_flops, g["up"].other_flops) == (256, 0)
    # Conv 1 -> 2, k 3, pad 1, 4x4 output: 2 * (2 * 16 outputs) * 9 = 576, + 32 bias adds.
    assert (g["conv"].weight_flops, g["conv"].other_flops) == (576, 32)
    # BN: scale + shift per element of 2 x 4 x 4; embedding: params only.
    assert (g["bn"].weight_flops, g["bn"].other_flops, g["bn"].prunable) == (0, 64, 0)
    assert (g["emb"].params, g["emb"].dense_flops, g["emb"].calls) == (10, 0, 0)
    t = net_totals(rows["G"])
    assert t["params"] == sum(p.numel() for p in G.parameters())
    assert t["prunable"] == 24 + 32 + 18 and t["active_prunable"] == 8 + 32 + 18
    assert t["dense_flops"] == 48 + 8 + 256 + 576 + 32 + 64
    assert rows["D"][0].weight_flops == 2 * 32


def test_active_counts_read_off_weights_when_no_masks():
    G, D = TinyG(), TinyD()
    with torch.no_grad():
        G.fc.weight[:4] = 0
    rows = layer_counts({"G": G, "D": D})
    assert {r.name: r.active for r in rows["G"]}["fc"] == 12


def test_iteration_flops_and_rigl_dense_gradient():
    # D step: G fwd (b) + D fwd+bwd on 2b (3 x 2b); G step: G fwd+bwd (3b) + D fwd + input-grad bwd (2b).
    assert iteration_flops(1.0, 1.0, batch_size=1, n_dis=1) == 7 + 5
    assert iteration_flops(1.0, 1.0, batch_size=1, n_dis=1, g_batch_size=2) == 7 + 10  # SNGAN: G batch 2x D
    assert iteration_flops(1.0, 2.0, batch_size=4, n_dis=5, kind="vae") == 3 * 4 * 3  # one joint step
    assert iteration_flops(2.0, 3.0, batch_size=4, n_dis=5) == 5 * (4 * 2 + 24 * 3) + 12 * 2 + 8 * 3
    G, D = TinyG(), TinyD()
    fm = FlopModel({"G": G, "D": D}, masks=None)
    dens = {"G": {"fc.weight": 0.5, "up.weight": 0.5, "conv.weight": 0.5}, "D": 1.0}
    no_upd = training_flops(fm, [Phase("s", 10, dens)], batch_size=2, n_dis=1, dense_steps=10)
    upd = training_flops(fm, [Phase("s", 10, dens, {"G": 3})], batch_size=2, n_dis=1, dense_steps=10)
    # Each update computes G's weight gradient densely: + b * (dense - sparse weight FLOPs).
    assert upd["total"] - no_upd["total"] == pytest.approx(3 * 2 * (48 + 256 + 576) * 0.5)
    dense = training_flops(fm, [Phase("d", 10, {"G": 1.0, "D": 1.0})], batch_size=2, n_dis=1, dense_steps=10)
    assert dense["relative"] == 1.0
    assert 0 < no_upd["relative"] < 1


def test_phases_split_at_topology_records():
    # An early-bird-like run: dense G until step 20, then 10 % dense; D always 50 %.
    final = {"G": {"w": 0.1}, "D": {"v": 0.5}}
    records = [
        {"kind": "train", "step": 10},
        {"kind": "topology", "step": 10, "net": "G", "density": 1.0, "active": 100, "pruned": 0, "grown": 0},
        {"kind": "topology", "step": 20, "net": "G", "density": 0.1, "active": 10, "pruned": 90, "grown": 0},
        {"kind": "topology", "step": 20, "net": "D", "density": 0.5, "active": 50, "pruned": 0, "grown": 0},
        {"kind": "topology", "step": 40, "net": "G", "density": 0.1, "active": 10, "pruned": 5, "grown": 5},
    ]
    cfg = {"method": "eb", "grow": "gradient", "prune_criterion": "magnitude"}
    ext = [{"phase": "dense-pretrain", "steps": 7, "density": {"G": 1.0, "D": 1.0}}]
    phases = phases_of_run(cfg, records, final, 50, ext, {"G": 0.1, "D": 0.5})
    assert [(p.name, p.steps) for p in phases] == [("dense-pretrain", 7), ("eb", 20), ("eb", 30)]
    assert phases[1].density["G"] == 1.0 and phases[2].density["G"] == {"w": 0.1}
    # Drawing the ticket (magnitude pruning, nothing grown) needs no gradient; the regrowth at 40 does.
    assert phases[1].dense_grad_updates == {} and phases[2].dense_grad_updates == {"G": 1}
    cfg_random = dict(cfg, grow="random")
    assert all(not p.dense_grad_updates for p in phases_of_run(cfg_random, records, final, 50))
    # Within-run phases are the loop itself (already segmented); other phases may carry their own batch.
    ext2 = [{"phase": "dense-search", "within_run": True, "steps": 20, "density": {"G": 1.0, "D": 1.0}},
            {"phase": "dense-pretrain", "steps": 7, "n_dis": 5, "batch_size": 128, "density": {"G": 1.0, "D": 1.0}}]
    phases2 = phases_of_run(cfg, records, final, 50, ext2, {"G": 0.1, "D": 0.5})
    assert [(p.name, p.steps) for p in phases2] == [("dense-pretrain", 7), ("eb", 20), ("eb", 30)]
    assert phases2[0].overrides == {"n_dis": 5, "batch_size": 128}


def test_phase_overrides_change_the_iteration_cost():
    G, D = TinyG(), TinyD()
    fm = FlopModel({"G": G, "D": D}, masks=None)
    base = training_flops(fm, [Phase("p", 3, {"G": 1.0, "D": 1.0})], batch_size=2, n_dis=1, dense_steps=3)
    big = training_flops(fm, [Phase("p", 3, {"G": 1.0, "D": 1.0}, {}, {"batch_size": 4, "n_dis": 2})],
                         batch_size=2, n_dis=1, dense_steps=3)
    fG, _, _ = fm.forward("G", 1.0)
    fD, _, _ = fm.forward("D", 1.0)
    assert big["total"] == pytest.approx(3 * iteration_flops(fG, fD, 4, 2))
    assert base["relative"] == 1.0 and big["dense"] == base["dense"]


def test_planned_densities_are_exact_erk_counts():
    G, _ = build_models("mlp", ModelSpec(width=16))
    dens = planned_densities(G, 0.9)
    params = dict(G.named_parameters())
    active = sum(round(d * params[n].numel()) for n, d in dens.items())
    assert active == round(0.1 * sum(params[n].numel() for n in dens))


FAST_MODELS = [m for m in MODELS.names() if m != "biggan128"]


@pytest.mark.parametrize("model", FAST_MODELS)
def test_every_registered_model_is_counted(model):
    channels = 1 if model in ("mlp", "dcgan") else 3
    spec = ModelSpec(channels=channels, num_classes=10 if model.startswith("biggan") else 0)
    if MODEL_KIND[model] == "translation":  # images in, at the data's size: a small one
        spec = ModelSpec(channels=1, resolution=28, width=4)
    try:
        G, D = build_models(model, spec)
    except Exception:
        G, D = build_models(model, ModelSpec(channels=channels))
    nets = {net: m for net, m in (("G", G), ("D", D)) if m is not None}  # a diffusion model has no D
    fm = FlopModel(nets)
    for net, module in nets.items():
        t = net_totals(fm.rows[net])
        assert t["params"] == sum(p.numel() for p in module.parameters())
        assert t["density"] == 1.0 and t["dense_flops"] > 0
        # Every prunable weight belongs to a layer the forward actually ran.
        assert all(r.calls > 0 and r.weight_flops > 0 for r in fm.rows[net] if r.prunable)


def test_translation_iteration_by_hand():
    # Generators: translation + cycle + identity, each both generators once per image pair, forward
    # and backward (3 x 3); critics in the G step with input gradients (2); critics' step on real and
    # pooled fakes (2 x 3).
    assert iteration_flops(1.0, 1.0, batch_size=2, n_dis=1, kind="translation") == 2 * (9 + 2 + 6)
    assert iteration_flops(1.0, 1.0, batch_size=2, n_dis=1, kind="translation", identity=False) == 2 * (6 + 8)


def test_loss_probes_cost_a_gradient_of_the_probed_loss_each():
    from sparsegan.efficiency.training_flops import probe_flops

    # G's loss: G fwd+bwd (3 b_G f_G) + D fwd + input-grad bwd (2 b_G f_D); D's: G fwd + D fwd+bwd on 2b.
    assert probe_flops("G", 1.0, 1.0, batch_size=2) == 6 + 4
    assert probe_flops("D", 1.0, 1.0, batch_size=2) == 2 + 12
    assert probe_flops("D", 2.0, 1.0, batch_size=2, kind="ae") == 3 * 2 * 3
    G, D = TinyG(), TinyD()
    fm = FlopModel({"G": G, "D": D}, masks=None)
    fG, _, _ = fm.forward("G", 1.0)
    fD, _, _ = fm.forward("D", 1.0)
    dense = {"G": 1.0, "D": 1.0}
    out = training_flops(fm, [Phase("probe", 0, dense, probes={"G": 3, "D": 1}), Phase("t", 5, dense)],
                         batch_size=2, n_dis=1, dense_steps=5)
    probe = 3 * (3 * 2 * fG + 2 * 2 * fD) + (2 * fG + 3 * 4 * fD)
    assert out["phases"][0]["probe_flops"] == pytest.approx(probe) == out["total"] - out["dense"]


def test_grasp_probe_counts_three_gradients_as_torch_measures():
    # The convention counts GraSP's H g as 3 gradients of the loss; torch's FLOP counter on a small
    # MLP measures 2.86 (the first layer's input needs no gradient, in H g as in g).
    from torch.utils.flop_counter import FlopCounterMode

    from sparsegan.efficiency.training_flops import PROBE_GRADIENTS
    from sparsegan.sparsity.saliency import grasp_scores, snip_scores

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))
    params = {n: p for n, p in net.named_parameters() if p.dim() > 1}
    x = torch.randn(8, 16)
    measured = {}
    for name, fn in (("snip", snip_scores), ("grasp", grasp_scores)):
        counter = FlopCounterMode(display=False)
        with counter:
            fn(params, lambda: net(x).square().mean(), 1)
        measured[name] = counter.get_total_flops()
    ratio = measured["grasp"] / measured["snip"]
    assert PROBE_GRADIENTS["gradient"] == 1 and 2.5 < ratio <= PROBE_GRADIENTS["hessian-gradient"]


def test_grasp_criterion_updates_carry_probes():
    final = {"G": {"w": 0.1}, "D": {"v": 0.5}}
    records = [
        {"kind": "topology", "step": 10, "net": "G", "density": 0.1, "active": 10, "pruned": 5, "grown": 5},
        {"kind": "topology", "step": 10, "net": "D", "density": 0.5, "active": 50, "pruned": 0, "grown": 0},
        {"kind": "topology", "step": 20, "net": "G", "density": 0.1, "active": 10, "pruned": 4, "grown": 4},
    ]
    cfg = {"method": "stu", "grow": "gradient", "prune_criterion": "grasp", "probe_batches": 2}
    phases = phases_of_run(cfg, records, final, 30, None, {"G": 0.1, "D": 0.5})
    assert [p.probes for p in phases] == [{"G": 2 * 2 * 3}]
    assert all(not p.probes for p in phases_of_run(dict(cfg, prune_criterion="snip"), records, final, 30))


def test_committed_block_inference_table_is_generated_from_its_results():
    import importlib.util
    from pathlib import Path

    bench = Path(__file__).resolve().parents[2] / "benchmarks" / "efficiency"
    spec = importlib.util.spec_from_file_location("block_inference", bench / "block_inference.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    results = sorted(str(p) for p in (bench / "results").glob("block_inference_*.json"))
    assert results
    assert mod.table(results).strip() == (bench / "results" / "block_inference.md").read_text().strip()
