"""IMP runs are never deleted or silently mixed on resume: a sweep resumes (or skips) an IMP point
instead of relaunching it with --overwrite, and --resume auto refuses options that change the rounds."""

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml

from idx_files import write_fake_mnist
from sparsegan.cli import main
from sparsegan.training import read_records

BASE = {"model": "mlp", "model_width": 8, "batch_size": 8, "steps": 3, "log_every": 1, "sample_every": 3,
        "checkpoint_every": 1, "num_sample_images": 4}
OLD = 1_000_000_000  # an mtime no rewrite of a file can keep


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_fake_mnist(tmp_path_factory.mktemp("data"), n_train=128, n_test=8)


def _sweep(tmp_path, data, rewind_step):
    doc = {"base": {"data_root": str(data), **BASE},
           "grid": {"method": ["imp"], "sparsity_g": [0.5], "rewind_step": [rewind_step]}}
    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump(doc))
    out = tmp_path / "sweep"
    assert main(["sweep", str(grid), "--out", str(out), "--no-progress"]) == 0
    (run,) = [p for p in out.iterdir() if (p / "rounds").is_dir()]
    return grid, out, run


def _age(folders):
    """Every file under the folders, back-dated: {path: (mtime_ns, bytes)} to compare with later."""
    files = {}
    for folder in folders:
        for f in sorted(Path(folder).rglob("*")):
            if f.is_file():
                os.utime(f, (OLD, OLD))
                files[f] = (f.stat().st_mtime_ns, f.read_bytes())
    return files


def _unchanged(files):
    return [str(f) for f, was in files.items() if not f.exists() or (f.stat().st_mtime_ns, f.read_bytes()) != was]


def test_sweep_skips_a_finished_late_rewinding_imp_point(tmp_path, data, capsys):
    grid, out, run = _sweep(tmp_path, data, rewind_step=1)
    summary = json.loads((run / "summary.json").read_text())
    files = _age([run / "rounds", run / "final"])
    assert run / "rounds" / "round-01" / "final" / "generator.safetensors" in files
    capsys.readouterr()
    assert main(["sweep", str(grid), "--out", str(out), "--no-progress"]) == 0
    assert " skipped " in capsys.readouterr().err
    assert _unchanged(files) == []
    # The schedule position, not the last round's length (steps - rewind_step): the chain is complete.
    assert summary["status"] == "completed" and summary["step"] == 3 and summary["round_steps"] == 2


def test_sweep_resumes_an_interrupted_imp_point_without_deleting_its_rounds(tmp_path, data, capsys):
    grid, out, run = _sweep(tmp_path, data, rewind_step=0)
    n_rounds = len(list((run / "rounds").iterdir()))
    assert n_rounds >= 3
    # Interrupted after round 1: later rounds, their tickets and the run's result not written yet.
    for k in range(2, n_rounds):
        shutil.rmtree(run / "rounds" / f"round-{k:02d}")
        shutil.rmtree(run / "tickets" / f"round-{k:02d}", ignore_errors=True)
    (run / "summary.json").unlink()
    for f in (run / "final").iterdir():
        f.unlink()
    kept = [line for line in (run / "metrics.jsonl").read_text().splitlines() if json.loads(line).get("round", 0) <= 1]
    (run / "metrics.jsonl").write_text("\n".join(kept) + "\n")
    # the code that started the IMP run (marked by a commit no code has) stays in its config.json
    config = json.loads((run / "config.json").read_text())
    config["environment"]["started"]["commit"] = "f" * 40
    (run / "config.json").write_text(json.dumps(config))
    files = _age([run / "rounds", run / "rewind", run / "tickets" / "round-01"])
    capsys.readouterr()
    assert main(["sweep", str(grid), "--out", str(out), "--no-progress"]) == 0
    assert " resumed " in capsys.readouterr().err
    assert json.loads((run / "config.json").read_text())["environment"]["started"]["commit"] == "f" * 40
    assert _unchanged(files) == []  # round-00, round-01 and what they started from are untouched
    assert [r["round"] for r in read_records(run, "round")] == list(range(n_rounds))
    assert json.loads((run / "summary.json").read_text())["status"] == "completed"


def test_resume_with_other_round_options_is_refused_and_changes_nothing(tmp_path, data, capsys):
    run = tmp_path / "imp"
    args = ["train", "--data-root", str(data), "--out", str(run), "--model", "mlp", "--model-width", "8",
            "--batch-size", "8", "--steps", "2", "--no-progress", "--method", "imp", "--sparsity-g", "0.5"]
    assert main(args) == 0
    files = _age([run])
    listing = sorted(run.rglob("*"))
    capsys.readouterr()
    assert main([*args, "--resume", "auto", "--sparsity-g", "0.6"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "sparsity_g" in err and "Traceback" not in err
    assert sorted(run.rglob("*")) == listing and _unchanged(files) == []
    # The same options resume (nothing left to do).
    assert main([*args, "--resume", "auto"]) == 0
