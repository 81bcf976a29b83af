"""A deployable generator file: its size grows with the active weights.

Both formats are safetensors containers (no pickle), with a JSON header entry ``"sparsegan"``
holding everything needed to rebuild the module (model name, spec, which generator, densities)
and the masks' granularity (``"mask_block"``, "RxC" in each weight's out x in view, see
:mod:`sparsegan.sparsity.blocks`; "1x1" for unstructured masks):

* ``csr``: every prunable weight ``W`` (shape (out, in, *kernel) or, for transposed convs,
  (in, out, *kernel)) is stored as the CSR form of ``W.reshape(shape[0], -1)``:
  ``<name>::values`` (float), ``<name>::col_indices`` (int16 when the row length allows, else
  int32) and ``<name>::crow_indices`` (int32 / int64); every other tensor (biases, norms,
  embeddings, buffers) is stored dense. About 6 bytes per active weight instead of 4 per weight.
* ``safetensors``: the plain masked state dict (4 bytes per weight, any size), for tools that
  want to ``load_state_dict`` it directly.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors import safe_open
from torch import Tensor, nn

from sparsegan.errors import UserError
from sparsegan.files import save_safetensors
from sparsegan.models import ModelSpec, build_models
from sparsegan.run_folder import RunFolder
from sparsegan.sparsity import output_axes
from sparsegan.sparsity.blocks import Blocks

FORMATS = ("csr", "safetensors")
SEP = "::"


def to_csr(weight: Tensor) -> dict[str, Tensor]:
    """CSR parts of ``weight.reshape(shape[0], -1)`` with the smallest index types that fit."""
    mat = weight.detach().reshape(weight.shape[0], -1).cpu()
    rows, cols = mat.shape
    nz = mat != 0
    col_idx = nz.nonzero()[:, 1]
    crow = torch.zeros(rows + 1, dtype=torch.int64)
    crow[1:] = nz.sum(1).cumsum(0)
    return {
        "values": mat[nz].contiguous(),
        "col_indices": col_idx.to(torch.int16 if cols <= 2**15 else torch.int32),
        "crow_indices": crow.to(torch.int32 if int(crow[-1]) < 2**31 else torch.int64),
    }


def from_csr(parts: Mapping[str, Tensor], shape: tuple[int, ...]) -> Tensor:
    """The dense weight back from its CSR parts."""
    rows = shape[0]
    cols = int(torch.tensor(shape[1:]).prod()) if len(shape) > 1 else 1
    crow = parts["crow_indices"].to(torch.int64)
    row_idx = torch.repeat_interleave(torch.arange(rows), crow[1:] - crow[:-1])
    dense = torch.zeros(rows, cols, dtype=parts["values"].dtype)
    dense[row_idx, parts["col_indices"].to(torch.int64)] = parts["values"]
    return dense.reshape(shape)


def export_generator(
    G: nn.Module, masks: Mapping[str, Tensor], *, model: str, spec: ModelSpec, path: str | Path,
    fmt: str = "csr", info: Mapping[str, Any] | None = None, mask_block: str = "1x1",
) -> dict[str, Any]:
    """Write ``G`` (inactive weights forced to 0) to ``path``; returns the header written.
    ``mask_block``: the granularity the masks were made in (checked against them)."""
    if fmt not in FORMATS:
        raise UserError(f"unknown export format {fmt!r}; valid: {', '.join(FORMATS)}")
    blocks = Blocks.parse(mask_block)
    axes = output_axes(G)
    unblocked = sorted(n for n, m in masks.items() if not blocks.along(axes.get(n, 0)).is_blocked(m))
    if unblocked:
        raise UserError(f"the masks are not made of {blocks} blocks (e.g. {unblocked[0]})")
    state = masked({k: v.detach().cpu() for k, v in G.state_dict().items()}, masks)
    tensors: dict[str, Tensor] = {}
    layouts = {}
    for name, t in state.items():
        if fmt == "csr" and name in masks and t.dim() >= 2:
            for part, v in to_csr(t).items():
                tensors[f"{name}{SEP}{part}"] = v
            layouts[name] = list(t.shape)
        else:
            tensors[name] = t.contiguous()
    prunable = sum(m.numel() for m in masks.values())
    active = sum(int(m.sum()) for m in masks.values())
    header = {
        "format": fmt, "model": model, "spec": asdict(spec), "csr": layouts, "mask_block": str(blocks),
        "prunable": prunable, "active": active, "density": active / prunable if prunable else 1.0,
        **dict(info or {}),
    }
    save_safetensors(Path(path), tensors, metadata={"sparsegan": json.dumps(header)})
    return header


def export_run(run: str | Path, *, fmt: str = "csr", generator: str = "ema",
               out: str | Path | None = None) -> tuple[Path, dict]:
    """Export a completed run's generator; default ``RUN/export/generator_<which>[.csr].safetensors``."""
    rf = RunFolder.open(run)
    G, _, spec = rf.build_nets(generator, with_d=False)
    g_state = rf.generator_state(generator)
    G.load_state_dict(g_state)
    path = Path(out) if out else rf.export_file(generator, fmt)
    info = {"generator": generator, "source_run": rf.path.name, "method": rf.config.get("method"),
            "step": rf.steps_done()}
    return path, export_generator(G, rf.masks.get("G", {}), model=rf.config["model"], spec=spec,
                                  path=path, fmt=fmt, info=info, mask_block=rf.config.get("mask_block", "1x1"))


