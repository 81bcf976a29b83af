"""How the nets run on a device: precision, memory format, compilation. Nothing assumes CUDA.

``--precision bf16`` runs G and D forward passes under autocast (CPU or CUDA); logits leave in
float32, so losses, gradients of the float32 master weights, Adam, masks and the EMA stay in
float32. ``--channels-last`` stores 4-D weights and real images NHWC (faster convolutions on
tensor-core GPUs). ``--compile`` wraps the forward passes in torch.compile; the masks, the
optimizer and the EMA keep working on the original modules (same parameter objects).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

PRECISIONS = ("fp32", "bf16")


class AutocastForward(nn.Module):
    """Runs ``module`` under bf16 autocast and returns float32: a view, not a copy."""

    def __init__(self, module: nn.Module, device_type: str):
        super().__init__()
        self.module, self.device_type = module, device_type

    def forward(self, *args, **kwargs) -> Tensor:
        with torch.autocast(self.device_type, dtype=torch.bfloat16):
            out = self.module(*args, **kwargs)
        return out.float()

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["module"], name)


def to_memory_format(module: nn.Module, channels_last: bool) -> nn.Module:
    """In place (parameter objects kept), before masks and optimizers are made."""
    return module.to(memory_format=torch.channels_last) if channels_last else module


def forward_view(module: nn.Module, *, precision: str, compile: bool, device: torch.device) -> nn.Module:
    """What the loop calls for forward passes of ``module``: the module itself by default."""
    out = module
    if precision == "bf16":
        out = AutocastForward(out, device.type)
    if compile:
        _power_iteration_outside_graphs(module)
        out = torch.compile(out)
    return out


def _power_iteration_outside_graphs(module: nn.Module) -> None:
    """Spectral norm updates its ``_u``/``_v`` buffers in place at every training forward and
    relies on cloning them for backward; compiled graphs lose that protection (D called on real,
    then fake images fails in backward with "modified by an inplace operation"). Running the
    parametrization eagerly keeps its semantics; the layers themselves stay compiled."""
    from torch.nn.utils.parametrizations import _SpectralNorm

    for m in module.modules():
        if isinstance(m, _SpectralNorm):
            m.forward = torch.compiler.disable(m.forward)
