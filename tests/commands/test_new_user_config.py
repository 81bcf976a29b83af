"""What a new user hits first, through the real entry point: a dynamic method whose schedule holds no
topology update (refused, with the fix; short runs explore by default), a resume with fewer --steps
than a schedule spans, and YAML recipes (YAML 1.1 numbers, syntax errors, keys spelled like flags)."""

import json
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from idx_files import write_fake_mnist
from run_checks import one_error_line
from sparsegan import SparseTraining
from sparsegan.cli import main
from sparsegan.config import build_config, load_yaml
from sparsegan.errors import UserError
from sparsegan.launch import train
from sparsegan.training import read_records

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
TINY_FLAGS = ["--model", "mlp", "--model-width", "8", "--batch-size", "8", "--sparsity-g", "0.8",
              "--log-every", "100", "--sample-every", "100", "--checkpoint-every", "100"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_fake_mnist(tmp_path_factory.mktemp("data"), n_train=64, n_test=8)


def _snapshot(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


# --- no topology update in the schedule: refused ------------------------------------------------
NO_UPDATE = [
    (["--method", "stu", "--steps", "4", "--update-interval", "4"],
     "--method stu: --update-interval 4 with --steps 4 leaves no topology update", "pass --update-interval below"),
    (["--method", "stu", "--steps", "6", "--update-interval", "3", "--update-end", "2"],
     "--update-end 2 comes before the first topology update (--update-interval 3)", "raise --update-end to 3"),
    (["--method", "stu", "--steps", "1"], "--method stu --steps 1 leaves no G step for a topology update",
     "--steps 2 or more"),
    (["--method", "adapt", "--steps", "6", "--update-interval", "2", "--adapt-interval", "6", "--balance-every", "2"],
     "--adapt-interval 6 with --steps 6 leaves no decision on D's density", "pass --adapt-interval below --steps"),
]


@pytest.mark.parametrize("args, what, fix", NO_UPDATE, ids=["interval", "update-end", "one-step", "adapt"])
def test_a_schedule_without_update_is_refused_before_anything_is_written(tiny_run, data, tmp_path, capsys, args,
                                                                         what, fix):
    assert tiny_run(tmp_path / "r", *args, data=data) == 2
    line = one_error_line(capsys)
    assert line.startswith("sparsegan: error: ") and what in line and fix in line, line
    assert not (tmp_path / "r").exists()
    # --dry-run says it too, instead of printing a config that would train static
    assert main(["train", "--data-root", str(data), *TINY_FLAGS, *args, "--dry-run"]) == 2
    assert what in one_error_line(capsys)


def test_a_shortened_recipe_is_refused(capsys):
    # The CycleGAN recipe (Delta T 250) cut to 200 steps would explore nothing.
    recipe = CONFIGS / "cyclegan-fmnist-sneaker-boot.yaml"
    assert main(["train", "--config", str(recipe), "--steps", "200", "--dry-run"]) == 2
    assert "--update-interval 250 with --steps 200 leaves no topology update" in one_error_line(capsys)


def test_a_short_stu_run_explores_by_default_and_records_its_interval(tiny_run, data, tmp_path):
    run = tmp_path / "r"
    assert tiny_run(run, "--method", "stu", "--steps", "20", data=data) == 0
    topo = [r for r in read_records(run, "topology") if r["net"] == "G"]
    assert [r["step"] for r in topo] == list(range(2, 20, 2))  # a tenth of the run
    assert all(r["pruned"] > 0 and r["pruned"] == r["grown"] for r in topo)
    assert json.loads((run / "config.json").read_text())["update_interval"] == 2
    # A resume without --update-interval keeps the recorded one, though the default of --steps 40 differs.
    assert tiny_run(run, "--method", "stu", "--steps", "40", "--resume", "auto", data=data) == 0
    topo = [r for r in read_records(run, "topology") if r["net"] == "G"]
    assert [r["step"] for r in topo] == [s for s in range(2, 40, 2) if s != 20]  # 20 was the first segment's end
    assert json.loads((run / "config.json").read_text())["update_interval"] == 2


def test_default_interval_leaves_given_values_long_runs_and_recipes_as_they_were():
    assert build_config({"method": "stu", "steps": 400}).update_interval == 40
    assert build_config({"method": "stu", "steps": 50000}).update_interval == 1000  # the papers' Delta T
    assert build_config({"method": "stu", "steps": 400, "update_interval": 100}).update_interval == 100
    assert build_config({"method": "static", "steps": 400}).update_interval == 1000  # records' cadence, as before
    assert build_config(load_yaml(CONFIGS / "demo.yaml")).update_interval == 250


def test_sweep_dry_run_refuses_a_point_without_update(data, tmp_path, capsys):
    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump({
        "name": "t", "out": str(tmp_path / "sweep"),
        "base": {"data_root": str(data), "model": "mlp", "model_width": 8, "batch_size": 8, "steps": 4,
                 "update_interval": 10},
        "grid": {"method": ["static", "stu"]},
    }))
    assert main(["sweep", str(grid), "--dry-run"]) == 2
    line = one_error_line(capsys)
    assert "point {'method': 'stu'}" in line and "--update-interval 10 with --steps 4 leaves no topology update" in line
    assert not (tmp_path / "sweep").exists()


def test_api_refuses_steps_without_update_and_defaults_to_a_tenth():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    weights = [p.detach().clone() for p in net.parameters()]
    opt = torch.optim.Adam(net.parameters())
    with pytest.raises(UserError, match="--update-interval 10 with --steps 10 leaves no topology update"):
        SparseTraining({"net": net}, {"net": opt}, "stu", sparsity={"net": 0.5}, steps=10, update_interval=10)
    assert all(torch.equal(w, p) for w, p in zip(weights, net.parameters()))  # nothing was touched
    sparse = SparseTraining({"net": net}, {"net": opt}, "stu", sparsity={"net": 0.5}, steps=100)
    assert sparse.method.schedule.interval == 10 and sparse.method.schedule.update_steps() == list(range(10, 100, 10))


# --- resume with fewer --steps --------------------------------------------------------------------
def _interrupted(data, out: Path, method: str) -> None:
    """A run of 8 steps (checkpoints every 2) stopped after step 4."""
    cfg = build_config({"data_root": str(data), "model": "mlp", "model_width": 8, "batch_size": 8, "method": method,
                        "sparsity_g": 0.8, "steps": 8, "update_interval": 2, "checkpoint_every": 2,
                        "keep_checkpoints": 8, "out": str(out)})

    def stop(t):
        if t.step == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg, progress=False, on_step=stop)