class Export:
    """An exported generator read back: header, CSR parts, dense tensors."""

    def __init__(self, header: dict[str, Any], csr: dict[str, dict[str, Tensor]], dense: dict[str, Tensor]):
        self.header, self.csr, self.dense = header, csr, dense

    @classmethod
    def read(cls, path: str | Path) -> "Export":
        p = Path(path)
        if not p.is_file():
            raise UserError(f"{p} not found")
        try:
            with safe_open(str(p), framework="pt") as f:
                meta = f.metadata() or {}
                tensors = {k: f.get_tensor(k) for k in f.keys()}
        except Exception as e:
            raise UserError(f"{p} is not a readable safetensors file ({e})") from None
        if "sparsegan" not in meta:
            raise UserError(f"{p} is not a sparsegan export (no 'sparsegan' header)")
        header = json.loads(meta["sparsegan"])
        csr: dict[str, dict[str, Tensor]] = {}
        dense = {}
        for k, v in tensors.items():
            if SEP in k:
                name, part = k.split(SEP, 1)
                csr.setdefault(name, {})[part] = v
            else:
                dense[k] = v
        return cls(header, csr, dense)

    @property
    def spec(self) -> ModelSpec:
        return ModelSpec(**self.header["spec"])

    def state_dict(self) -> dict[str, Tensor]:
        """The dense (masked) state dict: CSR weights expanded."""
        out = dict(self.dense)
        for name, parts in self.csr.items():
            out[name] = from_csr(parts, tuple(self.header["csr"][name]))
        return out

    def generator(self) -> nn.Module:
        """The dense masked generator, rebuilt from the registry, in eval mode."""
        G, _ = build_models(self.header["model"], self.spec)
        G.load_state_dict(self.state_dict())
        return G.eval()

    def masks(self) -> dict[str, Tensor]:
        """Masks of the prunable weights as stored (CSR weights: their stored non-zeros)."""
        return {name: from_csr(parts, tuple(self.header["csr"][name])) != 0 for name, parts in self.csr.items()}


def masked(state: Mapping[str, Tensor], masks: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """A state dict with every inactive weight exactly 0 (the contract already holds; this makes it
    hold for exports of files edited by hand)."""
    return {k: (v * masks[k].to(v.dtype) if k in masks else v) for k, v in state.items()}
