"""A run says which code trained it: the commit of the sparsegan source (and whether its files
differed from it) in config.json and in each resume record, beside the torch thread count."""

import json
import re
import shutil
from pathlib import Path

import pytest

import sparsegan
from idx_files import write_fake_mnist
from sparsegan.cli import main
from sparsegan.training import read_records

IN_GIT = any((p / ".git").exists() for p in Path(sparsegan.__file__).resolve().parents)


@pytest.mark.skipif(not IN_GIT, reason="sparsegan runs from an installed copy, not a git checkout")
def test_config_and_resume_records_name_the_commit(tmp_path):
    data = write_fake_mnist(tmp_path / "data", n_train=64, n_test=8)
    run = tmp_path / "run"
    args = ["train", "--data-root", str(data), "--model", "mlp", "--model-width", "8", "--batch-size", "8",
            "--method", "static", "--steps", "4", "--checkpoint-every", "2", "--no-progress", "--out", str(run)]
    assert main(args) == 0
    env = json.loads((run / "config.json").read_text())["environment"]
    assert re.fullmatch(r"[0-9a-f]{40}", env["commit"]) and isinstance(env["modified"], bool)
    assert env["torch_threads"] >= 1
    shutil.rmtree(run / "final")
    (run / "summary.json").unlink()
    (run / "checkpoints" / "state-00000004.pt").unlink()
    assert main([*args, "--resume", "auto"]) == 0
    (resume,) = read_records(run, "resume")
    assert resume["commit"] == env["commit"] and resume["step"] == 2


def _edit_environment(run: Path, **changes) -> None:
    config = json.loads((run / "config.json").read_text())
    for key, value in changes.items():
        if value is None:
            config["environment"].pop(key, None)
        else:
            config["environment"][key] = value
    (run / "config.json").write_text(json.dumps(config))


def _resume_from(run: Path, args: list[str], step: int) -> dict:
    """Resume ``run`` from its checkpoint at ``step`` (the later ones and the result deleted, as a stop
    leaves them); config.json's environment after it."""
    shutil.rmtree(run / "final", ignore_errors=True)
    (run / "summary.json").unlink(missing_ok=True)
    for f in (run / "checkpoints").glob("state-*.pt"):
        if int(f.stem.split("-")[1]) > step:
            f.unlink()
    assert main([*args, "--resume", "auto"]) == 0
    assert read_records(run, "resume")[-1]["step"] == step
    return json.loads((run / "config.json").read_text())["environment"]


def _trained(tmp_path: Path) -> tuple[Path, list[str]]:
    """A tiny static run of 6 steps with checkpoints at 2, 4 and 6 kept; its folder and the command."""
    data = write_fake_mnist(tmp_path / "data", n_train=64, n_test=8)
    run = tmp_path / "run"
    args = ["train", "--data-root", str(data), "--model", "mlp", "--model-width", "8", "--batch-size", "8",
            "--method", "static", "--steps", "6", "--checkpoint-every", "2", "--keep-checkpoints", "3", "--no-progress",
            "--out", str(run)]
    assert main(args) == 0
    return run, args


def test_config_keeps_the_first_segments_code_through_resumes(tmp_path):
    """config.json is rewritten at each resume with the resuming code; ``environment.started`` keeps
    the first segment's (here marked by a commit no code has), through a second resume as well."""
    run, args = _trained(tmp_path)
    env = json.loads((run / "config.json").read_text())["environment"]
    assert env["started"] == {k: env[k] for k in ("sparsegan", "torch", "commit", "modified", "torch_threads")
                              if k in env}
    first = dict(env["started"], commit="f" * 40, torch_threads=7)
    _edit_environment(run, started=first, commit="f" * 40, torch_threads=7)
    env = _resume_from(run, args, step=2)
    assert env["started"] == first and env.get("commit") != "f" * 40 and env["torch_threads"] != 7
    assert _resume_from(run, args, step=4)["started"] == first
    assert [r["step"] for r in read_records(run, "resume")] == [2, 4]


def test_a_run_from_before_started_was_kept(tmp_path):
    """A config.json without ``started``: its environment is the first segment's where no resume record
    precedes (so it is kept), and unknown ({}) after one: earlier segments' code is not guessed."""
    run, args = _trained(tmp_path)
    _edit_environment(run, started=None, commit="e" * 40)
    assert _resume_from(run, args, step=4)["started"]["commit"] == "e" * 40
    _edit_environment(run, started=None, commit="d" * 40)
    assert _resume_from(run, args, step=4)["started"] == {}  # the resume at 4 came before this config.json
