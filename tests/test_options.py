"""Options given without effect for the chosen method: refused in one line before anything is
written, or recorded as ignored with --allow-ignored (what sweeps pass); pf --from checks the dataset."""

import json

import pytest
import yaml

from idx_files import write_fake_mnist
from run_checks import one_error_line
from sparsegan.cli import main
from sparsegan.config import build_config, inapplicable

TINY_FLAGS = ["--model", "mlp", "--model-width", "8", "--batch-size", "8", "--steps", "2"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_fake_mnist(tmp_path_factory.mktemp("data"), n_train=64, n_test=8)


def test_imp_sparsity_d_without_prune_nets_gd_is_refused(tiny_run, data, tmp_path, capsys):
    out = tmp_path / "imp"
    assert tiny_run(out, "--method", "imp", "--sparsity-g", "0.2", "--sparsity-d", "0.5", data=data) == 2
    line = one_error_line(capsys)
    assert "--sparsity-d 0.5" in line and "--prune-nets GD" in line
    assert not out.exists()
    # A D sparsity of 0 says what happens anyway: accepted.
    assert main(["train", "--method", "imp", "--sparsity-d", "0", "--data-root", str(data), "--dry-run"]) == 0


@pytest.mark.parametrize("method, args, flag", [
    ("stu", ["--eb-interval", "3"], "--eb-interval 3"),
    ("static", ["--rewind-step", "1"], "--rewind-step 1"),
    ("pf", ["--imp-rate", "0.3"], "--imp-rate 0.3"),
    ("dense", ["--explore", "D"], "--explore D"),
    ("stu", ["--masks-with-weights"], "--masks-with-weights"),
    ("imp", ["--sparsity-g", "0.2", "--tickets-from", "x"], "--tickets-from x"),
    ("stu", ["--kl-weight", "2"], "--kl-weight 2.0"),
])
def test_option_of_another_method_is_refused(tiny_run, data, tmp_path, capsys, method, args, flag):
    assert tiny_run(tmp_path / "r", "--method", method, *args, data=data) == 2
    assert one_error_line(capsys).startswith(f"sparsegan: error: {flag} has no effect")
    assert not (tmp_path / "r").exists()


def test_yaml_keys_are_checked_too(tiny_run, data, tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"method": "stu", "gmp_start": 0.2}))
    assert tiny_run(tmp_path / "r", "--config", str(recipe), data=data) == 2
    assert "--gmp-start 0.2 has no effect with --method stu" in one_error_line(capsys)


