"""The training loop, its state and the run folder."""

from sparsegan.run_folder import RunDir, read_records
from sparsegan.training.launch import train
from sparsegan.training.trainer import Trainer, build_trainer

__all__ = ["RunDir", "Trainer", "build_trainer", "read_records", "train"]
