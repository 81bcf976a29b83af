"""What ``sparsegan train`` runs: one run of the loop, or a method made of whole runs.

IMP (GAN Tickets) and its controls train rounds of whole runs, each a run of the loop in a
sub-folder; that orchestration sits here, one level above the loop (:mod:`.rounds`), so the loop
knows nothing of it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from sparsegan.config import TrainConfig
from sparsegan.methods import METHODS
from sparsegan.training.rounds import train_rounds
from sparsegan.training.single_run import train_one
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
