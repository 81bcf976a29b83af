"""The engine's topology updates as train() runs them, observed after every iteration.

Each test drives the real loop (D steps, G step, topology update, optimizer sync, EMA) on a tiny
mlp and checks a hand-checkable number: SEMA's Eq. 5 one step after an update, the size of a
regrown weight's first Adam step, the value and state of a weight dropped and taken back in the
same update, the topology records' counts, and the reference-code mode.
"""

import statistics

import pytest
import torch

from idx_files import write_fake_mnist
from sparsegan.config import build_config
from sparsegan.launch import train
from sparsegan.training import read_records

LR = 2e-4
BETAS = (0.5, 0.999)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_fake_mnist(tmp_path_factory.mktemp("data"), n_train=256, n_test=8)


def _cfg(data, out, **kw):
    values = {"data_root": str(data), "model": "mlp", "model_width": 16, "batch_size": 16, "method": "stu",
              "sparsity_g": 0.8, "sparsity_d": 0.5, "steps": 14, "update_interval": 6, "ema_beta": 0.9,
              "ema_warmup": False,  # SEMA's Eq. 5 with a fixed beta
              "lr_g": LR, "beta1": BETAS[0], "beta2": BETAS[1], "checkpoint_every": 100, "sample_every": 100,
              "out": str(out)}
    return build_config(values | kw)


class Recorder:
    """Snapshots of G, its EMA, masks and Adam state after every iteration of train()
    (or only after the iterations in ``only``)."""

    def __init__(self, only=None):
        self.steps: dict[int, dict] = {}
        self.only = only

    def __call__(self, t) -> None:
        if self.only is not None and t.step not in self.only:
            return
        opt = t.opt["G"]
        masks = t.method.masks["G"]
        self.steps[t.step] = {
            "w": {n: p.detach().clone() for n, p in masks.params.items()},
            "ema": {n: p.detach().clone() for n, p in t.ema.model.named_parameters() if n in masks.params},
            "mask": {n: m.clone() for n, m in masks.masks.items()},
            "exp_avg": {n: opt.state[p]["exp_avg"].clone() for n, p in masks.params.items()},
            "grad": {n: p.grad.detach().clone() for n, p in masks.params.items()},
        }

    def change(self, step: int) -> tuple[dict, dict]:
        """(really new, really removed) entries of G's masks at ``step``."""
        before, after = self.steps[step - 1]["mask"], self.steps[step]["mask"]
        return ({n: after[n] & ~before[n] for n in after}, {n: before[n] & ~after[n] for n in after})


@pytest.fixture(scope="module")
def stu_run(data, tmp_path_factory):
    rec = Recorder()
    out = tmp_path_factory.mktemp("stu") / "r"
    train(_cfg(data, out), progress=False, on_step=rec)
    return out, rec


def test_sema_eq5_one_step_after_an_update(stu_run):
    """T = 0: the grown weight's EMA is 0; T = 1: exactly the weight; T = 2: beta-average."""
    _, rec = stu_run
    t = 6
    new, _ = rec.change(t)
    assert sum(int(m.sum()) for m in new.values()) > 0
    for n, g in new.items():
        s0, s1, s2 = rec.steps[t], rec.steps[t + 1], rec.steps[t + 2]
        assert (s0["ema"][n][g] == 0).all()
        assert torch.equal(s1["ema"][n][g], s1["w"][n][g])  # not (1 - beta) * w
        torch.testing.assert_close(s2["ema"][n][g], 0.9 * s1["w"][n][g] + 0.1 * s2["w"][n][g])


@pytest.mark.parametrize("grow", ["gradient", "random"])
def test_regrown_weights_first_adam_step_is_about_lr(data, tmp_path, grow):
    """A fresh Adam weight's first step is lr. Zeroed moments under the tensor's step count t
    would give lr (1 - b1) / sqrt(1 - b2**t) / (1 - b1**t): with betas (0.5, 0.98) and an update
    at t = 100, 0.5 / sqrt(0.02 / 0.867) = 3.3 lr (15.8 lr at betas (0.5, 0.999), large t). Random
    regrowth (SET) picks weights whose gradient may be ~0: the layer floor of the second moment
    keeps their steps about lr too."""
    rec = Recorder(only={99, 100, 101})
    train(_cfg(data, tmp_path / "r", steps=102, update_interval=100, beta2=0.98, grow=grow), progress=False,
          on_step=rec)
    new, _ = rec.change(100)
    ratios = torch.cat([rec.steps[101]["w"][n][g].abs() / LR for n, g in new.items()])
    assert len(ratios) > 20
    assert 0.6 < statistics.median(ratios.tolist()) <= 1.05
    assert ratios.max() < 1.6


def test_topology_records_count_real_changes_and_retaken_weights_keep_their_value(stu_run):
    out, rec = stu_run
    for record in read_records(out, "topology"):
        if record["net"] != "G":
            continue
        t = record["step"]
        new, removed = rec.change(t)
        assert record["grown"] == sum(int(m.sum()) for m in new.values())
        assert record["pruned"] == sum(int(m.sum()) for m in removed.values())
        # Weights active before and after the update are never zeroed by it: a weight dropped
        # and regrown in the same update was never removed (RigL's reinit_when_same=False).
        before, after = rec.steps[t - 1]["mask"], rec.steps[t]["mask"]
        for n in after:
            both = before[n] & after[n]
            assert (rec.steps[t]["w"][n][both] != 0).all()
    first = next(r for r in read_records(out, "topology") if r["net"] == "G")
    swaps = int(first["prune_fraction"] * first["active"])  # upper bound: per-layer floors sum lower
    assert 0 < first["pruned"] < swaps  # some dropped weights were taken back at once


def test_reference_mode_keeps_stale_moments_and_zeroes_inactive_weights(data, tmp_path):
    """--no-mask-gradients --regrown-state keep: as the reference code, moments are never
    cleared (removed weights keep theirs) and inactive weights are re-zeroed after each step."""
    rec = Recorder()
    train(_cfg(data, tmp_path / "r", mask_gradients=False, regrown_state="keep"), progress=False, on_step=rec)
    for t, snap in rec.steps.items():
        for n, m in snap["mask"].items():
            assert (snap["w"][n][~m] == 0).all()
    _, removed = rec.change(6)
    kept_history = torch.cat([rec.steps[6]["exp_avg"][n][r] for n, r in removed.items()])
    assert len(kept_history) > 0 and (kept_history != 0).all()
    # Really new weights also keep the history the optimizer has for them (no fresh start).
    new, _ = rec.change(6)
    for n, g in new.items():
        torch.testing.assert_close(rec.steps[6]["exp_avg"][n][g],
                           BETAS[0] * rec.steps[5]["exp_avg"][n][g] + (1 - BETAS[0]) * rec.steps[6]["grad"][n][g])
