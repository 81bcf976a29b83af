"""examples/accelerate_gan.py: a Hugging Face Accelerate loop made sparse, with gradient
accumulation, on one process (in this one) and on two CPU processes under torchrun (gloo)."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("accelerate")

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "accelerate_gan.py"


def _inactive_zero(sparse):
    for net, masks in sparse.masks.items():
        for name, m in masks.masks.items():
            assert not masks.params[name][~m].any(), f"{net}.{name} has nonzero inactive weights"


@pytest.fixture
def fresh_accelerate_state():
    # Accelerate keeps its state in process-wide singletons: leave none behind for other tests.
    from accelerate.state import AcceleratorState, GradientState

    yield
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


def test_one_process_with_gradient_accumulation(fresh_accelerate_state):
    spec = importlib.util.spec_from_file_location("accelerate_gan", EXAMPLE)
    ex = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ex)
    out = ex.main(["--cpu", "--epochs", "2", "--batches", "10", "--accumulate", "3", "--update-interval", "2"])
    sparse = out["sparse"]
    # 10 batches an epoch, a step every 3 and at the epoch's end: 4 optimizer steps an epoch, and
    # one sparse.step() for each (none for the batches that only accumulated)
    assert out["steps"] == 8 and sparse.completed == 8
    for net in ("G", "D"):
        opt = sparse.optimizers[net]
        assert all(int(s["step"]) == 8 for s in opt.state.values())
    dens = sparse.density()
    assert abs(dens["G"] - 0.1) < 2e-3 and abs(dens["D"] - 0.5) < 2e-3
    _inactive_zero(sparse)
    assert sparse.masks["G"].itop_rate() > dens["G"]  # G's masks changed (updates at 2, 4, 6)
    assert sparse.nets["G"] is out["G"] and out["masks_agree"]


def test_two_cpu_processes_hold_equal_masks(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(EXAMPLE),
           "--cpu", "--epochs", "2", "--batches", "16", "--accumulate", "2", "--update-interval", "2",
           "--save-masks", str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    # on failure, every line that says why (a rank's abort message sits mid-stream, not at the end)
    words = ("rror", "terminate", "abort", "what()")
    why = [line for line in proc.stderr.splitlines() if any(w in line for w in words)]
    assert proc.returncode == 0, "\n".join(why[:40]) + "\n...\n" + proc.stderr[-1500:]
    assert "2 process(es): masks equal on every rank: True" in proc.stdout  # the example's own gather
    a, b = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    # 16 batches over 2 ranks: 8 each, a step every 2: 4 an epoch; updates at 2, 4 and 6
    assert a["completed"] == b["completed"] == 8
    assert a["masks"].keys() == b["masks"].keys()
    for k in a["masks"]:
        assert torch.equal(a["masks"][k], b["masks"][k]), k
        assert torch.equal(a["weights"][k], b["weights"][k]), k  # DDP: the same weights too
        assert not a["weights"][k][~a["masks"][k]].any(), k
    g_active = sum(int(m.sum()) for k, m in a["masks"].items() if k.startswith("G."))
    g_density = g_active / sum(m.numel() for k, m in a["masks"].items() if k.startswith("G."))
    assert abs(g_density - 0.1) < 2e-3 and a["itop"]["G"] > g_density  # G's masks changed, alike on both ranks
