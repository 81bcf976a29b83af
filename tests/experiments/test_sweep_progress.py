"""A sweep shows each running point's own progress (steps done / total, steps/s, time left) under
its bar, on a terminal only and never with --no-progress; the lines read the run folders, never
write them."""

import io
import json
import re
import sys

import pytest
import yaml

from idx_files import write_fake_mnist
from sparsegan.cli import main
from sparsegan.experiments.progress import PointProgress

TINY = {"model": "mlp", "model_width": 8, "steps": 4, "update_interval": 2, "batch_size": 16,
        "log_every": 2, "sample_every": 2, "checkpoint_every": 2, "num_sample_images": 4}
POINTS = ("static_seed0", "stu_seed0")


class _Terminal(io.StringIO):
    """stderr as a terminal would be (what decides whether progress is drawn)."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    root = tmp_path_factory.mktemp("grid")
    data = write_fake_mnist(root / "data", n_train=128, n_test=8)
    path = root / "grid.yaml"
    path.write_text(yaml.safe_dump({"name": "tiny", "base": {"data_root": str(data), **TINY},
                                    "grid": {"method": ["static", "stu"], "seed": [0]}}))
    return path


def _sweep(grid, out, monkeypatch, *flags, terminal=True) -> str:
    err = _Terminal() if terminal else io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    assert main(["sweep", str(grid), "--out", str(out), *flags]) == 0
    monkeypatch.undo()
    return err.getvalue()


def _point_lines(err: str, name: str) -> list[str]:
    """The redrawn lines (split at carriage returns and newlines) of one point's progress."""
    return [ln for ln in re.split(r"[\r\n]", err) if name in ln and " steps" in ln]


def _files(run) -> list[str]:
    return sorted(str(p.relative_to(run)) for p in run.rglob("*"))


@pytest.mark.parametrize("workers", ["1", "2"])  # in this process; subprocesses side by side
def test_each_running_point_has_a_line_with_its_steps(grid, tmp_path, monkeypatch, workers):
    err = _sweep(grid, tmp_path / "sweep", monkeypatch, "--workers", workers)
    assert "sweep tiny" in err
    for name in POINTS:
        lines = _point_lines(err, name)
        assert any(re.search(r"\b0/4 steps", ln) for ln in lines), lines  # shown from the start ...
        assert any(re.search(r"\b4/4 steps", ln) for ln in lines), lines  # ... to the point's last record
        assert json.loads((tmp_path / "sweep" / name / "summary.json").read_text())["step"] == 4


def test_no_point_lines_with_no_progress_or_without_a_terminal(grid, tmp_path, monkeypatch):
    quiet = _sweep(grid, tmp_path / "quiet", monkeypatch, "--no-progress")
    assert "sweep tiny" not in quiet and " steps" not in quiet
    assert all(name in quiet for name in POINTS)  # the one-line status per point stays
    piped = _sweep(grid, tmp_path / "piped", monkeypatch, terminal=False)
    assert "sweep tiny" in piped and " steps" not in piped
    # The lines only read the run folders: a run shown on a terminal holds what a quiet one holds.
    shown = tmp_path / "shown"
    _sweep(grid, shown, monkeypatch)
    for name in POINTS:
        assert _files(shown / name) == _files(tmp_path / "quiet" / name)


def test_rate_and_time_left_are_measured_between_records(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    metrics = run / "metrics.jsonl"
    metrics.write_text(json.dumps({"kind": "train", "step": 100}) + "\n")  # before this call: a resumed run
    clock = iter([0.0, 10.0, 14.0, 16.0, 17.0])
    err = _Terminal()
    lines = PointProgress(err, width=3, interval=3600, clock=lambda: next(clock))  # this test polls
    try:
        lines.start("run", run, steps=1000)  # t=0: finds step 100; no rate from what was there
        watch = lines._watches["run"]
        assert watch.bar.n == 100 and "steps/s from the next records on" in watch.rate_text()
        with open(metrics, "a") as f:
            f.write(json.dumps({"kind": "resume", "step": 100}) + "\n")
        watch.poll()  # t=10: the first record of this call
        assert "steps/s from the next records on" in watch.rate_text()
        with open(metrics, "a") as f:
            f.write(json.dumps({"kind": "train", "step": 150}) + "\n")
        watch.poll()  # t=14: 50 steps in 4 s; 850 to go
        assert watch.bar.n == 150 and watch.rate_text() == "12.5 steps/s, 01:08 left"
        with open(metrics, "a") as f:
            f.write('{"kind": "train", "st')  # a line still being written waits
        watch.poll()  # t=16
        assert watch.bar.n == 150
    finally:
        lines.close()
    assert "150/1000 steps, 12.5 steps/s, 01:08 left" in err.getvalue()
