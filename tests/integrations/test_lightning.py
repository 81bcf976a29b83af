"""sparsegan's Lightning callback through the real Trainer on CPU: the shipped GAN example (manual
optimisation, two optimizers), a one-optimizer classifier (automatic optimisation, with gradient
accumulation), exact resume from a Lightning checkpoint, and misuse refused in one line."""

import importlib.util
from pathlib import Path

import pytest

pl = pytest.importorskip("lightning.pytorch")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from sparsegan.errors import UserError  # noqa: E402
from sparsegan.integrations.lightning import CHECKPOINT_KEY, SparseTrainingCallback  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def _example(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _inactive_zero(sparse):
    for net, masks in sparse.masks.items():
        for name, m in masks.masks.items():
            assert not masks.params[name][~m].any(), f"{net}.{name} has nonzero inactive weights"


def _trainer(tmp_path, **kw):
    return pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path, **kw)


def test_gan_example_stu_gan_with_manual_optimisation(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = _example("lightning_gan").main(["--epochs", "2", "--batches", "10", "--update-interval", "5"])
    cb, gan = out["callback"], out["gan"]
    sparse = cb.sparse
    assert sparse.completed == 20  # one sparse.step() per batch, after both optimizers' steps
    dens = sparse.density()
    assert abs(dens["G"] - 0.1) < 2e-3 and abs(dens["D"] - 0.5) < 2e-3
    _inactive_zero(sparse)
    # G explored (updates at 5, 10, 15): weights were active that are not now; D's masks never changed
    assert sparse.masks["G"].itop_rate() > dens["G"] and sparse.masks["D"].itop_rate() == dens["D"]
    ema = dict(cb.emas["G"].model.named_parameters())  # G's sparse EMA: zero where G is inactive
    for name, m in sparse.masks["G"].masks.items():
        assert not ema[name][~m].any()
    assert sparse.nets["G"] is gan.generator and sparse.optimizers["D"] is out["trainer"].optimizers[1]
    assert out["trainer"].callback_metrics["density/G"] == pytest.approx(dens["G"])


class Classifier(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 4))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self.model(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1, momentum=0.9)


def _classification_data(n=192, batch_size=16):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 8, generator=g)
    return DataLoader(TensorDataset(x, (x[:, :4].argmax(1))), batch_size=batch_size)


def test_one_optimizer_classifier_with_automatic_optimisation_and_accumulation(tmp_path):
    torch.manual_seed(0)
    module = Classifier()
    initial = None

    class Initial(pl.Callback):  # the masks as set up, to see that they changed
        def on_train_start(self, trainer, pl_module):
            nonlocal initial
            initial = {n: m.clone() for n, m in cb.sparse.masks["net"].masks.items()}

    cb = SparseTrainingCallback("stu", sparsity={"net": 0.8}, update_interval=3, distribution="uniform")
    trainer = _trainer(tmp_path, max_epochs=2, accumulate_grad_batches=2, callbacks=[cb, Initial()])
    trainer.fit(module, _classification_data())
    sparse = cb.sparse
    # 12 batches an epoch, an optimizer step every 2: 12 iterations, the schedule's length by default
    assert sparse.completed == 12 == trainer.global_step
    assert sparse.method.schedule.total_steps == 12
    assert sparse.nets["net"] is module  # no nets=: the whole module is one net
    assert abs(sparse.density()["net"] - 0.2) < 1e-3
    # Lightning runs forward and backward inside optimizer.step (a closure): still masked exactly
    _inactive_zero(sparse)
    masks = sparse.masks["net"]
    assert any(not torch.equal(initial[n], m) for n, m in masks.masks.items())
    opt = trainer.optimizers[0]
    for name, m in masks.masks.items():  # the momentum of inactive weights: 0
        assert not opt.state[masks.params[name]]["momentum_buffer"][~m].any()


def _gan_run(ex, *, stop_after=None, out=None, resume=None, callbacks=()):
    args = ["--epochs", "3", "--batches", "8", "--update-interval", "4"]
    args += ["--stop-after", str(stop_after)] if stop_after else []
    args += ["--out", str(out)] if out else []
    args += ["--resume", str(resume)] if resume else []
    return ex.main(args, callbacks=callbacks)


