"""What ``sparsegan train`` runs: one run of the loop, or a method made of whole runs.

One level above the loop (:mod:`sparsegan.training`): a run's end (final files, summary.json with
its FLOPs accounting), its TensorBoard mirror (:mod:`.single_run`), and IMP (GAN Tickets) and its
controls, which train rounds of whole runs, each a run of the loop in a sub-folder
(:mod:`.rounds`). The loop knows none of it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from sparsegan.config import TrainConfig
from sparsegan.launch.rounds import train_rounds
from sparsegan.launch.single_run import train_one
from sparsegan.methods import METHODS
from sparsegan.training.trainer import Trainer


def train(
    cfg: TrainConfig,
    *,
    resume: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
    on_step: Callable[[Trainer], None] | None = None,
    on_start: Callable[[Trainer], None] | None = None,
) -> Path:
    """Train ``cfg`` into ``cfg.out`` and return the run folder: IMP's rounds, or one run of the
    loop (``on_step`` / ``on_start`` see its :class:`~sparsegan.training.trainer.Trainer`)."""
    if getattr(METHODS.get(cfg.method), "rounds", False):
        if on_step is not None or on_start is not None:
            raise ValueError(f"--method {cfg.method} trains rounds of runs: on_step / on_start apply to one run")
        return train_rounds(cfg, resume=resume, overwrite=overwrite, progress=progress)
    return train_one(cfg, resume=resume, overwrite=overwrite, progress=progress, on_step=on_step, on_start=on_start)