def test_allow_ignored_records_them_and_dry_run_shows_them(tiny_run, data, tmp_path, capsys):
    args = ["--method", "stu", "--eb-interval", "3", "--gmp-start", "0.2", "--allow-ignored"]
    assert main(["train", *args, "--data-root", str(data), "--dry-run"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["ignored"] == ["gmp_start", "eb_interval"]
    assert "ignored: --eb-interval has no effect with --method stu" in err
    assert tiny_run(tmp_path / "r", *args, data=data) == 0
    assert json.loads((tmp_path / "r" / "config.json").read_text())["ignored"] == ["gmp_start", "eb_interval"]


def test_sweep_records_keys_its_base_gives_points_they_do_not_apply_to(data, tmp_path):
    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump({
        "name": "t", "out": str(tmp_path / "sweep"),
        "base": {"data_root": str(data), "model": "mlp", "model_width": 8, "batch_size": 8, "steps": 2,
                 "sparsity_g": 0.5, "sparsity_d": 0.5},
        "grid": [{"method": ["dense"], "seed": [0]},
                 {"method": ["pf"], "from_run": ["{out}/dense_seed{seed}"], "prune_nets": ["G"], "seed": [0]}],
    }))
    assert main(["sweep", str(grid), "--no-progress"]) == 0
    pf = json.loads((tmp_path / "sweep" / "pf_prune_nets=G_seed0" / "config.json").read_text())
    assert pf["ignored"] == ["sparsity_d"]
    summary = json.loads((tmp_path / "sweep" / "pf_prune_nets=G_seed0" / "summary.json").read_text())
    assert summary["density"]["D"] == 1.0


def test_pf_refuses_a_source_trained_on_another_dataset(tiny_run, data, tmp_path, capsys):
    assert tiny_run(tmp_path / "dense", "--method", "dense", "--dataset", "mnist", data=data) == 0
    out = tmp_path / "pf"
    assert tiny_run(out, "--method", "pf", "--from", str(tmp_path / "dense"), "--sparsity-g", "0.5",
                    "--dataset", "fashion-mnist", data=data) == 2
    assert "dataset='mnist'" in one_error_line(capsys)
    assert not out.exists()


def test_inapplicable_is_empty_for_what_the_method_uses():
    values = {"method": "imp", "prune_nets": "GD", "sparsity_d": 0.5, "rewind_step": 2, "imp_d": "init"}
    assert inapplicable(build_config(values), values) == {}
    values = {"method": "dense", "sparsity_g": 0.9}  # dense records its sparsity flags, never refuses them
    assert inapplicable(build_config(values), values) == {}


def test_evaluation_options_without_eval_every_are_refused(data, tmp_path, capsys):
    from sparsegan.cli import main

    rc = main(["train", "--model", "mlp", "--method", "stu", "--eval-num-samples", "500", "--steps", "4",
               "--out", str(tmp_path / "r"), "--dry-run"])
    err = capsys.readouterr().err
    assert rc == 2 and "--eval-num-samples 500 has no effect without --eval-every" in err
    rc = main(["train", "--model", "mlp", "--method", "stu", "--eval-from", "1000", "--steps", "4",
               "--out", str(tmp_path / "r"), "--dry-run"])
    assert rc == 2 and "--eval-from 1000 has no effect without --eval-every" in capsys.readouterr().err
    assert main(["train", "--model", "mlp", "--method", "stu", "--eval-every", "2", "--eval-num-samples", "500",
                 "--steps", "4", "--out", str(tmp_path / "r"), "--data-root", str(data), "--dry-run"]) == 0


def test_every_option_is_defined_once_in_a_group_and_methods_own_theirs():
    from dataclasses import fields

    from sparsegan.config import GROUPS, METHOD_GROUPS, TrainConfig, applies_to
    from sparsegan.methods import METHODS
    from sparsegan.methods.gmp import GMPOptions
    from sparsegan.options import group_fields

    defined = [n for g in GROUPS for n in group_fields(g)]
    assert sorted(defined) == sorted(f.name for f in fields(TrainConfig))  # each field in exactly one group
    assert len(defined) == len(set(defined))
    taken = {g for m in METHODS.names() for g in METHODS.get(m).options}
    assert taken == set(METHOD_GROUPS)  # no orphan group, no method group missing from the config
    # a method's own group lives in its module and applies to it alone
    assert GMPOptions.__module__ == "sparsegan.methods.gmp" and applies_to("gmp_prunes") == ("gmp",)
    assert applies_to("steps") is None and applies_to("prunable") is None
    assert applies_to("probe_batches") == ("adapt", "grasp", "snip", "stu")


def test_a_group_validates_its_own_fields_alone_and_in_the_config():
    from sparsegan.errors import UserError
    from sparsegan.methods.early_bird import EarlyBirdOptions

    assert EarlyBirdOptions(eb_window=3).eb_window == 3
    with pytest.raises(UserError, match="--eb-window must be at least 2"):
        EarlyBirdOptions(eb_window=1)
    with pytest.raises(UserError, match="--eb-window must be at least 2"):
        build_config({"method": "early_bird", "eb_window": 1})  # before any run folder exists
    with pytest.raises(UserError, match="--gmp-prunes must be a positive integer, got 0"):
        build_config({"gmp_prunes": 0})


def test_help_lists_options_under_their_groups(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    gmp = out.index("\ngradual magnitude pruning [methods: gmp]:\n")
    assert out.index("\n  --gmp-start") > gmp > out.index("\n  --method")
    assert "\nexploration [methods: adapt, stu]:\n  --prune-fraction" in out


def test_the_api_refuses_an_option_of_another_method():
    from sparsegan.errors import UserError
    from sparsegan.methods.build import build_method

    with pytest.raises(UserError, match="'gmp_start' is not an option of 'stu'"):
        build_method("stu", steps=10, sparsity={"G": 0.5}, gmp_start=0.2)
    with pytest.raises(UserError, match="'lr_g' is not an option of any method"):
        build_method("stu", steps=10, sparsity={"G": 0.5}, lr_g=0.1)
    assert build_method("gmp", steps=100, sparsity={"G": 0.5}, gmp_start=0.2).opts.gmp_start == 0.2
