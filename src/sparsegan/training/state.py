"""Full training state for exact resume: atomic checkpoints, safe loading, keep last K.

A checkpoint holds only tensors, numbers, strings and containers of them, so it loads with
``torch.load(weights_only=True)``: a file crafted to run code when unpickled is refused.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

import torch

from sparsegan.errors import UserError
from sparsegan.files import atomic_write_bytes
from sparsegan.run_folder import CHECKPOINT_NAME, checkpoint_name

FORMAT = "sparsegan-training-state"
VERSION = 1
_NAME = CHECKPOINT_NAME


def checkpoint_path(folder: Path, step: int) -> Path:
    return folder / checkpoint_name(step)


def save_checkpoint(folder: Path, step: int, state: dict[str, Any], keep: int) -> Path:
    buf = io.BytesIO()
    torch.save({"format": FORMAT, "version": VERSION, "step": step, **state}, buf)
    path = checkpoint_path(folder, step)
    atomic_write_bytes(path, buf.getvalue())
    for old in list_checkpoints(folder)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def list_checkpoints(folder: Path) -> list[Path]:
    """Checkpoint files, oldest first."""
    if not folder.exists():
        return []
    return sorted((p for p in folder.iterdir() if _NAME.match(p.name)), key=lambda p: p.name)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load one checkpoint safely; a truncated, foreign or code-carrying file is a UserError."""
    try:
        with warnings.catch_warnings():  # a foreign pickle's protocol warning is noise: we refuse it anyway
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"checkpoint {path} not found") from None
    except Exception as e:  # UnpicklingError, truncated zip, anything weights_only refuses
        first = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
        raise UserError(f"checkpoint {path} is not a valid sparsegan training state ({first[:160]})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise UserError(f"checkpoint {path} is not a sparsegan training state")
    if state.get("version") != VERSION:
        raise UserError(f"checkpoint {path} has format version {state.get('version')}, expected {VERSION}")
    return state


def latest_valid_checkpoint(folder: Path, warn=print) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint that loads; broken newer ones are reported and skipped."""
    for path in reversed(list_checkpoints(folder)):
        try:
            return path, load_checkpoint(path)
        except UserError as e:
            warn(f"skipping {e}")
    return None
