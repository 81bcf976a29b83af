"""The training loop and its state (runs as ``sparsegan train`` launches them: :mod:`sparsegan.launch`)."""

from sparsegan.run_folder import RunDir, read_records
from sparsegan.training.trainer import Trainer, build_trainer

__all__ = ["RunDir", "Trainer", "build_trainer", "read_records"]
