"""--mask-block through train(): every method's masks made of blocks from the first step to the last,
with topology updates in block units, per layer or over the net (ADAPT)."""

import json

import pytest
import torch

from idx_files import write_fake_mnist
from sparsegan.cli import main
from sparsegan.config import build_config
from sparsegan.errors import UserError
from sparsegan.launch import train
from sparsegan.sparsity.blocks import Blocks
from sparsegan.training import read_records


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_fake_mnist(tmp_path_factory.mktemp("data"), n_train=128, n_test=8)


@pytest.mark.parametrize("method", ["static", "stu"])
def test_masks_stay_in_blocks_through_training(data, tmp_path, method):
    seen = []

    def record(t):
        seen.append({n: m.clone() for n, m in t.method.masks["G"].masks.items()})

    cfg = build_config({"data_root": str(data), "model": "mlp", "model_width": 16, "batch_size": 16, "method": method,
                        "sparsity_g": 0.75, "sparsity_d": 0.5, "steps": 12, "update_interval": 4, "mask_block": "1x4",
                        "checkpoint_every": 100, "sample_every": 100, "out": str(tmp_path / "r")})
    train(cfg, progress=False, on_step=record)
    blocks = Blocks(1, 4)
    for masks in seen:
        assert all(blocks.is_blocked(m) for m in masks.values())
    changed = any(not torch.equal(seen[0][n], seen[-1][n]) for n in seen[0])
    assert changed == (method == "stu")  # STU-GAN moved whole blocks; static kept its masks
    density = sum(int(m.sum()) for m in seen[-1].values()) / sum(m.numel() for m in seen[-1].values())
    assert abs(density - 0.25) < 0.02


def test_block_masks_refused_by_dense_and_badly_written_blocks(data, tmp_path, capsys):
    assert main(["train", "--data-root", str(data), "--model", "mlp", "--method", "dense", "--mask-block", "1x4",
                 "--steps", "2", "--out", str(tmp_path / "a"), "--no-progress"]) != 0
    assert "mask-block" in capsys.readouterr().err
    with pytest.raises(UserError, match="mask-block"):
        build_config({"method": "stu", "mask_block": "4"}).validate()


def test_resume_with_block_masks_is_bitwise_exact(data, tmp_path):
    import shutil

    from safetensors.torch import load_file

    args = ["train", "--data-root", str(data), "--model", "mlp", "--model-width", "16", "--batch-size", "16",
            "--method", "stu", "--sparsity-g", "0.75", "--mask-block", "1x4", "--update-interval", "2",
            "--steps", "6", "--checkpoint-every", "3", "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "straight")]) == 0
    shutil.copytree(tmp_path / "straight", tmp_path / "resumed")
    for later in ("final", "checkpoints/state-00000006.pt", "summary.json"):
        path = tmp_path / "resumed" / later
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    assert main([*args, "--out", str(tmp_path / "resumed"), "--resume", "auto"]) == 0
    for f in ("generator", "generator_ema", "masks"):
        x = load_file(tmp_path / "straight" / "final" / f"{f}.safetensors")
        y = load_file(tmp_path / "resumed" / "final" / f"{f}.safetensors")
        assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x), f
    masks = load_file(tmp_path / "resumed" / "final" / "masks.safetensors")
    assert all(Blocks(1, 4).is_blocked(m.bool()) for k, m in masks.items() if k.startswith("G."))


