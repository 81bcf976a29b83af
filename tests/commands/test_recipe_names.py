"""Recipes by name, as after a pip install (no checkout around): ``train --config demo`` and
``sweep demo`` read the packaged recipe; a file that exists wins; an unknown name is one line
with the closest names; ``sparsegan recipes`` lists them; the packaged set is configs/ itself."""

import json
import re
from pathlib import Path

import pytest

from idx_files import write_fake_mnist
from run_checks import one_error_line
from sparsegan.cli import main
from sparsegan.config import load_yaml
from sparsegan.recipes import recipes_dir, resolve

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    """A working directory without configs/; the data of the demo recipe (Fashion-MNIST's layout)."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return write_fake_mnist(tmp_path / "data", n_train=64, n_test=8)


def _dry_run(capsys, config, data) -> dict:
    assert main(["train", "--config", config, "--data-root", str(data), "--dry-run"]) == 0
    return json.loads(capsys.readouterr().out)


def test_train_config_by_name_is_the_recipe_file(elsewhere, capsys):
    by_path = _dry_run(capsys, str(CONFIGS / "demo.yaml"), elsewhere)
    assert _dry_run(capsys, "demo", elsewhere) == by_path
    assert _dry_run(capsys, "demo.yaml", elsewhere) == by_path
    # A recipe that extends its family's base: read next to the packaged recipe, as in the checkout.
    extended = load_yaml(resolve("sngan-cifar10-stu-g80-d50", "train"))
    assert extended == load_yaml(CONFIGS / "sngan-cifar10-stu-g80-d50.yaml") and extended["n_dis"] == 5


def test_a_file_that_exists_wins_over_a_name(elsewhere, capsys):
    Path("demo").write_text("steps: 7\n")
    assert _dry_run(capsys, "demo", elsewhere)["steps"] == 7


def test_unknown_name_is_one_line_with_the_closest(elsewhere, capsys):
    assert main(["train", "--config", "dmeo", "--dry-run"]) == 2
    line = one_error_line(capsys)
    assert "dmeo not found" in line and "close: demo" in line and "sparsegan recipes" in line
    # The checkout's path, missing here: the recipe's name is said, no other file is read silently.
    assert main(["train", "--config", "configs/demo.yaml", "--dry-run"]) == 2
    assert one_error_line(capsys).endswith("the packaged recipe of that name: sparsegan train --config demo")
    assert main(["sweep", "study-fmnist-cor", "--dry-run"]) == 2
    assert "close: study-fmnist-core" in one_error_line(capsys)


def test_sweep_by_name(elsewhere, capsys, tmp_path):
    assert main(["sweep", "demo", "--out", str(tmp_path / "runs"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "stu_seed0" in out and "3 points" in out


def test_recipes_lists_every_recipe(capsys):
    assert main(["recipes"]) == 0
    out = capsys.readouterr().out
    listed = {ln.split()[0] for ln in out.splitlines() if ln.startswith("  ")}
    assert listed == {p.stem for p in CONFIGS.glob("*.yaml")} | {p.stem for p in CONFIGS.glob("sweeps/*.yaml")}
    assert re.search(r"^  demo +The README's main job", out, re.M)  # with the recipe's first comment line
    assert main(["recipes", "sweep"]) == 0
    out = capsys.readouterr().out
    assert "sparsegan sweep NAME" in out and "sparsegan train --config NAME" not in out


def test_packaged_recipes_are_configs_itself():
    """The package's recipes are the checkout's configs/ (a link, never a copy that could drift), and
    the wheel's package data takes every YAML file under it."""
    tomllib = pytest.importorskip("tomllib")
    assert recipes_dir().resolve() == CONFIGS.resolve()
    in_configs = {str(p.relative_to(CONFIGS)) for p in CONFIGS.rglob("*.yaml")}
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["sparsegan"]
    package = ROOT / "src" / "sparsegan"
    shipped = {str(p.relative_to(package / "configs")) for pattern in patterns if pattern.startswith("configs/")
               for p in package.glob(pattern)}
    assert shipped == in_configs and {"demo.yaml", "sweeps/demo.yaml", "base/sngan-cifar10.yaml"} <= shipped
