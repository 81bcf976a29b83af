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
