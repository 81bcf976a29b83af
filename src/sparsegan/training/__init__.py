"""The training loop, its state and the run folder."""

from sparsegan.training.launch import train
from sparsegan.training.loop import Trainer, build_trainer
from sparsegan.training.run_dir import RunDir, read_records

__all__ = ["RunDir", "Trainer", "build_trainer", "read_records", "train"]