def test_resume_from_a_lightning_checkpoint_equals_the_straight_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ex = _example("lightning_gan")
    straight = _gan_run(ex)
    # interrupted after 2 of 3 epochs (the schedule still spans 3), then resumed with fresh objects
    _gan_run(ex, stop_after=2, out=tmp_path / "ckpt")
    ckpt = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=False)
    saved = ckpt[CHECKPOINT_KEY]["sparse"]
    assert saved["completed"] == 16
    restored = {}

    class Restored(pl.Callback):  # the callback's state once fit has started: the saved one
        def on_train_start(self, trainer, pl_module):
            restored.update(trainer.callbacks[0].sparse.state_dict())

    resumed = _gan_run(ex, resume=tmp_path / "ckpt" / "last.ckpt", callbacks=[Restored()])
    assert restored["completed"] == 16
    for net, state in saved["method"]["masks"].items():
        for k, t in state.items():
            assert torch.equal(restored["method"]["masks"][net][k], t), (net, k)
    assert torch.equal(restored["rng"]["topology"], saved["rng"]["topology"])
    # ... and the rest of the run is the straight run's: masks (updates at 20 and 24 after resume) and weights
    a, b = straight["callback"].sparse, resumed["callback"].sparse
    assert a.completed == b.completed == 24
    for net in ("G", "D"):
        for n, m in a.masks[net].masks.items():
            assert torch.equal(m, b.masks[net].masks[n]), (net, n)
    for (n, wa), (_, wb) in zip(straight["gan"].state_dict().items(), resumed["gan"].state_dict().items()):
        assert torch.equal(wa, wb), n
    for (n, wa), (_, wb) in zip(straight["callback"].emas["G"].model.state_dict().items(),
                                resumed["callback"].emas["G"].model.state_dict().items()):
        assert torch.equal(wa, wb), n
    _inactive_zero(b)


@pytest.mark.parametrize("cb_kwargs, trainer_kwargs, message", [
    (dict(nets={"net": "encoder"}), dict(max_epochs=1), "no submodule 'encoder'"),
    (dict(nets={"a": "model.0", "b": "model.2"}, sparsity={"a": 0.5}), dict(max_epochs=1), None),
    (dict(sparsity={"other": 0.5}), dict(max_epochs=1), "sparsity names net 'other'"),
])
def test_misuse_is_refused_in_one_line(tmp_path, cb_kwargs, trainer_kwargs, message):
    cb = SparseTrainingCallback("stu", **{"sparsity": {"net": 0.5}, **cb_kwargs})
    trainer = _trainer(tmp_path, limit_train_batches=2, callbacks=[cb], **trainer_kwargs)
    if message is None:  # two nets under one optimizer: fine (the engine serves both from its hooks)
        trainer.fit(Classifier(), _classification_data())
        assert set(cb.sparse.density()) == {"a", "b"} and cb.sparse.completed == 2
        return
    with pytest.raises(UserError) as e:
        trainer.fit(Classifier(), _classification_data())
    assert message in str(e.value) and "\n" not in str(e.value)


def test_manual_optimisation_with_max_steps_needs_steps(tmp_path):
    ex = _example("lightning_gan")
    cb = SparseTrainingCallback("stu", nets={"G": "generator", "D": "discriminator"}, sparsity={"G": 0.5})
    with pytest.raises(UserError, match="pass steps="):
        _trainer(tmp_path, max_steps=10, callbacks=[cb]).fit(ex.GAN(), DataLoader(TensorDataset(ex.ring(64)),
                                                                                   batch_size=16))


_DDP_WORKER = """
import importlib.util
import sys

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from sparsegan.integrations.lightning import SparseTrainingCallback

spec = importlib.util.spec_from_file_location("lightning_gan", sys.argv[1])
ex = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ex)
pl.seed_everything(0, verbose=False)
cb = SparseTrainingCallback("stu", nets={"G": "generator", "D": "discriminator"}, sparsity={"G": 0.9, "D": 0.5},
                            update_interval=3)
# a GAN's D takes no gradient from G's loss: DDP must be told to expect unused parameters
trainer = pl.Trainer(max_epochs=2, accelerator="cpu", devices=2, strategy="ddp_find_unused_parameters_true",
                     callbacks=[cb], logger=False, enable_checkpointing=False, enable_progress_bar=False,
                     enable_model_summary=False)
trainer.fit(ex.GAN(), DataLoader(TensorDataset(ex.ring(512)), batch_size=32))
s = cb.sparse
torch.save({"masks": {f"{n}.{k}": m for n, ms in s.masks.items() for k, m in ms.masks.items()},
            "weights": {f"{n}.{k}": p.detach() for n, ms in s.masks.items() for k, p in ms.params.items()},
            "completed": s.completed, "itop": s.masks["G"].itop_rate(), "density": s.density()},
           f"{sys.argv[2]}/rank{trainer.global_rank}.pt")
"""


def test_ddp_on_two_cpu_processes_keeps_masks_equal(tmp_path):
    # Lightning's DDP launcher starts rank 1 by running the script again: a script, in a subprocess.
    import os
    import subprocess
    import sys
    import time

    script = tmp_path / "worker.py"
    script.write_text(_DDP_WORKER)
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "NODE_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.run([sys.executable, str(script), str(ROOT / "examples" / "lightning_gan.py"), str(tmp_path)],
                          env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for _ in range(100):  # rank 0 may be done a moment before rank 1 has written its file
        if (tmp_path / "rank1.pt").exists():
            break
        time.sleep(0.1)
    a, b = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    assert a["completed"] == b["completed"] == 16  # 16 batches an epoch over 2 ranks, 2 epochs
    assert abs(a["density"]["G"] - 0.1) < 2e-3 and a["itop"] > a["density"]["G"]  # G explored
    for k in a["masks"]:
        assert torch.equal(a["masks"][k], b["masks"][k]), k
        assert torch.equal(a["weights"][k], b["weights"][k]), k
        assert not a["weights"][k][~a["masks"][k]].any(), k
