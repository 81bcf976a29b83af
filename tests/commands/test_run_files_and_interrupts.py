"""Run folders others can read, --out folders that are not runs, and Ctrl-C before and after a run
wrote anything: through the real entry point."""

import os
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from idx_files import write_fake_mnist
from sparsegan.cli import main
from sparsegan.training import read_records

TINY = ["--dataset", "fashion-mnist", "--model", "mlp", "--model-width", "8", "--batch-size", "8",
        "--method", "static", "--sparsity-g", "0.5", "--log-every", "1", "--no-progress"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_fake_mnist(tmp_path_factory.mktemp("data"), n_train=128, n_test=32)


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder below root: (size or 0, mode bits)."""
    return {str(p.relative_to(root)): (p.stat().st_size if p.is_file() else 0, stat.S_IMODE(p.stat().st_mode))
            for p in sorted(root.rglob("*"))}


# --- the files of a run folder get the mode the umask gives ordinary files --------------------------

SESSION = """
import sys
from sparsegan.cli import main
run, data = sys.argv[1], sys.argv[2]
common = ["--no-progress", "--data-root", data]
assert main(["train", "--out", run, *{tiny}, "--steps", "4", "--checkpoint-every", "2", "--sample-every", "2",
             *common]) == 0
assert main(["eval", run, "--metrics", "fid_domain", "--num-samples", "16", "--num-ref", "16", "--batch-size", "8",
             *common]) == 0
assert main(["export", run]) == 0
"""


@pytest.mark.parametrize("umask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)])
def test_run_files_follow_the_umask(tmp_path, data, umask, file_mode, dir_mode):
    run = tmp_path / "run"
    script = SESSION.format(tiny=repr(TINY))
    proc = subprocess.run([sys.executable, "-c", script, str(run), str(data)], umask=umask, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    tree = _tree(run)
    # config, metrics, summary, samples, checkpoints, final/*, eval/*.json, export/*: all written here.
    for part in ("config.json", "metrics.jsonl", "summary.json", "final/generator_ema.safetensors",
                 "final/masks.safetensors", "checkpoints/state-00000004.pt", "samples/step-00000002.png",
                 "eval/fid_domain@16.json", "export/generator_ema.csr.safetensors"):
        assert part in tree, sorted(tree)
    wrong = {name: oct(mode) for name, (_, mode) in tree.items()
             if mode != (dir_mode if (run / name).is_dir() else file_mode)}
    assert not wrong, wrong
    assert not [name for name in tree if name.endswith(".tmp")]  # atomic writes leave nothing behind


# --- --out: a folder of the user's own files is never written into ---------------------------------

@pytest.mark.parametrize("flags", [[], ["--resume", "auto"], ["--overwrite"]], ids=["plain", "resume", "overwrite"])
def test_a_folder_that_is_not_a_run_is_refused_in_one_line(tmp_path, data, capsys, flags):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("the user's own file\n")
    (out / "plots").mkdir()
    before = _tree(out)
    rc = main(["train", "--out", str(out), *TINY, "--steps", "2", "--data-root", str(data), *flags])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    assert "holds no sparsegan run" in err[0] and "give another --out" in err[0], err
    assert "--resume" not in err[0] and "--overwrite" not in err[0], err  # neither would help
    assert _tree(out) == before


def test_a_run_folder_is_still_offered_resume_and_overwrite(tmp_path, data, capsys):
    out = tmp_path / "run"
    args = ["train", "--out", str(out), *TINY, "--steps", "2", "--data-root", str(data)]
    assert main(args) == 0
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("holds another run; pass --resume auto to continue it or --overwrite to replace it"), err


def test_a_folder_with_only_the_empty_run_layout_counts_as_empty(tmp_path, data):
    # What a run stopped before its first file leaves: the empty samples/, checkpoints/, final/.
    out = tmp_path / "run"
    for d in ("samples", "checkpoints", "final"):
        (out / d).mkdir(parents=True)
    assert main(["train", "--out", str(out), *TINY, "--steps", "2", "--data-root", str(data)]) == 0
    assert (out / "summary.json").is_file()


# --- Ctrl-C: no resume advice before anything was written --------------------------------------------

def _interrupt(*_args, **_kwargs):
    raise KeyboardInterrupt


def test_ctrl_c_while_the_data_loads_says_nothing_was_started(tmp_path, data, capsys, monkeypatch):
    import sparsegan.training.trainer as trainer

    monkeypatch.setattr(trainer, "load_training_data", _interrupt)
    out = tmp_path / "run"
    rc = main(["train", "--out", str(out), *TINY, "--steps", "4", "--data-root", str(data)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 130 and len(err) == 1, err
    assert "interrupted during set-up: nothing was started and nothing written" in err[0]
    assert "resume" not in err[0] and "checkpoint" not in err[0]
    assert not out.exists()


def test_ctrl_c_after_a_checkpoint_gives_the_resume_command_and_set_up_ctrl_c_spares_the_run(
        tmp_path, data, capsys, monkeypatch):
    import sparsegan.training.loop as loop

    real_save = loop.save_checkpoint

    def save_then_interrupt(*args, **kwargs):  # Ctrl-C right after the step-2 checkpoint is on disk
        real_save(*args, **kwargs)
        raise KeyboardInterrupt

    out = tmp_path / "run"
    args = ["train", "--out", str(out), *TINY, "--steps", "4", "--checkpoint-every", "2", "--data-root", str(data)]
    with monkeypatch.context() as m:
        m.setattr(loop, "save_checkpoint", save_then_interrupt)
        rc = main(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 130 and (out / "checkpoints" / "state-00000002.pt").is_file()
    prefix = "sparsegan: interrupted; resume from the last checkpoint with: "
    assert err[-1].startswith(prefix), err
    resume = shlex.split(err[-1][len(prefix):])
    assert resume[:2] == ["sparsegan", "train"] and resume[-2:] == ["--resume", "auto"]

    # Ctrl-C in the set-up of a command that would replace the run: nothing started, the run intact.
    before = _tree(out)
    with monkeypatch.context() as m:
        m.setattr(loop, "build_trainer", _interrupt)
        assert main([*args, "--overwrite"]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nothing was started and nothing written" in err[0] and "resume" not in err[0], err
    assert _tree(out) == before

    # The printed command continues the run from its checkpoint.
    assert main(resume[1:]) == 0
    assert [r["step"] for r in read_records(out, "resume")] == [2]
    assert os.path.isfile(out / "summary.json")