def _resume(data, out: Path, method: str, steps: int) -> int:
    return main(["train", "--data-root", str(data), *TINY_FLAGS, "--method", method, "--steps", str(steps),
                 "--update-interval", "2", "--checkpoint-every", "2", "--keep-checkpoints", "8", "--out", str(out),
                 "--resume", "auto", "--no-progress"])


@pytest.mark.parametrize("steps", [6, 4])
def test_resume_with_fewer_steps_is_refused_where_the_schedule_spans_them(data, tmp_path, capsys, steps):
    run = tmp_path / "r"
    _interrupted(data, run, "stu")
    before = _snapshot(run)
    capsys.readouterr()
    assert _resume(data, run, "stu", steps) == 2
    line = one_error_line(capsys)
    assert f"cannot resume {run} with --steps {steps}, fewer than the 8 it was started with" in line
    assert "the prune fraction decays (cosine) over --steps" in line and "resume with --steps 8 or more" in line
    assert _snapshot(run) == before
    assert _resume(data, run, "stu", 8) == 0  # its own length resumes


def test_resume_with_fewer_steps_is_allowed_for_fixed_masks(data, tmp_path, capsys):
    # Static training's schedule does not depend on --steps: the shorter run is the first steps of the longer.
    run = tmp_path / "r"
    _interrupted(data, run, "static")
    assert _resume(data, run, "static", 6) == 0
    assert f"resuming {run} from step 4" in capsys.readouterr().err
    assert json.loads((run / "summary.json").read_text())["step"] == 6


