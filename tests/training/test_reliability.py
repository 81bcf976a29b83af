"""Exact resume after SIGKILL, atomic and safe checkpoints, divergence guard, bad input."""

import json
import os
import pickle
import random
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from idx_files import write_fake_mnist
from sparsegan.cli import main
from sparsegan.config import build_config
from sparsegan.errors import DivergenceError, UserError
from sparsegan.launch import train
from sparsegan.training import read_records
from sparsegan.training.state import latest_valid_checkpoint, list_checkpoints, load_checkpoint
from sparsegan.training.trainer import resume_threads


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_fake_mnist(tmp_path_factory.mktemp("data"), n_train=256, n_test=8)


COMMON = ["--model", "mlp", "--model-width", "8", "--batch-size", "8", "--sparsity-g", "0.8",
          "--update-interval", "2", "--checkpoint-every", "4", "--log-every", "3", "--sample-every", "10",
          "--keep-checkpoints", "2", "--no-progress"]


def _same_final(a: Path, b: Path) -> None:
    for f in ("generator", "generator_ema", "discriminator", "masks"):
        x, y = load_file(a / "final" / f"{f}.safetensors"), load_file(b / "final" / f"{f}.safetensors")
        assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x), f


def test_sigkill_and_resume_is_bitwise_exact(tmp_path, data):
    steps = "240"  # ~0.8 s of training on an idle 2-core CPU: time left to kill it in
    args = ["--data-root", str(data), *COMMON, "--steps", steps]
    # Both runs in subprocesses with the same thread count: float reductions must run in the same order.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    straight = [sys.executable, "-m", "sparsegan", "train", *args, "--out", str(tmp_path / "straight")]
    assert subprocess.run(straight, env=env, stdout=subprocess.DEVNULL).returncode == 0

    run = tmp_path / "killed"
    rng = random.Random(1234)
    cmd = [sys.executable, "-m", "sparsegan", "train", *args, "--out", str(run)]
    kills = 0
    for attempt in range(3):
        proc = subprocess.Popen(cmd + (["--resume", "auto"] if attempt else []), env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # Wait until a new checkpoint exists, then kill at a random moment.
        have = {p.name for p in list_checkpoints(run / "checkpoints")}
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            now = {p.name for p in list_checkpoints(run / "checkpoints")}
            if now - have:
                break
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.05))  # a random moment, soon enough to find the run still going
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    assert kills >= 1
    assert subprocess.run(cmd + ["--resume", "auto"], env=env, stdout=subprocess.DEVNULL).returncode == 0
    _same_final(tmp_path / "straight", run)
    resumes = [r["step"] for r in read_records(run, "resume")]
    assert len(resumes) >= 1 and all(s > 0 for s in resumes) and resumes == sorted(resumes)
    train_steps = [r["step"] for r in read_records(run, "train")]
    assert train_steps == sorted(set(train_steps))  # no duplicate records after resumes


def test_truncated_and_foreign_checkpoints_are_skipped(tmp_path, data):
    run = tmp_path / "r"
    assert main(["train", "--data-root", str(data), *COMMON, "--steps", "8", "--out", str(run)]) == 0
    ckpts = list_checkpoints(run / "checkpoints")
    assert [p.name for p in ckpts] == ["state-00000004.pt", "state-00000008.pt"]
    newest = ckpts[-1]
    newest.write_bytes(newest.read_bytes()[:1000])  # a kill mid-write without atomic rename
    with pytest.raises(UserError, match="not a valid"):
        load_checkpoint(newest)
    path, state = latest_valid_checkpoint(run / "checkpoints", warn=lambda m: None)
    assert path.name == "state-00000004.pt" and state["step"] == 4
    foreign = run / "checkpoints" / "state-00000009.pt"
    torch.save({"hello": torch.zeros(1)}, foreign)
    with pytest.raises(UserError, match="not a sparsegan training state"):
        load_checkpoint(foreign)
    assert latest_valid_checkpoint(run / "checkpoints", warn=lambda m: None)[0].name == "state-00000004.pt"


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch PWNED_MARKER",))


