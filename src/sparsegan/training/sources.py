"""What a run starts from besides its own initialisation: PF's dense run (``--from``) and a ticket
(``--masks-from``). Both name run folders, so they are read here, above the engine: the engine's
methods take weights the nets already hold (PF) and a :class:`~sparsegan.methods.transfer.Ticket`
(its masks and weights as tensors), never a path.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from sparsegan.config import TrainConfig
from sparsegan.errors import UserError
from sparsegan.methods.transfer import Ticket
from sparsegan.run_folder import CONFIG, RunFolder

#: The keys a run must share with PF's dense run: fine-tuning weights trained on another dataset or
#: model is a transfer, not PF (``--masks-from RUN --masks-with-weights`` does that, and says so).
PF_SAME = ("dataset", "model", "model_width", "width_multiplier", "z_dim")


def load_pf_source(cfg: TrainConfig, nets: dict[str, nn.Module]) -> list[dict[str, Any]]:
    """Load ``--from``'s final weights into ``nets`` (before the engine prunes them); returns the
    dense pre-training phase for FLOPs accounting (none without ``--from``)."""
    if cfg.method != "pf" or not cfg.from_run:
        return []
    src = RunFolder(cfg.from_run)
    try:
        source = src.config
    except UserError:
        raise UserError(f"--from {src.path}: no readable {CONFIG}; is it a sparsegan run?") from None
    for key in PF_SAME:
        if source.get(key) != getattr(cfg, key):
            raise UserError(f"--from {src.path} was trained with {key}={source.get(key)!r}, "
                            f"this run asks for {getattr(cfg, key)!r}")
    for net, module in nets.items():
        module.load_state_dict(src.final_tensors(net))
    return [{"phase": "dense-pretrain", "source": str(cfg.from_run), "steps": source.get("steps"),
             "n_dis": source.get("n_dis"), "batch_size": source.get("batch_size"), "density": {"G": 1.0, "D": 1.0}}]


def read_ticket(cfg: TrainConfig) -> Ticket | None:
    """``--masks-from``'s masks (RUN/final or an IMP ticket folder), with its weights under
    ``--masks-with-weights``; None without ``--masks-from``."""
    if getattr(cfg, "masks_from", None) is None:
        return None
    folder = RunFolder(cfg.masks_from)
    masks = {net: m for net, m in folder.masks.items() if m}
    weights = {net: folder.final_tensors(net) for net in masks} if cfg.masks_with_weights else None
    return Ticket(masks=masks, weights=weights, source=str(cfg.masks_from))
