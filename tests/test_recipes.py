"""Every YAML recipe in configs/ parses into a TrainConfig and its models build (meta device);
sweep grids' base configs parse too."""

from pathlib import Path

import pytest
import torch
import yaml

from sparsegan.config import build_config, inapplicable, load_yaml
from sparsegan.models import ModelSpec, build_models, model_nets

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
RECIPES = sorted(CONFIGS.glob("*.yaml"))
SWEEPS = sorted(CONFIGS.glob("sweeps/*.yaml"))
# What the data would tell the models (the datasets themselves are not needed to build them).
DATA = {"cifar10": (3, 10), "image-folder": (3, 1000), "fashion-mnist": (1, 10), "mnist": (1, 10),
        "unpaired": (3, 0)}


def _build(cfg):
    channels, classes = DATA[cfg.dataset]
    resolution = None
    if cfg.dataset == "unpaired":  # translation models are built at the data's size
        channels, resolution = (1, 28) if "fashion" in str(cfg.data_root) else (3, 256)
    spec = ModelSpec(channels=channels, num_classes=classes, z_dim=cfg.z_dim, width=cfg.model_width,
                     width_multiplier=cfg.width_multiplier, resolution=resolution)
    with torch.device("meta"):
        return build_models(cfg.model, spec)


def test_there_are_recipes_for_the_papers():
    names = {p.stem for p in RECIPES}
    for model in ("sngan", "biggan"):
        assert f"{model}-cifar10-dense" in names
        for method in ("static", "stu"):
            for sg in (95, 90, 80):
                for sd in (50, 70):
                    assert f"{model}-cifar10-{method}-g{sg}-d{sd}" in names
                    assert method == "static" or f"{model}-cifar10-stu-g{sg}-d{sd}-5x" in names
    assert {"biggan-imagenet128-stu-g95-d50", "biggan-imagenet128-small-dense"} <= names


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_recipe_parses_and_builds(path):
    cfg = build_config(load_yaml(path))
    g, d = _build(cfg)
    assert sum(p.numel() for p in g.parameters()) > 0
    assert (d is None) == (model_nets(cfg.model) == ("G",))  # a diffusion model has no D
    assert d is None or sum(p.numel() for p in d.parameters()) > 0
    if path.stem.startswith(("sngan-cifar10", "biggan-cifar10")):
        assert cfg.dataset == "cifar10" and cfg.beta1 == 0.0
    if path.stem.endswith("-5x"):
        base = build_config(load_yaml(path.with_name(path.stem[:-3] + ".yaml")))
        assert cfg.steps == 5 * base.steps


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_recipe_sets_no_option_without_effect(path):
    """A recipe runs without --allow-ignored: every key it sets has an effect for its method."""
    values = load_yaml(path)
    assert inapplicable(build_config(values), values) == {}


def test_paper_hyperparameters():
    sngan = build_config(load_yaml(CONFIGS / "sngan-cifar10-stu-g90-d70.yaml"))
    assert (sngan.batch_size, sngan.g_batch_size, sngan.n_dis, sngan.steps) == (64, 128, 5, 50000)
    assert (sngan.beta1, sngan.beta2, sngan.ema_beta, sngan.update_interval) == (0.0, 0.9, 0.999, 1000)
    assert (sngan.sparsity_g, sngan.sparsity_d, sngan.prune_fraction) == (0.9, 0.7, 0.5)
    big = build_config(load_yaml(CONFIGS / "biggan-cifar10-stu-g80-d70.yaml"))
    assert (big.batch_size, big.n_dis, big.beta2, big.ema_beta, big.ema_start) == (50, 4, 0.999, 0.9999, 1000)
    assert big.update_interval == 500
    img = build_config(load_yaml(CONFIGS / "biggan-imagenet128-stu-g95-d50.yaml"))
    assert (img.model, img.z_dim, img.sparsity_d, img.adam_eps) == ("biggan128", 120, 0.5, 1e-6)
    assert (img.batch_size, img.grad_accum) == (2048, 8)  # BigGAN-PyTorch: 8 accumulations of 256
    g, d = _build(img)
    assert sum(p.numel() for p in g.parameters()) == 70_433_988


def test_cyclegan_recipe_is_the_reference():
    cfg = build_config(load_yaml(CONFIGS / "cyclegan-horse2zebra-imp-g80.yaml"))
    assert (cfg.batch_size, cfg.lr_g, cfg.beta1, cfg.lambda_cycle, cfg.lambda_identity) == (1, 2e-4, 0.5, 10.0, 0.5)
    assert (cfg.pool_size, cfg.load_size, cfg.steps, cfg.lr_decay_start) == (50, 286, 200 * 1067, 0.5)
    g, d = _build(cfg)  # both generators (9 blocks at 256 px) and both 70x70 PatchGANs
    assert sum(p.numel() for p in g.parameters()) == 2 * 11_378_179
    assert sum(p.numel() for p in d.parameters()) == 2 * 2_764_737


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.name)
def test_sweep_base_parses(path):
    raw = yaml.safe_load(path.read_text())
    if not isinstance(raw, dict) or "grid" not in raw:  # a plain recipe kept under sweeps/
        cfg = build_config(load_yaml(path))
    else:
        cfg = build_config(raw.get("base") or {})
    _build(cfg)


def test_recipes_extend_their_family_base(tmp_path):
    # Each paper recipe extends its family's base (configs/base/); the recipes of a method with
    # siblings (the Table 1 grid) extend that method's base and state only what differs.
    for path in RECIPES:
        if path.stem.startswith(("sngan-", "biggan-")):
            raw = yaml.safe_load(path.read_text())
            family = "-".join(path.stem.split("-")[:2])
            assert raw["extends"] in (f"base/{family}.yaml", f"base/{family}-{raw.get('method', '')}.yaml") or \
                raw["extends"].startswith(f"base/{family}-"), path.name
            if raw["extends"] != f"base/{family}.yaml":
                assert len(raw) <= 7, path.name
    # extends: the base's keys first, the recipe's over them; a loop is refused in one line.
    (tmp_path / "a.yaml").write_text("steps: 10\nlr_g: 0.001\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\nsteps: 20\n")
    assert load_yaml(tmp_path / "b.yaml") == {"steps": 20, "lr_g": 0.001}
    (tmp_path / "c.yaml").write_text("extends: d.yaml\n")
    (tmp_path / "d.yaml").write_text("extends: c.yaml\n")
    from sparsegan.errors import UserError

    with pytest.raises(UserError, match="which extends it back"):
        load_yaml(tmp_path / "c.yaml")