# --- YAML recipes -----------------------------------------------------------------------------------
def _dry_run(recipe: Path, data) -> int:
    return main(["train", "--config", str(recipe), "--data-root", str(data), "--dry-run"])


def test_yaml_numbers_without_a_dot_are_numbers(data, tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model: mlp\nlr_g: 2e-4\nlr_d: 1E-3\nsteps: 2e3\nupdate_interval: 1e2\n")
    assert _dry_run(recipe, data) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert (cfg["lr_g"], cfg["lr_d"], cfg["steps"], cfg["update_interval"]) == (2e-4, 1e-3, 2000, 100)
    assert isinstance(cfg["steps"], int)
    # Only a number field takes one, and only a number spelled as one.
    recipe.write_text("lr_g: 2e-4x\n")
    assert _dry_run(recipe, data) == 2
    assert "config key 'lr_g' must be float, got str '2e-4x'" in one_error_line(capsys)
    recipe.write_text("steps: 2.5e1\n")
    assert _dry_run(recipe, data) == 0 and json.loads(capsys.readouterr().out)["steps"] == 25
    recipe.write_text("steps: 2.5\n")
    assert _dry_run(recipe, data) == 2
    assert "config key 'steps' must be int" in one_error_line(capsys)
    recipe.write_text("dataset: 1e3\n")
    assert _dry_run(recipe, data) == 2
    assert "unknown dataset '1e3'" in one_error_line(capsys)


def test_yaml_syntax_error_names_the_file_and_line(data, tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model: mlp\nsteps: 20\n  lr_g: 0.001\n")
    assert _dry_run(recipe, data) == 2
    line = one_error_line(capsys)
    assert line.startswith(f"sparsegan: error: config file {recipe}, line 3: not valid YAML"), line
    # a recipe's base is named as itself
    base = tmp_path / "base.yaml"
    base.write_text("model: mlp\nmethod: [stu\n")
    recipe.write_text("extends: base.yaml\nsteps: 20\n")
    assert _dry_run(recipe, data) == 2
    assert f"config file {base}, line 3: not valid YAML" in one_error_line(capsys)


@pytest.mark.parametrize("key, hint", [
    ("update-interval", "config keys are written with underscores where flags have dashes ('update_interval')"),
    ("--sparsity-g", "config keys are written with underscores where flags have dashes ('sparsity_g')"),
    ("from", "--from's config key is 'from_run'"),
    ("updte_interval", "did you mean 'update_interval'?"),
    ("sparsity_gg", "did you mean 'sparsity_g'?"),
])
def test_a_key_spelled_like_a_flag_or_misspelt_gets_a_hint(data, tmp_path, capsys, key, hint):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({key: 0.5}))
    assert _dry_run(recipe, data) == 2
    line = one_error_line(capsys)
    sep = "; " if hint.startswith("did") else ": "
    assert line == f"sparsegan: error: unknown config key {key!r}{sep}{hint}", line


def test_sweep_files_get_the_same_yaml_treatment(data, tmp_path, capsys):
    grid = tmp_path / "grid.yaml"
    grid.write_text(f"out: {tmp_path / 'sweep'}\nbase:\n  data_root: {data}\n  model: mlp\n  lr_g: 2e-4\n"
                    "  steps: 4\ngrid:\n  method: [static]\n")
    assert main(["sweep", str(grid), "--dry-run"]) == 0
    capsys.readouterr()
    grid.write_text("base:\n  steps: 4\n grid: 1\n")
    assert main(["sweep", str(grid), "--dry-run"]) == 2
    assert f"sweep file {grid}, line 3: not valid YAML" in one_error_line(capsys)
    grid.write_text("base:\n  update-interval: 4\ngrid:\n  method: [static]\n")
    assert main(["sweep", str(grid), "--dry-run"]) == 2
    assert "unknown config key 'update-interval': config keys are written with underscores" in one_error_line(capsys)