def test_checkpoint_that_runs_code_is_refused(tmp_path, data, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "r"
    assert main(["train", "--data-root", str(data), *COMMON, "--steps", "4", "--out", str(run)]) == 0
    evil = run / "checkpoints" / "state-00000099.pt"
    torch.save({"format": "sparsegan-training-state", "version": 1, "step": 99, "x": _Evil()}, evil)
    with open(tmp_path / "plain.pkl", "wb") as f:
        pickle.dump(_Evil(), f)
    for path in (evil, tmp_path / "plain.pkl"):
        rc = main(["train", "--data-root", str(data), *COMMON, "--steps", "8", "--out", str(run),
                   "--resume", str(path)])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1 and "not a valid sparsegan training state" in err[0]
    assert not (tmp_path / "PWNED_MARKER").exists()
    # --resume auto skips it and continues from the newest valid state.
    assert main(["train", "--data-root", str(data), *COMMON, "--steps", "8", "--out", str(run),
                 "--resume", "auto"]) == 0
    assert not (tmp_path / "PWNED_MARKER").exists()
    assert read_records(run, "resume")[-1]["step"] == 4


def test_divergence_stops_keeps_last_good_checkpoint(tmp_path, data, capsys):
    cfg = build_config({"data_root": str(data), "model": "mlp", "model_width": 8, "batch_size": 8,
                        "steps": 20, "checkpoint_every": 4, "out": str(tmp_path / "r")})

    def poison(t):
        if t.step == 6:
            with torch.no_grad():
                next(t.G.parameters()).fill_(float("nan"))

    with pytest.raises(DivergenceError, match="non-finite"):
        train(cfg, progress=False, on_step=poison)
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["status"] == "diverged" and summary["step"] == 7
    assert [p.name for p in list_checkpoints(tmp_path / "r" / "checkpoints")] == ["state-00000004.pt"]
    load_checkpoint(tmp_path / "r" / "checkpoints" / "state-00000004.pt")


def test_divergence_exit_code(tmp_path, data, capsys):
    # A learning rate this large makes the losses non-finite within a few steps.
    rc = main(["train", "--data-root", str(data), *COMMON, "--steps", "200", "--lr-d", "1e30", "--lr-g", "1e30",
               "--loss", "ns", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 3 and len(err) == 1 and "diverged" in err[0]
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["status"] == "diverged"


def _snapshot(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def existing_run(tmp_path_factory, data):
    run = tmp_path_factory.mktemp("existing") / "run"
    assert main(["train", "--data-root", str(data), *COMMON, "--steps", "4", "--out", str(run)]) == 0
    return run


BAD = [
    (["--method", "static", "--resume", "auto"], "method"),
    (["--model", "dcgan", "--resume", "auto"], "model"),
    (["--sparsity-g", "0.5", "--resume", "auto"], "sparsity_g"),
    (["--resume", "/nonexistent/state.pt"], "not found"),
    ([], "--overwrite"),
    (["--sparsity-g", "1.5", "--resume", "auto"], "sparsity-g"),
    (["--prune-fraction", "1.5", "--resume", "auto"], "prune-fraction"),
    (["--ema-beta", "1.0", "--resume", "auto"], "ema-beta"),
    (["--imp-rate", "0", "--resume", "auto"], "imp-rate"),
    (["--model-width", "0", "--resume", "auto"], "model-width"),
    (["--batch-size", "0", "--resume", "auto"], "batch-size"),
    (["--lr-g", "-1", "--resume", "auto"], "lr-g"),
    (["--explore", "X", "--resume", "auto"], "valid: G, D, GD"),
    (["--prunable", "bias", "--resume", "auto"], "valid: all, conv"),
    (["--masks-from", "/nonexistent", "--method", "static", "--overwrite"], "not found"),
    (["--device", "warp-drive", "--overwrite"], "device"),
    (["--gmp-start", "0.9", "--gmp-end", "0.5", "--resume", "auto"], "gmp"),
    (["--no-such-flag", "--resume", "auto"], "unrecognized arguments"),
]


@pytest.mark.parametrize("extra, needle", BAD)
def test_bad_input_leaves_run_intact(existing_run, data, capsys, extra, needle):
    before = _snapshot(existing_run)
    rc = main(["train", "--data-root", str(data), *COMMON, "--steps", "4", "--out", str(existing_run), *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc != 0 and len(err) == 1 and needle in err[0] and "Traceback" not in err[0], err
    if "--overwrite" not in extra:
        assert _snapshot(existing_run) == before


@pytest.mark.parametrize("content, needle", [
    ("steps: [1, 2]\n", "'steps' must be int"),
    ("- a\n- b\n", "mapping"),
    ("steps: 5\n  bad indent: [\n", "not valid YAML"),
    ("sparsity_g: true\n", "'sparsity_g' must be float"),
    ("method: 3\n", "'method' must be str"),
])
def test_bad_yaml(tmp_path, capsys, content, needle):
    f = tmp_path / "c.yaml"
    f.write_text(content)
    assert main(["train", "--config", str(f), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0]


def test_missing_config_file(tmp_path, capsys):
    assert main(["train", "--config", str(tmp_path / "nope.yaml"), "--dry-run"]) == 2
    assert "not found" in capsys.readouterr().err


# --- nothing written is lost: a signal stops with a checkpoint, a finished run stays finished ------

# Long enough (seconds) that the signal, sent once the first records appear, arrives before the
# end even on a loaded machine (the parent that sends it may wait for a core).
STOP_STEPS = 1000
STOP_ARGS = ["--model", "mlp", "--model-width", "8", "--batch-size", "8", "--sparsity-g", "0.8",
             "--update-interval", "7", "--checkpoint-every", "5000", "--log-every", "3", "--sample-every", "5000",
             "--keep-checkpoints", "2", "--no-progress", "--steps", str(STOP_STEPS)]


@pytest.fixture
def one_thread():
    """In-process runs with the thread count of the OMP_NUM_THREADS=1 subprocesses (same float order)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _signal_after_first_records(cmd: list[str], run: Path, sig: int) -> tuple[int, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # The child takes SIGINT as a user's Ctrl-C would reach it, even when this test runs where SIGINT is
    # ignored (a background job): sparsegan keeps an ignored signal ignored, on purpose (nohup, &).
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if (run / "metrics.jsonl").exists() and '"kind": "train"' in (run / "metrics.jsonl").read_text():
            break
        time.sleep(0.005)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_signal_saves_checkpoint_says_how_to_resume_and_resume_is_bitwise(tmp_path, data, one_thread, capsys,
                                                                           sig, code):
    run = tmp_path / "run"
    args = ["train", "--data-root", str(data), *STOP_ARGS, "--out", str(run)]
    rc, err = _signal_after_first_records([sys.executable, "-m", "sparsegan", *args], run, sig)
    assert rc == code, err
    last = err.strip().splitlines()[-1]
    name = signal.Signals(sig).name
    m = re.fullmatch(rf"sparsegan: stopped by {name} after step (\d+) of {STOP_STEPS}; checkpoint (\S+); "
                     r"resume with: (sparsegan train .*)", last)
    assert m, err
    step = int(m.group(1))
    assert 3 <= step < STOP_STEPS and Path(m.group(2)) == run / "checkpoints" / f"state-{step:08d}.pt"
    assert load_checkpoint(Path(m.group(2)))["step"] == step
    assert not (run / "summary.json").exists() and not list((run / "final").glob("*"))  # not finished
    if sig != signal.SIGINT:
        return
    # The printed command, as printed, continues the run and ends where an uninterrupted run ends.
    resume = shlex.split(m.group(3))
    assert resume[:2] == ["sparsegan", "train"] and resume[-2:] == ["--resume", "auto"]
    assert main(resume[1:]) == 0
    assert f"resuming {run} from step {step}" in capsys.readouterr().err
    assert main([*args[:-1], str(tmp_path / "straight")]) == 0
    _same_final(tmp_path / "straight", run)
    assert [r["step"] for r in read_records(run, "resume")] == [step]


def test_resume_of_completed_run_changes_nothing_unless_steps_grew(tmp_path, data, capsys):
    run = tmp_path / "r"
    args = ["train", "--data-root", str(data), *COMMON, "--out", str(run)]
    assert main([*args, "--steps", "4"]) == 0
    before = _snapshot(run)
    capsys.readouterr()
    for steps in ("4", "3"):  # the same length, or shorter: complete, nothing to do
        assert main([*args, "--steps", steps, "--resume", "auto"]) == 0
        err = capsys.readouterr().err
        assert f"is complete at step 4 (--steps {steps}); nothing to do, nothing changed" in err
        assert _snapshot(run) == before
    # More steps: it continues, and says that final/ and summary.json will be replaced.
    assert main([*args, "--steps", "8", "--resume", "auto"]) == 0
    err = capsys.readouterr().err
    assert "was complete at step 4; continuing it to --steps 8" in err
    assert json.loads((run / "summary.json").read_text())["step"] == 8


def test_resume_records_the_thread_count_and_warns_when_it_changed(tmp_path, data, one_thread, capsys):
    # Another thread count splits the CPU's float reductions differently: the resumed run drifts from
    # the uninterrupted one, so the run folder records each segment's count and the resume says so.
    run = tmp_path / "r"
    args = ["train", "--data-root", str(data), *COMMON, "--out", str(run)]
    assert main([*args, "--steps", "4"]) == 0
    assert json.loads((run / "config.json").read_text())["environment"]["torch_threads"] == 1
    assert main([*args, "--steps", "6", "--resume", "auto"]) == 0
    assert "warning: resuming with" not in capsys.readouterr().err
    torch.set_num_threads(2)  # the fixture restores the count
    assert main([*args, "--steps", "8", "--resume", "auto"]) == 0
    err = capsys.readouterr().err
    assert "sparsegan: warning: resuming with 2 torch threads where the run trained with 1:" in err
    assert "(OMP_NUM_THREADS=1 keeps it exact)" in err
    records = [{k: r[k] for k in r if k.startswith("torch_threads")} for r in read_records(run, "resume")]
    assert records == [{"torch_threads": 1}, {"torch_threads": 2, "torch_threads_before": 1}]
    assert json.loads((run / "config.json").read_text())["environment"]["torch_threads"] == 2
    # On an accelerator the CPU's thread count does not order the kernels' reductions: no warning.
    assert resume_threads({"environment": {"torch_threads": 1}}, torch.device("cuda")) == ({"torch_threads": 2}, None)


def test_checkpoint_beyond_steps_is_refused_and_nothing_changes(tmp_path, data, capsys):
    cfg = build_config({"data_root": str(data), "model": "mlp", "model_width": 8, "batch_size": 8,
                        "steps": 20, "checkpoint_every": 4, "out": str(tmp_path / "r")})

    def crash(t):
        if t.step == 8:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg, progress=False, on_step=crash)
    before = _snapshot(tmp_path / "r")
    rc = main(["train", "--data-root", str(data), "--model", "mlp", "--model-width", "8", "--batch-size", "8",
               "--checkpoint-every", "4", "--steps", "6", "--out", str(tmp_path / "r"), "--resume", "auto",
               "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "at step 8, beyond --steps 6" in err[0], err
    assert _snapshot(tmp_path / "r") == before
