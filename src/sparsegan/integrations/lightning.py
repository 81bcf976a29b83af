"""PyTorch Lightning: a LightningModule's training made sparse by one callback.

    from sparsegan.integrations.lightning import SparseTrainingCallback

    sparse = SparseTrainingCallback("stu", nets={"G": "generator", "D": "discriminator"},
                                    sparsity={"G": 0.9, "D": 0.5}, update_interval=500, ema={"G": 0.999})
    L.Trainer(max_epochs=5, callbacks=[sparse]).fit(gan)
    sparse.sparse.density(); sparse.emas["G"].model      # after fit: the masks, G's sparse EMA

The module is unchanged: manual optimisation (a GAN's ``training_step`` that calls ``opt_d.step()``
and ``opt_g.step()`` itself) and automatic optimisation (one optimizer, Lightning steps it) both
work. At fit start the callback builds :class:`sparsegan.SparseTraining` from the module's nets
(attribute names; none: the whole module is one net, ``"net"``) and the optimizers that hold their
parameters; after each batch in which an optimizer stepped it calls ``sparse.step()`` once (so with
``accumulate_grad_batches`` only after the batches that step) and logs each net's density
(``density/<net>``). Lightning checkpoints carry ``sparse.state_dict()`` (and the EMAs) under the
key ``"sparsegan"``: ``trainer.fit(model, ckpt_path=...)`` resumes exactly.

An iteration is a batch in which some optimizer stepped: a module that steps G only every k-th
batch (WGAN's critic steps) makes the iterations without a G step fail at G's topology updates,
as ``SparseTraining.step()`` says. One callback serves one ``fit``: a second one draws new masks.
Under DDP every rank builds the same masks (same ``seed``) and rank 0's are broadcast.

Needs ``lightning`` (``pip install "sparsegan[lightning]"``); the callback is a
``lightning.pytorch.Callback`` (not one of the standalone ``pytorch_lightning`` package).
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import nn

from sparsegan import SparseEMA, SparseTraining
from sparsegan.errors import UserError

CHECKPOINT_KEY = "sparsegan"


class SparseTrainingCallback(pl.Callback):
    """``method`` / ``sparsity`` / ``seed`` / ``**options``: as :class:`sparsegan.SparseTraining`'s.
    ``nets``: net name -> attribute of the LightningModule (dotted paths work: ``"model.encoder"``).
    ``steps``: the training iterations the method's schedule spans; default: the trainer's
    ``estimated_stepping_batches`` (manual optimisation with ``max_steps`` needs it: Lightning
    counts every optimizer's step towards ``max_steps``, two per iteration for a GAN).
    ``ema``: net -> beta of a sparse EMA (SEMA) kept with the topology, ``callback.emas[net]``."""

    def __init__(
        self,
        method: str = "stu",
        *,
        nets: Mapping[str, str] | None = None,
        sparsity: Mapping[str, float] | None = None,
        steps: int | None = None,
        seed: int = 0,
        ema: Mapping[str, float] | None = None,
        log_density: bool = True,
        **options: Any,
    ):
        self.method, self.options = method, options
        self.net_attrs = dict(nets) if nets is not None else {"net": ""}
        self.sparsity = dict(sparsity or {})
        self.steps, self.seed = steps, seed
        self.ema_betas = dict(ema or {})
        self.log_density = log_density
        self.sparse: SparseTraining | None = None
        self.emas: dict[str, SparseEMA] = {}
        self._stepped = False  # some optimizer stepped since the last sparse.step()
        self._hooks: list = []
        self._pending: Mapping[str, Any] | None = None  # a checkpoint's state, until the masks exist

    # --- fit start: nets, optimizers, masks ---------------------------------------------------------
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Here, not in setup(): the optimizers exist only after the strategy's setup.
        nets = {name: self._net(pl_module, name, attr) for name, attr in self.net_attrs.items()}
        optimizers = _owners(nets, trainer.optimizers)
        steps = self._schedule_steps(trainer, pl_module)
        for opt in {id(o): o for o in optimizers.values()}.values():
            self._hooks.append(opt.register_step_post_hook(self._mark_stepped))
        # On resume the nets already hold the checkpoint's weights: state= keeps them under its masks
        # (the engine runs Lightning's step closure itself, before it masks the gradients).
        pending, self._pending = self._pending, None
        try:
            self.sparse = SparseTraining(nets, optimizers, self.method, sparsity=self.sparsity, steps=steps,
                                         seed=self.seed, state=None if pending is None else pending["sparse"],
                                         **self.options)
        except Exception:
            self.teardown(trainer, pl_module, "fit")  # misuse leaves the optimizers as they were
            raise
        self.emas = {net: self.sparse.ema(net, beta) for net, beta in self.ema_betas.items()}
        if pending is not None:
            for net, ema in self.emas.items():
                if net in pending.get("ema", {}):
                    ema.load_state_dict(pending["ema"][net])
        self.sparse.broadcast_masks()  # under DDP: rank 0's masks everywhere (a no-op on one process)

    def _net(self, pl_module: pl.LightningModule, name: str, attr: str) -> nn.Module:
        try:
            return pl_module.get_submodule(attr)
        except AttributeError:
            raise UserError(f"net {name!r}: the LightningModule has no submodule {attr!r}") from None

    def _schedule_steps(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> int:
        if self.steps is not None:
            return self.steps
        if not pl_module.automatic_optimization and trainer.max_steps != -1:
            raise UserError("with manual optimisation Lightning counts every optimizer's step towards max_steps: "
                            "pass steps= (the training iterations) to SparseTrainingCallback")
        total = trainer.estimated_stepping_batches
        if not math.isfinite(total):
            raise UserError("the trainer's training length is unbounded: pass steps= to SparseTrainingCallback")
        return int(total)

    # --- per batch -------------------------------------------------------------------------------------
    def _mark_stepped(self, optimizer, args, kwargs) -> None:
        self._stepped = True

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        # One sparse.step() per iteration with an optimizer step: after a GAN's D and G steps (the
        # module's training_step took both), and never for a batch that only accumulated gradients.
        if self.sparse is None or not self._stepped:
            return
        self._stepped = False
        self.sparse.step()
        for net, ema in self.emas.items():
            ema.update(self.sparse.nets[net], self.sparse.completed)
        if self.log_density:
            pl_module.log_dict({f"density/{n}": d for n, d in self.sparse.density().items()},
                               on_step=True, on_epoch=False, batch_size=1)

    # --- checkpoints --------------------------------------------------------------------------------
    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        if self.sparse is not None:
            checkpoint[CHECKPOINT_KEY] = {"sparse": self.sparse.state_dict(),
                                          "ema": {n: e.state_dict() for n, e in self.emas.items()}}

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get(CHECKPOINT_KEY)
        if state is None:
            rank_zero_warn("the checkpoint has no sparsegan state (a dense run's?): the masks start afresh")
        elif self.sparse is None:  # the usual order: checkpoints are read before on_fit_start
            self._pending = state
        else:  # strategies that restore after set-up
            self._load(state)

    def _load(self, state: Mapping[str, Any]) -> None:
        self.sparse.load_state_dict(state["sparse"])
        for net, ema in self.emas.items():
            if net in state.get("ema", {}):
                ema.load_state_dict(state["ema"][net])

    # --- fit end ---------------------------------------------------------------------------------------
    def teardown(self, trainer, pl_module, stage: str) -> None:
        # The optimizers go back to plain ones; the masks stay readable (callback.sparse.masks).
        if self.sparse is not None:
            self.sparse.close()
        for h in self._hooks:
            h.remove()
        self._hooks = []


def _owners(nets: Mapping[str, nn.Module], optimizers) -> dict[str, torch.optim.Optimizer]:
    """Each net's optimizer: the one that holds its trainable parameters."""
    held = [{id(p) for g in opt.param_groups for p in g["params"]} for opt in optimizers]
    out = {}
    for name, net in nets.items():
        params = {id(p) for p in net.parameters() if p.requires_grad}
        owners = [i for i, h in enumerate(held) if params & h]
        if len(owners) != 1:
            found = "none of them" if not owners else f"optimizers {owners} each hold some"
            raise UserError(f"net {name!r}: {len(optimizers)} optimizer(s) configured, {found} of its parameters; "
                            "give each net one optimizer that holds its weights")
        out[name] = optimizers[owners[0]]
    return out
