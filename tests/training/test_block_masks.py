"""--mask-block through train(): static and STU-GAN masks made of blocks from the first step to the last,
with topology updates in block units; methods that rank globally refuse it in one line."""

import pytest
import torch

from idx_files import write_fake_mnist
from sparsegan.cli import main
from sparsegan.config import build_config
from sparsegan.errors import UserError
from sparsegan.sparsity.blocks import Blocks
from sparsegan.training import train


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


def test_block_masks_refused_where_ranking_is_global(data, tmp_path, capsys):
    assert main(["train", "--data-root", str(data), "--model", "mlp", "--method", "adapt", "--mask-block", "1x4",
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