def test_an_unstructured_ticket_is_refused_by_a_block_run_in_one_line(data, tmp_path, capsys):
    base = ["train", "--data-root", str(data), "--model", "mlp", "--model-width", "16", "--batch-size", "16",
            "--steps", "2", "--no-progress"]
    assert main([*base, "--method", "stu", "--sparsity-g", "0.75", "--out", str(tmp_path / "src")]) == 0
    capsys.readouterr()
    assert main([*base, "--method", "static", "--sparsity-g", "0.75", "--mask-block", "1x4",
                 "--masks-from", str(tmp_path / "src"), "--out", str(tmp_path / "dst")]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not made of 1x4 blocks" in err[0]


@pytest.mark.parametrize("ranking", ["uniform", "global"])
def test_gmp_and_pf_prune_whole_blocks(data, tmp_path, ranking):
    # Gradual (GMP) and one-shot (PF, from a dense run) magnitude pruning in block units: the
    # masks end made of blocks at the target density, per layer (uniform) or over the net (global).
    from safetensors.torch import load_file

    base = ["train", "--data-root", str(data), "--model", "mlp", "--model-width", "16", "--batch-size", "16",
            "--no-progress", "--sparsity-g", "0.75"]
    assert main([*base, "--method", "gmp", "--mask-block", "1x4", "--ranking", ranking, "--steps", "8",
                 "--gmp-prunes", "3", "--out", str(tmp_path / "gmp")]) == 0
    assert main([*base, "--method", "dense", "--steps", "3", "--out", str(tmp_path / "dense")]) == 0
    assert main([*base, "--method", "pf", "--mask-block", "1x4", "--ranking", ranking,
                 "--from", str(tmp_path / "dense"), "--steps", "2", "--out", str(tmp_path / "pf")]) == 0
    for run in ("gmp", "pf"):
        masks = {k: m.bool() for k, m in load_file(tmp_path / run / "final" / "masks.safetensors").items()
                 if k.startswith("G.")}
        assert all(Blocks(1, 4).is_blocked(m) for m in masks.values()), run
        density = sum(int(m.sum()) for m in masks.values()) / sum(m.numel() for m in masks.values())
        assert abs(density - 0.25) < 0.02, (run, density)


def _g_masks(folder):
    from safetensors.torch import load_file

    return {k[2:]: m.bool() for k, m in load_file(folder / "masks.safetensors").items() if k.startswith("G.")}


def _density(masks):
    return sum(int(m.sum()) for m in masks.values()) / sum(m.numel() for m in masks.values())


def test_dcgan_transposed_convs_get_blocks_of_output_channels(data, tmp_path):
    # dcgan's G is made of transposed convs (weights stored in x out x k x k): a 4x1 block is four
    # output channels at one input channel and tap, the rows the runtime's blocked kernel shares.
    from sparsegan.sparsity import output_axes

    seen = []
    cfg = build_config({"data_root": str(data), "model": "dcgan", "model_width": 8, "batch_size": 8,
                        "method": "stu", "sparsity_g": 0.75, "sparsity_d": 0.5, "steps": 4, "update_interval": 2,
                        "mask_block": "4x1", "checkpoint_every": 100, "sample_every": 100,
                        "out": str(tmp_path / "r")})
    train(cfg, progress=False, on_step=lambda t: seen.append(
        (output_axes(t.G), {n: m.clone() for n, m in t.method.masks["G"].masks.items()})))
    axes, _ = seen[0]
    assert axes and all(a == 1 for a in axes.values())  # the transposed convs
    for axes, masks in seen:
        for n, m in masks.items():
            view = (m.transpose(0, 1) if axes.get(n) == 1 else m).reshape(m.shape[axes.get(n, 0)], -1)
            rows = view.shape[0] - view.shape[0] % 4
            assert all(torch.equal(view[r], view[r - r % 4]) for r in range(rows)), n
    assert any(not torch.equal(seen[0][1][n], seen[-1][1][n]) for n in seen[0][1])  # STU-GAN moved blocks
    assert abs(_density(seen[-1][1]) - 0.25) < 0.03


@pytest.mark.parametrize("method", ["snip", "grasp", "early_bird"])
def test_pruning_at_init_and_early_bird_draw_block_masks(data, tmp_path, method):
    base = ["train", "--data-root", str(data), "--model", "mlp", "--model-width", "16", "--batch-size", "16",
            "--no-progress", "--sparsity-g", "0.75", "--mask-block", "1x4", "--steps", "6"]
    extra = ["--eb-interval", "1", "--eb-window", "2", "--eb-threshold", "1.0"] if method == "early_bird" else []
    assert main([*base, "--method", method, *extra, "--out", str(tmp_path / method)]) == 0
    masks = _g_masks(tmp_path / method / "final")
    assert all(Blocks(1, 4).is_blocked(m) for m in masks.values())
    assert abs(_density(masks) - 0.25) < 0.02


def test_snip_block_masks_keep_the_blocks_of_largest_summed_saliency(data, tmp_path):
    # The block top-k by hand (SNIP's and GraSP's global ranking in blocks): score each 1x4 block by
    # the sum of its entries' scores and keep the best blocks over the net.
    from sparsegan.sparsity import MaskSet, magnitude_prune_to

    scores = {"a": torch.tensor([[1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 5.0]]),
              "b": torch.tensor([[0.5, 0.5, 0.5, 0.5, 2.0, 0.0, 0.0, 0.0]])}
    params = {n: torch.nn.Parameter(torch.ones_like(s)) for n, s in scores.items()}
    masks = MaskSet.dense(params, blocks=Blocks(1, 4))
    magnitude_prune_to(masks, 8, scores=scores)  # 2 blocks of 4: sums a 4, 5; b 2, 2 -> a's two
    assert masks.masks["a"].all() and not masks.masks["b"].any()


def test_imp_rounds_and_random_control_in_blocks(data, tmp_path):
    base = ["train", "--data-root", str(data), "--model", "mlp", "--model-width", "16", "--batch-size", "16",
            "--no-progress", "--method", "imp", "--sparsity-g", "0.36", "--steps", "2", "--mask-block", "1x4"]
    imp = tmp_path / "imp"
    assert main([*base, "--out", str(imp)]) == 0
    assert main([*base, "--imp-control", "random", "--tickets-from", str(imp), "--out", str(tmp_path / "rnd")]) == 0
    for k, density in ((1, 0.8), (2, 0.64)):
        ticket = _g_masks(imp / "tickets" / f"round-{k:02d}" / "final")
        control = _g_masks(tmp_path / "rnd" / "tickets" / f"round-{k:02d}" / "final")
        for masks in (ticket, control):
            assert all(Blocks(1, 4).is_blocked(m) for m in masks.values())
            assert abs(_density(masks) - density) < 0.02
        assert {n: int(m.sum()) for n, m in control.items()} == {n: int(m.sum()) for n, m in ticket.items()}
        assert any(not torch.equal(control[n], ticket[n]) for n in ticket)
    # a control of another granularity is refused in one line
    assert main([*base[:-2], "--imp-control", "random", "--tickets-from", str(imp),
                 "--out", str(tmp_path / "bad")]) != 0


def test_export_header_carries_the_granularity(data, tmp_path):
    from sparsegan.inference.export import Export, export_run

    assert main(["train", "--data-root", str(data), "--model", "mlp", "--model-width", "16", "--batch-size", "16",
                 "--no-progress", "--method", "static", "--sparsity-g", "0.75", "--mask-block", "4x1",
                 "--steps", "1", "--out", str(tmp_path / "r")]) == 0
    path, header = export_run(tmp_path / "r")
    assert header["mask_block"] == "4x1" and Export.read(path).header["mask_block"] == "4x1"


@pytest.mark.parametrize("variant", ["relaxed", "strict"])
def test_adapt_ranks_blocks_over_the_net_and_moves_d_in_blocks(data, tmp_path, variant):
    # ADAPT's global prune-and-regrow of G and D's growth (relaxed) or D's regrowth at its cap
    # (strict), all in 1x4 blocks: the balance thresholds far below any ratio ask for a stronger D.
    seen = []
    cfg = build_config({"data_root": str(data), "model": "mlp", "model_width": 16, "batch_size": 16,
                        "method": "adapt", "adapt_variant": variant, "sparsity_g": 0.75, "sparsity_d": 0.5,
                        "steps": 12, "update_interval": 4, "adapt_interval": 4, "balance_every": 2,
                        "adapt_low": -1e30, "adapt_high": -1e29, "mask_block": "1x4",
                        "checkpoint_every": 100, "sample_every": 100, "out": str(tmp_path / "r")})
    train(cfg, progress=False, on_step=lambda t: seen.append(
        {net: {n: m.clone() for n, m in t.method.masks[net].masks.items()} for net in ("G", "D")}))
    for masks in seen:
        assert all(Blocks(1, 4).is_blocked(m) for net in masks.values() for m in net.values())
    g0, g1 = seen[0]["G"], seen[-1]["G"]
    assert any(not torch.equal(g0[n], g1[n]) for n in g0)  # G explored, in blocks
    assert abs(_density(g1) - 0.25) < 0.01  # the net's count is kept (to whole blocks)
    d0, d1 = _density(seen[0]["D"]), _density(seen[-1]["D"])
    if variant == "relaxed":
        assert d1 > d0 + 0.05  # D grew past half, in blocks
    else:
        assert abs(d1 - d0) < 0.01 and any(not torch.equal(seen[0]["D"][n], seen[-1]["D"][n]) for n in seen[0]["D"])


def test_global_block_prune_and_regrow_by_hand():
    # Two 1x4-block layers ranked together: 4 active blocks, fraction 0.5 -> the 2 weakest active
    # blocks over both layers go, the 2 inactive blocks of largest summed gradient come in.
    from sparsegan.sparsity import MaskSet, prune_and_regrow

    a = torch.nn.Parameter(torch.tensor([[1.0, 1.0, 1.0, 1.0, 0.1, 0.1, 0.1, 0.1, 0.0, 0.0, 0.0, 0.0]]))
    b = torch.nn.Parameter(torch.tensor([[2.0, 2.0, 2.0, 2.0, 0.2, 0.2, 0.2, 0.2, 0.0, 0.0, 0.0, 0.0]]))
    on = torch.tensor([[True] * 8 + [False] * 4])
    masks = MaskSet({"a": a, "b": b}, {"a": on.clone(), "b": on.clone()}, blocks=Blocks(1, 4))
    grads = {"a": torch.tensor([[0.0] * 8 + [5.0] * 4]), "b": torch.tensor([[9.0] * 4 + [0.0] * 4 + [1.0] * 4])}
    prune_and_regrow(masks, 0.5, ranking="global", dense_grads=grads)
    assert masks.masks["a"].tolist() == [[True] * 4 + [False] * 4 + [True] * 4]  # 0.1-block out, grown block in
    assert masks.masks["b"].tolist() == [[True] * 4 + [False] * 4 + [True] * 4]
    assert float(a.detach()[0, 8:].abs().sum()) == 0.0 and masks.active() == 16


@pytest.mark.parametrize("block", ["4x1", "8x1"])
def test_the_study_dcgan_in_blocks_keeps_its_densities_through_the_cli(data, tmp_path, block):
    # The study's DCGAN (width 16) at s_G 95 / s_D 70 %: G's output layer (one output channel) and
    # D's last layer keep their unstructured counts, so the nets' densities are the targets (G was
    # 0.0489 at 4x1 when edge blocks counted as full ones), before and after an update.
    out = tmp_path / block
    assert main(["train", "--data-root", str(data), "--model", "dcgan", "--model-width", "16", "--batch-size", "8",
                 "--method", "stu", "--sparsity-g", "0.95", "--sparsity-d", "0.7", "--mask-block", block,
                 "--steps", "3", "--update-interval", "2", "--checkpoint-every", "100", "--sample-every", "100",
                 "--out", str(out), "--no-progress"]) == 0
    density = json.loads((out / "summary.json").read_text())["density"]
    assert abs(density["G"] - 0.05) < 2e-4 and abs(density["D"] - 0.3) < 2e-4, density
    topology = [r for r in read_records(out, "topology") if r["net"] == "G"]
    assert topology and topology[0]["grown"] > 0 and abs(topology[0]["density"] - density["G"]) < 1e-12


def test_adapt_without_a_balance_ratio_between_decisions_is_refused_in_one_line(data, tmp_path, capsys):
    assert main(["train", "--data-root", str(data), "--model", "mlp", "--method", "adapt", "--steps", "4",
                 "--adapt-interval", "20", "--balance-every", "30", "--out", str(tmp_path / "r"),
                 "--no-progress"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--balance-every 30 is longer than --adapt-interval 20" in err[0]
    assert not (tmp_path / "r").exists()
