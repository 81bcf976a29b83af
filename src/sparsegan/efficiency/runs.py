"""What efficiency reads from a run folder, through sparsegan.run_folder (config, summary, masks,
the nets rebuilt from config.json), and the one helper of its own."""

from __future__ import annotations

from typing import Mapping

from torch import Tensor

from sparsegan.run_folder import RunFolder

__all__ = ["RunFolder", "masked"]


def masked(state: Mapping[str, Tensor], masks: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """A state dict with every inactive weight exactly 0 (the contract already holds; this makes it
    hold for exports of files edited by hand)."""
    return {k: (v * masks[k].to(v.dtype) if k in masks else v) for k, v in state.items()}
